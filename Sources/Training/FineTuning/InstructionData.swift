import Foundation
import Tokenization

/// One supervised fine-tuning example as text: segments in order, each either trained on (the
/// response) or context only (the prompt, masked out of the loss unless `--no-mask-prompt`).
public struct SFTExample: Sendable, Equatable {
    public var segments: [(text: String, trained: Bool)]
    /// Where it came from, for error messages: "FILE:LINE" or "FILE[index]".
    public var source: String

    public init(segments: [(text: String, trained: Bool)], source: String) { self.segments = segments; self.source = source }

    public static func == (a: SFTExample, b: SFTExample) -> Bool {
        a.source == b.source && a.segments.map(\.text) == b.segments.map(\.text) && a.segments.map(\.trained) == b.segments.map(\.trained)
    }
}

/// How an instruction record ({"instruction", "input", "output"}, or prompt/completion) becomes text.
public enum PromptFormat: String, Codable, Sendable, CaseIterable {
    /// The book's Alpaca text: "Below is an instruction … ### Instruction:\n… ### Input:\n… ### Response:\n".
    case book
    /// A user message and the assistant's reply, rendered with the model's chat template (ChatML).
    case chat
}

/// Reads SFT data: JSON (an array of records) or JSONL (one record per line), every record one of
///   {"instruction", "input"?, "output"}        Alpaca (the book's chapter 7)
///   {"messages": [{"role", "content"}, ...]}   a conversation: assistant turns are trained
///   {"prompt", "completion"}                   the completion is trained
///   {"text"}                                   all of it is trained
/// Errors name the file, the line (JSONL) or record index (JSON), and the field.
public enum InstructionData {
    public static let bookPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."

    /// The book's prompt for an instruction and optional input, ending where the response starts.
    public static func bookPrompt(instruction: String, input: String) -> String {
        var s = bookPreamble + "\n\n### Instruction:\n" + instruction
        if !input.isEmpty { s += "\n\n### Input:\n" + input }
        return s + "\n\n### Response:\n"
    }

    public static func read(_ path: String, format: PromptFormat, template: ChatTemplate,
                            placeholders: [String: String] = [:]) throws -> [SFTExample] {
        var out: [SFTExample] = []
        for (source, record) in try records(path) {
            out.append(try example(record, source: source, format: format, template: template, placeholders: placeholders))
        }
        guard !out.isEmpty else { throw TrainingError.file(path, "holds no records") }
        return out
    }

    /// JSON objects with their "FILE:LINE" / "FILE[i]" sources: a .jsonl file line by line, else
    /// one JSON array (a .json file whose first character is "[").
    public static func records(_ path: String) throws -> [(String, [String: Any])] {
        let data = try readFile(path)
        let text = try utf8Text(data, source: path)
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.first == "[" {
            let json: Any
            do { json = try JSONSerialization.jsonObject(with: Data(text.utf8)) } catch {
                throw TrainingError.file(path, "invalid JSON: \(jsonMessage(error))")
            }
            guard let array = json as? [Any] else { throw TrainingError.file(path, "expected an array of records") }
            return try array.enumerated().map { i, r in
                guard let obj = r as? [String: Any] else { throw TrainingError.file("\(path)[\(i)]", "a record must be a JSON object") }
                return ("\(path)[\(i)]", obj)
            }
        }
        var out: [(String, [String: Any])] = []
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {   // "\r\n" is one Character
            guard line.contains(where: { !$0.isWhitespace }) else { continue }
            let source = "\(path):\(n + 1)"
            let json: Any
            do { json = try JSONSerialization.jsonObject(with: Data(line.utf8)) } catch {
                throw TrainingError.file(source, "invalid JSON: \(jsonMessage(error))")
            }
            guard let obj = json as? [String: Any] else { throw TrainingError.file(source, "a record must be a JSON object") }
            out.append((source, obj))
        }
        return out
    }

    static func jsonMessage(_ error: Error) -> String {
        (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
    }

    static func string(_ r: [String: Any], _ key: String, _ source: String, required: Bool = true, nonEmpty: Bool = false) throws -> String? {
        guard let v = r[key], !(v is NSNull) else {
            if required { throw TrainingError.file(source, "missing field \"\(key)\"") }
            return nil
        }
        guard let s = v as? String else { throw TrainingError.file(source, "field \"\(key)\" must be a string") }
        if nonEmpty && s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw TrainingError.file(source, "field \"\(key)\" is empty") }
        return s
    }

    /// One record as an example.
    public static func example(_ r: [String: Any], source: String, format: PromptFormat, template: ChatTemplate,
                               placeholders: [String: String] = [:]) throws -> SFTExample {
        func fill(_ s: String) -> String {
            placeholders.reduce(s) { $0.replacingOccurrences(of: "{{\($1.key)}}", with: $1.value) }
        }
        if let messages = r["messages"] {
            guard let list = messages as? [Any], !list.isEmpty else { throw TrainingError.file(source, "field \"messages\" must be a non-empty list") }
            var turns: [ChatTemplate.Message] = []
            for (i, m) in list.enumerated() {
                guard let obj = m as? [String: Any] else { throw TrainingError.file(source, "messages[\(i)] must be an object") }
                let roleName = try string(obj, "role", "\(source) messages[\(i)]")!
                guard let role = ChatTemplate.Role(rawValue: roleName) else {
                    throw TrainingError.file(source, "messages[\(i)]: unknown role \"\(roleName)\" (system, user, assistant)")
                }
                let content = try string(obj, "content", "\(source) messages[\(i)]", nonEmpty: role == .assistant)!
                turns.append(.init(role, fill(content)))
            }
            guard turns.contains(where: { $0.role == .assistant }) else { throw TrainingError.file(source, "messages has no assistant turn to train on") }
            return SFTExample(segments: chatSegments(turns, template: template), source: source)
        }
        if r["instruction"] != nil || r["output"] != nil {
            let instruction = fill(try string(r, "instruction", source, nonEmpty: true)!)
            let input = fill(try string(r, "input", source, required: false) ?? "")
            let output = fill(try string(r, "output", source, nonEmpty: true)!)
            switch format {
            case .book:
                return SFTExample(segments: [(bookPrompt(instruction: instruction, input: input), false), (output, true)], source: source)
            case .chat:
                let user = input.isEmpty ? instruction : instruction + "\n\n" + input
                return SFTExample(segments: chatSegments([.init(.user, user), .init(.assistant, output)], template: template), source: source)
            }
        }
        if r["prompt"] != nil || r["completion"] != nil {
            let prompt = fill(try string(r, "prompt", source)!)
            let completion = fill(try string(r, "completion", source, nonEmpty: true)!)
            return SFTExample(segments: [(prompt, false), (completion, true)], source: source)
        }
        if r["text"] != nil {
            return SFTExample(segments: [(fill(try string(r, "text", source, nonEmpty: true)!), true)], source: source)
        }
        throw TrainingError.file(source, "not a known record: expected \"instruction\"/\"output\", \"messages\", \"prompt\"/\"completion\" or \"text\" (found \(r.keys.sorted().joined(separator: ", ")))")
    }

    /// A conversation through the chat template: every assistant reply (with the end marker that
    /// closes it) trained, everything else context.
    static func chatSegments(_ turns: [ChatTemplate.Message], template: ChatTemplate) -> [(text: String, trained: Bool)] {
        var segments: [(String, Bool)] = []
        var context = ""
        var history: [ChatTemplate.Message] = []
        for t in turns {
            if t.role == .assistant {
                // The rendered conversation so far, opening the assistant's turn.
                let before = template.render(history, generationPrompt: true)
                // The reply as the template writes it (Gemma's trims it): between the opened turn
                // and the end marker + newline that close it.
                let full = template.render(history + [t], generationPrompt: false)
                let reply = String(full.dropFirst(before.count).dropLast(template.turnEnd.count + 1))
                let rendered = String(before.dropFirst(context.count))
                segments.append((rendered, false))
                segments.append((reply + template.turnEnd, true))
                context = before + reply + template.turnEnd
                // The newline after the end marker is context for the next turn.
                history.append(t)
                if full.count > context.count { segments.append((String(full.dropFirst(context.count)), false)); context = full }
            } else {
                history.append(t)
            }
        }
        return segments.filter { !$0.0.isEmpty }
    }
}
