import Foundation
import Models
import Tokenization

/// A conversation with a chat model that keeps its KV cache between turns.
///
/// Each turn the whole conversation is rendered with the model's chat format; the cache keeps
/// every token already processed, so a turn runs only the tokens that are new (the cache is cut
/// back to the longest prefix it shares with the new rendering). When the conversation outgrows
/// the context, the oldest exchanges are dropped (the system message stays).
public final class ChatSession {
    public let loaded: LoadedModel
    public let template: ChatTemplate
    public var generator: Generator
    public private(set) var messages: [ChatTemplate.Message]
    private let baseMessages: [ChatTemplate.Message]
    private let cache: KVCache
    private var cached: [Int32] = []                 // the ids whose keys/values the cache holds

    public struct Reply: Sendable {
        public var text: String
        public var stats: Generator.Stats
        /// True when the reply ended at the token limit rather than at the model's end of turn.
        public var truncated: Bool
    }

    public init(_ loaded: LoadedModel, system: String? = nil, sampler: Sampler) throws {
        guard let template = loaded.chat, loaded.tokenizer != nil else { throw InferenceError("the model has no chat format") }
        self.loaded = loaded
        self.template = template
        generator = Generator(model: loaded.model, sampler: sampler, stopIds: loaded.stopIds)
        messages = system.map { [.init(.system, $0)] } ?? []
        baseMessages = messages
        cache = loaded.model.makeCache(capacity: nil)
    }

    /// Forgets the conversation (the system message stays).
    public func reset() {
        messages = baseMessages
        cache.reset()
        cached = []
    }

    /// Adds the user's message and generates the reply, passing its text to `onText` as it comes.
    public func send(_ text: String, maxNewTokens: Int, onText: (String) -> Void = { _ in }) throws -> Reply {
        let context = cache.capacity
        messages.append(.init(.user, text))
        var ids = try loaded.encode(template.render(messages))
        while ids.count + maxNewTokens > context, let drop = messages.firstIndex(where: { $0.role != .system }), messages.count - drop > 1 {
            messages.remove(at: drop)
            ids = try loaded.encode(template.render(messages))
        }
        guard ids.count < context else {
            messages.removeLast()
            throw InferenceError("the message is longer than the model's context (\(ids.count) tokens of \(context))")
        }
        // Keep the cached prefix that still matches; run only what follows it.
        var keep = 0
        while keep < min(cached.count, ids.count - 1) && cached[keep] == ids[keep] { keep += 1 }
        if (try? cache.truncate(to: keep)) == nil { cache.reset(); keep = 0 }
        cached.removeLast(cached.count - keep)
        let fresh = Array(ids[keep...])
        var stream = try loaded.textStream()
        let before = cache.length
        let reply = try generator.generate(prompt: fresh, maxNewTokens: min(maxNewTokens, context - ids.count), cache: cache) { id in
            onText(stream.push(id))
            return true
        }
        onText(stream.finish())
        cached += fresh + reply.prefix(cache.length - before - fresh.count)
        let replyText = try loaded.decode(reply)
        messages.append(.init(.assistant, replyText))
        return Reply(text: replyText, stats: generator.stats, truncated: generator.stats.stoppedBy == nil)
    }
}
