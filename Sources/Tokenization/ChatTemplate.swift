/// How a chat model wants a conversation written. Two formats are known:
///
///   ChatML (SmolLM2, Qwen and many others): every message is
///       <|im_start|>{role}\n{content}<|im_end|>\n
///   and the model's turn starts with `<|im_start|>assistant\n`; it ends its reply with `<|im_end|>`.
///
///   Gemma: every message is
///       <start_of_turn>{role}\n{content}<end_of_turn>\n
///   with the assistant's role spelled `model`, no system role (a system message goes before the
///   first user message, followed by a blank line), contents trimmed of surrounding whitespace;
///   the model's turn starts with `<start_of_turn>model\n` and its reply ends with `<end_of_turn>`.
///
/// A model's Jinja template (GGUF `tokenizer.chat_template`) is not executed: we recognise one of
/// these formats in it (and read the default system prompt a ChatML template inserts when a
/// conversation has none). BOS is not part of the rendering: the model's encoder adds it.
public struct ChatTemplate: Sendable, Equatable {
    public enum Role: String, Sendable { case system, user, assistant }

    public struct Message: Sendable {
        public var role: Role
        public var content: String
        public init(_ role: Role, _ content: String) { self.role = role; self.content = content }
    }

    public enum Format: String, Sendable { case chatML, gemma }
    public var format: Format

    /// ChatML's markers.
    public static let start = "<|im_start|>", end = "<|im_end|>"
    /// Gemma's markers.
    public static let gemmaStart = "<start_of_turn>", gemmaEnd = "<end_of_turn>"

    /// Put first when the conversation has no system message (SmolLM2: "You are a helpful AI
    /// assistant named SmolLM, trained by Hugging Face").
    public var defaultSystemPrompt: String?

    public init(_ format: Format = .chatML, defaultSystemPrompt: String? = nil) {
        self.format = format
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Gemma's turn format.
    public static let gemma = ChatTemplate(.gemma)

    /// The format a Jinja template writes (with the default system prompt found in a ChatML
    /// one), or nil when it is neither ChatML nor Gemma's.
    public init?(jinja: String) {
        if jinja.contains(ChatTemplate.gemmaStart), jinja.contains(ChatTemplate.gemmaEnd) {
            self.init(.gemma)
            return
        }
        guard jinja.contains(ChatTemplate.start), jinja.contains(ChatTemplate.end) else { return nil }
        self.init(.chatML)
        // The default system message is written out literally: '<|im_start|>system\n...<|im_end|>'.
        if let open = jinja.range(of: ChatTemplate.start + "system\n"),
           let close = jinja.range(of: ChatTemplate.end, range: open.upperBound..<jinja.endIndex) {
            let text = String(jinja[open.upperBound..<close.lowerBound])
            if !text.contains("{{") && !text.contains("{%") { defaultSystemPrompt = text }
        }
    }

    /// The marker that ends every turn, the model's replies included (a stop string).
    public var turnEnd: String { format == .gemma ? ChatTemplate.gemmaEnd : ChatTemplate.end }

    /// The text of a conversation; with `generationPrompt`, it ends by opening the assistant's turn.
    public func render(_ messages: [Message], generationPrompt: Bool = true) -> String {
        switch format {
        case .chatML: return renderChatML(messages, generationPrompt: generationPrompt)
        case .gemma: return renderGemma(messages, generationPrompt: generationPrompt)
        }
    }

    private func renderChatML(_ messages: [Message], generationPrompt: Bool) -> String {
        var out = ""
        if messages.first?.role != .system, let system = defaultSystemPrompt {
            out += ChatTemplate.start + "system\n" + system + ChatTemplate.end + "\n"
        }
        for m in messages { out += ChatTemplate.start + m.role.rawValue + "\n" + m.content + ChatTemplate.end + "\n" }
        if generationPrompt { out += ChatTemplate.start + "assistant\n" }
        return out
    }

    private func renderGemma(_ messages: [Message], generationPrompt: Bool) -> String {
        func trimmed(_ s: String) -> String {
            String(s.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        }
        var out = ""
        var system = messages.filter { $0.role == .system }.map { trimmed($0.content) }.joined(separator: "\n\n")
        if system.isEmpty, let d = defaultSystemPrompt { system = d }
        for m in messages where m.role != .system {
            let role = m.role == .assistant ? "model" : m.role.rawValue
            out += ChatTemplate.gemmaStart + role + "\n"
            if !system.isEmpty && m.role == .user { out += system + "\n\n"; system = "" }
            out += trimmed(m.content) + ChatTemplate.gemmaEnd + "\n"
        }
        if generationPrompt { out += ChatTemplate.gemmaStart + "model\n" }
        return out
    }
}
