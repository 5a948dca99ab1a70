/// ChatML, the chat format of SmolLM2, Qwen and many others: every message is
///
///   <|im_start|>{role}\n{content}<|im_end|>\n
///
/// and the model's turn starts with `<|im_start|>assistant\n`; it ends its reply with `<|im_end|>`.
/// A model's Jinja template (GGUF `tokenizer.chat_template`) is not executed: we recognise ChatML
/// in it and read the default system prompt it inserts when a conversation has none.
public struct ChatTemplate: Sendable {
    public enum Role: String, Sendable { case system, user, assistant }

    public struct Message: Sendable {
        public var role: Role
        public var content: String
        public init(_ role: Role, _ content: String) { self.role = role; self.content = content }
    }

    public static let start = "<|im_start|>", end = "<|im_end|>"

    /// Put first when the conversation has no system message (SmolLM2: "You are a helpful AI
    /// assistant named SmolLM, trained by Hugging Face").
    public var defaultSystemPrompt: String?

    public init(defaultSystemPrompt: String? = nil) { self.defaultSystemPrompt = defaultSystemPrompt }

    /// ChatML with the default system prompt found in a Jinja template, or nil when the template
    /// is not ChatML.
    public init?(jinja: String) {
        guard jinja.contains(ChatTemplate.start), jinja.contains(ChatTemplate.end) else { return nil }
        defaultSystemPrompt = nil
        // The default system message is written out literally: '<|im_start|>system\n...<|im_end|>'.
        if let open = jinja.range(of: ChatTemplate.start + "system\n"),
           let close = jinja.range(of: ChatTemplate.end, range: open.upperBound..<jinja.endIndex) {
            let text = String(jinja[open.upperBound..<close.lowerBound])
            if !text.contains("{{") && !text.contains("{%") { defaultSystemPrompt = text }
        }
    }

    /// The text of a conversation; with `generationPrompt`, it ends by opening the assistant's turn.
    public func render(_ messages: [Message], generationPrompt: Bool = true) -> String {
        var out = ""
        if messages.first?.role != .system, let system = defaultSystemPrompt {
            out += ChatTemplate.start + "system\n" + system + ChatTemplate.end + "\n"
        }
        for m in messages { out += ChatTemplate.start + m.role.rawValue + "\n" + m.content + ChatTemplate.end + "\n" }
        if generationPrompt { out += ChatTemplate.start + "assistant\n" }
        return out
    }
}
