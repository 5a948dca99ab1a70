import Foundation
import Inference
import Tokenization

/// A JSON value as the client sent it, so each field's type can be checked and named in the error.
public enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else if let o = try? c.decode([String: JSONValue].self) { self = .object(o) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "a value that is no JSON null, boolean, number (within a Double's range), string, array or object") }
    }

    /// The body of a request: a JSON object, or a 400 saying what is wrong with it.
    public static func object(from body: Data) throws -> [String: JSONValue] {
        guard !body.isEmpty else { throw APIError(status: 400, "the request has no body: send a JSON object", code: "invalid_json") }
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: body) } catch {
            guard String(data: body, encoding: .utf8) != nil else {
                throw APIError(status: 400, "the body is not valid UTF-8", code: "invalid_json")
            }
            throw APIError(status: 400, "the body is not valid JSON: \(describeJSONError(error, in: body))", code: "invalid_json")
        }
        guard case .object(let o) = value else { throw APIError(status: 400, "the body must be a JSON object", code: "invalid_json") }
        return o
    }

    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Reads typed fields out of a request object; absent and `null` fields read as nil, a field of
/// the wrong type or out of range is a 400 naming it.
struct Fields {
    let object: [String: JSONValue]
    let prefix: String

    init(_ object: [String: JSONValue], prefix: String = "") { self.object = object; self.prefix = prefix }

    func name(_ key: String) -> String { prefix + key }

    func value(_ key: String) -> JSONValue? {
        if let v = object[key], v != .null { return v }
        return nil
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw APIError.invalid(name(key), "\(name(key)) must be a boolean, got \(v.kind)") }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw APIError.invalid(name(key), "\(name(key)) must be a string, got \(v.kind)") }
        return s
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard case .number(let x) = v else { throw APIError.invalid(name(key), "\(name(key)) must be a number, got \(v.kind)") }
        guard range.contains(x) else { throw APIError.invalid(name(key), "\(name(key)) must be between \(short(range.lowerBound)) and \(short(range.upperBound)), got \(short(x))") }
        return x
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard case .number(let x) = v, x == x.rounded(), abs(x) < 9e15 else {
            throw APIError.invalid(name(key), "\(name(key)) must be an integer, got \(v == .null ? "null" : describe(v))")
        }
        guard range.contains(Int(x)) else {
            let allowed = range.upperBound == Int.max ? "\(range.lowerBound) or more" : "between \(range.lowerBound) and \(range.upperBound)"
            throw APIError.invalid(name(key), "\(name(key)) must be \(allowed), got \(Int(x))")
        }
        return Int(x)
    }

    func object(_ key: String) throws -> Fields? {
        guard let v = value(key) else { return nil }
        guard case .object(let o) = v else { throw APIError.invalid(name(key), "\(name(key)) must be an object, got \(v.kind)") }
        return Fields(o, prefix: name(key) + ".")
    }

    private func describe(_ v: JSONValue) -> String {
        if case .number(let x) = v { return short(x) }
        return v.kind
    }
}

func short(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }

/// What both completion endpoints share, read and checked: sampling, limits, stop strings,
/// log-probabilities, streaming.
public struct GenerationSettings: Sendable {
    public var maxTokens: Int?
    public var temperature: Float = 1
    public var topP: Float?
    public var topK: Int?
    public var seed: UInt64?
    public var stops: [String] = []
    /// nil: no log-probabilities; k: the chosen token's and the k most likely.
    public var logprobs: Int?
    public var n = 1
    public var stream = false
    public var includeUsage = false

    /// `maxParallel`: the server's --parallel (n may not exceed it); `context`: tokens a
    /// sequence may hold (max_tokens may not exceed it).
    init(_ f: Fields, chat: Bool, maxParallel: Int, context: Int) throws {
        let maxTokens = try f.integer("max_tokens", in: 0...Int.max)
        let maxCompletion = try f.integer("max_completion_tokens", in: 0...Int.max)
        for (key, v) in [("max_completion_tokens", maxCompletion), ("max_tokens", maxTokens)] {
            if let v, v > context {
                throw APIError.invalid(key, "\(key) is \(v), more than this server's context of \(context) tokens")
            }
        }
        self.maxTokens = maxCompletion ?? maxTokens
        temperature = Float(try f.number("temperature", in: 0...2) ?? 1)
        if let p = try f.number("top_p", in: 0...1) {
            guard p > 0 else { throw APIError.invalid("top_p", "top_p must be above 0 and at most 1, got 0") }
            topP = Float(p)
        }
        if let k = try f.integer("top_k", in: 0...1_000_000) { topK = k == 0 ? nil : k }
        if let s = try f.integer("seed", in: Int(Int64.min / 2)...Int(Int64.max / 2)) { seed = UInt64(bitPattern: Int64(s)) }
        if let v = f.value("stop") {
            switch v {
            case .string(let s): stops = [s]
            case .array(let list):
                guard list.count <= 16 else { throw APIError.invalid("stop", "stop holds \(list.count) strings; at most 16") }
                stops = try list.enumerated().map { i, item in
                    guard case .string(let s) = item else { throw APIError.invalid("stop", "stop[\(i)] must be a string, got \(item.kind)") }
                    return s
                }
            default: throw APIError.invalid("stop", "stop must be a string or an array of strings, got \(v.kind)")
            }
            if let i = stops.firstIndex(where: \.isEmpty) { throw APIError.invalid("stop", "stop[\(i)] is empty") }
        }
        if chat {
            let wanted = try f.bool("logprobs") ?? false
            let top = try f.integer("top_logprobs", in: 0...20)
            if top != nil && !wanted { throw APIError.invalid("top_logprobs", "top_logprobs needs logprobs: true") }
            logprobs = wanted ? (top ?? 0) : nil
        } else {
            logprobs = try f.integer("logprobs", in: 0...5)
        }
        n = try f.integer("n", in: 1...Int.max) ?? 1
        guard n <= maxParallel else { throw APIError.invalid("n", "n is \(n); this server generates at most \(maxParallel) at once (--parallel)") }
        stream = try f.bool("stream") ?? false
        if let options = try f.object("stream_options") {
            guard stream else { throw APIError.invalid("stream_options", "stream_options goes with stream: true") }
            includeUsage = try options.bool("include_usage") ?? false
        }
    }

    /// The sampler for choice `i` (seeds differ per choice; no seed: a random one).
    func sampler(choice i: Int) -> Sampler {
        let base = seed ?? UInt64.random(in: 0...UInt64.max)
        return Sampler(temperature: temperature, topK: topK, topP: topP, seed: base &+ UInt64(i))
    }
}

/// `POST /v1/chat/completions`, read: the messages in the model's chat format, as token ids.
public struct ChatRequest: Sendable {
    public var model: String?
    public var messages: [ChatTemplate.Message]
    public var settings: GenerationSettings

    public init(_ body: [String: JSONValue], maxParallel: Int, context: Int) throws {
        let f = Fields(body)
        model = try f.string("model")
        guard let raw = f.value("messages") else { throw APIError.invalid("messages", "messages is missing: give an array of {role, content}") }
        guard case .array(let list) = raw else { throw APIError.invalid("messages", "messages must be an array, got \(raw.kind)") }
        guard !list.isEmpty else { throw APIError.invalid("messages", "messages is empty: give at least one message") }
        messages = try list.enumerated().map { i, item in
            let at = "messages[\(i)]"
            guard case .object(let o) = item else { throw APIError.invalid(at, "\(at) must be an object with role and content, got \(item.kind)") }
            let m = Fields(o, prefix: at + ".")
            guard let roleName = try m.string("role") else { throw APIError.invalid(at + ".role", "\(at).role is missing") }
            let role: ChatTemplate.Role
            switch roleName {
            case "system", "developer": role = .system
            case "user": role = .user
            case "assistant": role = .assistant
            default: throw APIError.invalid(at + ".role", "\(at).role \"\(roleName)\" is not one of system, developer, user, assistant")
            }
            return ChatTemplate.Message(role, try Self.content(m, at: at))
        }
        settings = try GenerationSettings(f, chat: true, maxParallel: maxParallel, context: context)
    }

    /// A message's content: a string, or an array of text parts.
    static func content(_ m: Fields, at: String) throws -> String {
        guard let v = m.value("content") else {
            throw APIError.invalid(at + ".content", "\(at).content is missing")
        }
        switch v {
        case .string(let s): return s
        case .array(let parts):
            return try parts.enumerated().map { j, part in
                let where_ = "\(at).content[\(j)]"
                guard case .object(let p) = part, case .string("text")? = p["type"], case .string(let text)? = p["text"] else {
                    throw APIError.invalid(where_, "\(where_) must be {\"type\": \"text\", \"text\": ...}: this model reads text only")
                }
                return text
            }.joined()
        default: throw APIError.invalid(at + ".content", "\(at).content must be a string or an array of text parts, got \(v.kind)")
        }
    }
}

/// `POST /v1/completions`, read: one prompt or several, each text or token ids.
public struct CompletionRequest: Sendable {
    public enum Prompt: Sendable, Equatable { case text(String), ids([Int32]) }
    public var model: String?
    public var prompts: [Prompt]
    public var settings: GenerationSettings

    public init(_ body: [String: JSONValue], maxParallel: Int, context: Int) throws {
        let f = Fields(body)
        model = try f.string("model")
        guard let raw = f.value("prompt") else { throw APIError.invalid("prompt", "prompt is missing: give text or token ids") }
        func ids(_ list: [JSONValue], at: String) throws -> [Int32] {
            try list.enumerated().map { i, v in
                guard case .number(let x) = v, x == x.rounded(), x >= 0, x < 2_147_483_648 else {
                    throw APIError.invalid("prompt", "\(at)[\(i)] must be a token id (an integer ≥ 0), got \(v.kind == "a number" ? short({ if case .number(let x) = v { return x }; return 0 }()) : v.kind)")
                }
                return Int32(x)
            }
        }
        switch raw {
        case .string(let s): prompts = [.text(s)]
        case .array(let list) where list.isEmpty: throw APIError.invalid("prompt", "prompt is an empty array")
        case .array(let list):
            switch list[0] {
            case .number: prompts = [.ids(try ids(list, at: "prompt"))]
            case .string:
                prompts = try list.enumerated().map { i, v in
                    guard case .string(let s) = v else { throw APIError.invalid("prompt", "prompt[\(i)] must be a string, got \(v.kind)") }
                    return .text(s)
                }
            case .array:
                prompts = try list.enumerated().map { i, v in
                    guard case .array(let inner) = v else { throw APIError.invalid("prompt", "prompt[\(i)] must be an array of token ids, got \(v.kind)") }
                    return .ids(try ids(inner, at: "prompt[\(i)]"))
                }
            default: throw APIError.invalid("prompt", "prompt must be text, token ids, or a list of either; got an array of \(list[0].kind)")
            }
        default: throw APIError.invalid("prompt", "prompt must be text, token ids, or a list of either; got \(raw.kind)")
        }
        if try f.bool("echo") == true { throw APIError.invalid("echo", "echo is not supported: the prompt is not repeated in the answer") }
        if let suffix = try f.string("suffix"), !suffix.isEmpty { throw APIError.invalid("suffix", "suffix is not supported (no fill-in-the-middle)") }
        settings = try GenerationSettings(f, chat: false, maxParallel: maxParallel, context: context)
        guard prompts.count * settings.n <= maxParallel else {
            throw APIError.invalid("prompt", "\(prompts.count) prompts × n \(settings.n) = \(prompts.count * settings.n) completions; this server generates at most \(maxParallel) at once (--parallel)")
        }
    }
}
