import Foundation
import Tokenization

/// One preference pair as text: the same prompt answered twice, once as preferred (chosen) and
/// once not (rejected). Each side is an SFT example whose response alone is trained.
public struct PreferencePair: Sendable, Equatable {
    public var chosen: SFTExample
    public var rejected: SFTExample
    public var source: String { chosen.source }

    public init(chosen: SFTExample, rejected: SFTExample) { self.chosen = chosen; self.rejected = rejected }
}

/// Reads preference data: JSON (an array of records) or JSONL (one record per line), every record
/// one of
///   {"prompt", "chosen", "rejected"}                     TRL's shape: prompt and answers as text
///                                                        (used as they are), or prompt as a
///                                                        "messages" list and answers as text or
///                                                        one assistant message (chat template)
///   {"instruction", "input"?, "chosen", "rejected"}      the book's (an "output" is ignored):
///                                                        --prompt-format book or chat, as for SFT
///   {"conversations": [{"from", "value"}, ...],          LLaMA-Factory's ShareGPT ranking data:
///    "chosen": {"from": "gpt", "value"}, "rejected": …}  human/gpt/system turns, chat template
/// Only the final answer is trained; earlier assistant turns are context. Errors name the file,
/// the line (JSONL) or record index (JSON), and the field.
public enum PreferenceData {
    public static func read(_ path: String, format: PromptFormat, template: ChatTemplate,
                            placeholders: [String: String] = [:]) throws -> [PreferencePair] {
        var out: [PreferencePair] = []
        for (source, record) in try InstructionData.records(path) {
            out.append(try pair(record, source: source, format: format, template: template, placeholders: placeholders))
        }
        guard !out.isEmpty else { throw TrainingError.file(path, "holds no records") }
        return out
    }

    /// Whether a record looks like a preference pair (for commands that take either kind of data).
    public static func isPair(_ record: [String: Any]) -> Bool { record["chosen"] != nil && record["rejected"] != nil }

    /// One record as a pair.
    public static func pair(_ r: [String: Any], source: String, format: PromptFormat, template: ChatTemplate,
                            placeholders: [String: String] = [:]) throws -> PreferencePair {
        func fill(_ s: String) -> String { placeholders.reduce(s) { $0.replacingOccurrences(of: "{{\($1.key)}}", with: $1.value) } }
        for key in ["chosen", "rejected"] where r[key] == nil || r[key] is NSNull {
            throw TrainingError.file(source, "missing field \"\(key)\" (a preference pair needs \"chosen\" and \"rejected\")")
        }
        // The prompt: plain text, or turns for the chat template.
        var text: String?, turns: [ChatTemplate.Message]?
        if let conversations = r["conversations"] {
            turns = try shareGPT(conversations, field: "conversations", source: source).map { .init($0.role, fill($0.content)) }
        } else if let prompt = r["prompt"] {
            if prompt is [Any] {
                turns = try messages(prompt, field: "prompt", source: source).map { .init($0.role, fill($0.content)) }
            } else {
                text = fill(try InstructionData.string(r, "prompt", source, nonEmpty: true)!)
            }
        } else if r["instruction"] != nil {
            let instruction = fill(try InstructionData.string(r, "instruction", source, nonEmpty: true)!)
            let input = fill(try InstructionData.string(r, "input", source, required: false) ?? "")
            switch format {
            case .book: text = InstructionData.bookPrompt(instruction: instruction, input: input)
            case .chat: turns = [.init(.user, input.isEmpty ? instruction : instruction + "\n\n" + input)]
            }
        } else {
            throw TrainingError.file(source, "no prompt: expected \"prompt\", \"instruction\" or \"conversations\" beside \"chosen\" and \"rejected\" (found \(r.keys.sorted().joined(separator: ", ")))")
        }
        // Answers as messages call for the chat template around a text prompt too.
        let answers = try ["chosen", "rejected"].map { try answer(r[$0]!, field: $0, source: source) }
        if turns == nil, answers.contains(where: \.isMessage) { turns = [.init(.user, text!)] }
        func side(_ a: (text: String, isMessage: Bool)) -> SFTExample {
            let reply = fill(a.text)
            guard let turns else { return SFTExample(segments: [(text!, false), (reply, true)], source: source) }
            return SFTExample(segments: finalReplyOnly(InstructionData.chatSegments(turns + [.init(.assistant, reply)], template: template)),
                              source: source)
        }
        if let turns, let last = turns.last, last.role == .assistant {
            throw TrainingError.file(source, "the prompt ends with an assistant turn: it must end where the answer starts")
        }
        return PreferencePair(chosen: side(answers[0]), rejected: side(answers[1]))
    }

    /// An answer: text, one assistant message ({"role", "content"} or {"from", "value"}), or a
    /// one-element list of it.
    static func answer(_ v: Any, field: String, source: String) throws -> (text: String, isMessage: Bool) {
        if let s = v as? String {
            guard !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw TrainingError.file(source, "field \"\(field)\" is empty") }
            return (s, false)
        }
        var message = v
        if let list = v as? [Any] {
            guard list.count == 1 else { throw TrainingError.file(source, "field \"\(field)\" must hold one assistant message, found \(list.count)") }
            message = list[0]
        }
        guard let obj = message as? [String: Any] else {
            throw TrainingError.file(source, "field \"\(field)\" must be text or an assistant message")
        }
        let m = obj["from"] != nil ? try shareGPT([obj], field: field, source: source)[0] : try messages([obj], field: field, source: source)[0]
        guard m.role == .assistant else { throw TrainingError.file(source, "field \"\(field)\": the answer must be the assistant's, not \(m.role.rawValue)") }
        guard !m.content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw TrainingError.file(source, "field \"\(field)\" is empty") }
        return (m.content, true)
    }

    /// [{"role", "content"}] turns.
    static func messages(_ v: Any, field: String, source: String) throws -> [ChatTemplate.Message] {
        guard let list = v as? [Any], !list.isEmpty else { throw TrainingError.file(source, "field \"\(field)\" must be a non-empty list of messages") }
        return try list.enumerated().map { i, m in
            let at = "\(source) \(field)[\(i)]"
            guard let obj = m as? [String: Any] else { throw TrainingError.file(at, "a message must be an object") }
            let name = try InstructionData.string(obj, "role", at)!
            guard let role = ChatTemplate.Role(rawValue: name) else { throw TrainingError.file(at, "unknown role \"\(name)\" (system, user, assistant)") }
            return .init(role, try InstructionData.string(obj, "content", at)!)
        }
    }

    /// ShareGPT's [{"from", "value"}] turns: human → user, gpt → assistant, system.
    static func shareGPT(_ v: Any, field: String, source: String) throws -> [ChatTemplate.Message] {
        guard let list = v as? [Any], !list.isEmpty else { throw TrainingError.file(source, "field \"\(field)\" must be a non-empty list of turns") }
        let roles: [String: ChatTemplate.Role] = ["human": .user, "user": .user, "gpt": .assistant, "assistant": .assistant, "system": .system]
        return try list.enumerated().map { i, m in
            let at = "\(source) \(field)[\(i)]"
            guard let obj = m as? [String: Any] else { throw TrainingError.file(at, "a turn must be an object") }
            let name = try InstructionData.string(obj, "from", at)!
            guard let role = roles[name] else { throw TrainingError.file(at, "unknown speaker \"\(name)\" (human, gpt, system)") }
            return .init(role, try InstructionData.string(obj, "value", at)!)
        }
    }

    /// Chat segments with every trained segment but the last turned into context.
    static func finalReplyOnly(_ segments: [(text: String, trained: Bool)]) -> [(text: String, trained: Bool)] {
        guard let last = segments.lastIndex(where: \.trained) else { return segments }
        return segments.enumerated().map { ($1.text, $0 == last) }
    }
}
