import Foundation
import Inference
import Tokenization

/// One completion request on its way through the engine, and the JSON OpenAI's clients expect
/// back: whole (`chat.completion`, `text_completion`) or as Server-Sent Events chunks.
struct Completion {
    enum Kind { case chat, text }
    let kind: Kind
    let id: String
    let created = Int(Date().timeIntervalSince1970)
    let model: String
    let settings: GenerationSettings
    let loaded: LoadedModel
    /// Prompt tokens of each prompt (chat: one).
    let promptTokens: [Int]

    init(kind: Kind, model: String, settings: GenerationSettings, loaded: LoadedModel, promptTokens: [Int]) {
        self.kind = kind
        self.model = model
        self.settings = settings
        self.loaded = loaded
        self.promptTokens = promptTokens
        id = (kind == .chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
    }

    var object: String { kind == .chat ? "chat.completion" : "text_completion" }
    var chunkObject: String { kind == .chat ? "chat.completion.chunk" : "text_completion" }

    /// What one choice has produced so far.
    struct Choice {
        var text = ""
        var finish: ServingEngine.Finish?
        var completionTokens = 0
        var tokens: [ServingEngine.Token] = []
        var error: String?
    }

    /// A token's text as the client sees it in log-probabilities (its own bytes, lossy for a
    /// piece of a character) and those bytes.
    func tokenText(_ id: Int32) -> (String, [UInt8]) {
        let bytes = loaded.tokenizer?.tokenBytes(UInt32(bitPattern: id))
            ?? (loaded.chars.flatMap { try? $0.decode([UInt32(bitPattern: id)]) }.map { Array($0.utf8) } ?? [])
        return (String(decoding: bytes, as: UTF8.self), bytes)
    }

    /// Chat log-probabilities: `{"content": [{token, logprob, bytes, top_logprobs: [...]}]}`.
    func chatLogprobs(_ tokens: [ServingEngine.Token]) -> [String: Any] {
        ["content": tokens.map { t -> [String: Any] in
            let (text, bytes) = tokenText(t.id)
            return ["token": text, "logprob": Double(t.logprob ?? 0), "bytes": bytes,
                    "top_logprobs": t.top.map { alt -> [String: Any] in
                        let (s, b) = tokenText(alt.id)
                        return ["token": s, "logprob": Double(alt.logprob), "bytes": b]
                    }]
        }]
    }

    /// Completion log-probabilities (the legacy shape): tokens, token_logprobs, top_logprobs
    /// (one {token: logprob} per position), text_offset.
    func textLogprobs(_ tokens: [ServingEngine.Token], offset: Int) -> [String: Any] {
        var texts: [String] = [], lps: [Double] = [], tops: [[String: Double]] = [], offsets: [Int] = []
        var at = offset
        for t in tokens {
            let (text, _) = tokenText(t.id)
            texts.append(text); lps.append(Double(t.logprob ?? 0)); offsets.append(at)
            at += text.utf8.count
            var top: [String: Double] = [:]
            for alt in t.top { let s = tokenText(alt.id).0; if top[s] == nil { top[s] = Double(alt.logprob) } }
            tops.append(top)
        }
        return ["tokens": texts, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets]
    }

    func usage(_ choices: [Choice]) -> [String: Any] {
        let prompt = promptTokens.reduce(0, +), completion = choices.reduce(0) { $0 + $1.completionTokens }
        return ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion]
    }

    /// The whole answer, once every choice is done.
    func response(_ choices: [Choice]) -> [String: Any] {
        let list: [[String: Any]] = choices.enumerated().map { i, c in
            let logprobs: Any = settings.logprobs == nil ? NSNull()
                : (kind == .chat ? chatLogprobs(c.tokens) : textLogprobs(c.tokens, offset: 0))
            var out: [String: Any] = ["index": i, "finish_reason": (c.finish ?? .length).openAI, "logprobs": logprobs]
            if kind == .chat { out["message"] = ["role": "assistant", "content": c.text] } else { out["text"] = c.text }
            return out
        }
        return ["id": id, "object": object, "created": created, "model": model, "choices": list, "usage": usage(choices),
                "system_fingerprint": NSNull()]
    }

    /// One streamed chunk for choice `index`: new text (chat: in `delta`; the first chunk of a
    /// chat choice also carries the role), its tokens' log-probabilities, and the finish reason
    /// on the last.
    func chunk(index: Int, text: String?, tokens: [ServingEngine.Token], finish: ServingEngine.Finish?, first: Bool,
               textOffset: Int) -> [String: Any] {
        var choice: [String: Any] = ["index": index, "finish_reason": finish.map { $0.openAI as Any } ?? NSNull()]
        let logprobs: Any = settings.logprobs == nil || tokens.isEmpty ? NSNull()
            : (kind == .chat ? chatLogprobs(tokens) : textLogprobs(tokens, offset: textOffset))
        choice["logprobs"] = logprobs
        if kind == .chat {
            var delta: [String: Any] = [:]
            if first { delta["role"] = "assistant" }
            if let text { delta["content"] = text }
            choice["delta"] = delta
        } else {
            choice["text"] = text ?? ""
        }
        return ["id": id, "object": chunkObject, "created": created, "model": model, "choices": [choice], "system_fingerprint": NSNull()]
    }

    /// The last chunk with `stream_options.include_usage`: no choices, the usage.
    func usageChunk(_ choices: [Choice]) -> [String: Any] {
        ["id": id, "object": chunkObject, "created": created, "model": model, "choices": [Any](), "usage": usage(choices),
         "system_fingerprint": NSNull()]
    }
}

extension ServingEngine.Finish {
    /// OpenAI's finish_reason (a cancelled choice is only seen when the server stops).
    var openAI: String { self == .length ? "length" : "stop" }
}

/// JSON text of a value made of dictionaries, arrays, strings, numbers and NSNull.
func jsonData(_ value: Any) -> Data {
    (try? JSONSerialization.data(withJSONObject: value, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
}
