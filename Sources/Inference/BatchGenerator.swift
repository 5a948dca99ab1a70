import Foundation
import Models
import Tensors

/// Generation for many sequences at once (continuous batching): every `step()` runs one forward
/// pass over all active sequences — a prompt chunk for those still reading their prompt, the last
/// sampled token for the others — so each weight is read once per step for all of them. Sequences
/// join with `add` and leave with `remove` (or when they finish) between steps; each has its own
/// cache, positions, sampler and limits.
public final class BatchGenerator {
    public let model: any LanguageModel
    /// Prompt tokens fed per sequence per step (longer prompts take several steps).
    public let prefillChunk: Int
    /// The most tokens (prompt + generated) one sequence's cache holds (nil: the model's context).
    public let cacheCapacity: Int?

    public struct Request {
        public var prompt: [Int32]
        public var maxNewTokens: Int
        public var sampler: Sampler
        public var stopIds: Set<Int32>
        /// Log-probabilities to report with each token: nil none, k the chosen token's and the
        /// k most likely (from the model's distribution, before temperature and truncation).
        public var logprobs: Int?
        public init(prompt: [Int32], maxNewTokens: Int, sampler: Sampler = .greedy, stopIds: Set<Int32> = [], logprobs: Int? = nil) {
            self.prompt = prompt; self.maxNewTokens = maxNewTokens; self.sampler = sampler; self.stopIds = stopIds; self.logprobs = logprobs
        }
    }

    /// A token with its log-probability.
    public struct TokenLogprob: Sendable, Equatable {
        public let id: Int32
        public let logprob: Float
        public init(id: Int32, logprob: Float) { self.id = id; self.logprob = logprob }
    }

    public enum FinishReason: Equatable, Sendable {
        case stop(Int32)        // a stop id was sampled (not part of the output)
        case length             // max new tokens, or the context is full
    }

    /// What a step did for one sequence: the token it produced (if any) and whether it finished.
    public struct Event: Sendable {
        public let id: Int
        public let token: Int32?
        public let finished: FinishReason?
        /// With `Request.logprobs`: the sampled token's log-probability (the stop id's, for a stop)
        /// and the most likely tokens, best first.
        public var logprob: Float? = nil
        public var top: [TokenLogprob] = []
    }

    final class Sequence {
        let id: Int
        let cache: KVCache
        var pending: [Int32]                  // prompt tokens not yet fed
        var last: Int32?                      // the sampled token to feed next
        var generated: [Int32] = []
        var sampler: Sampler
        let request: Request
        init(id: Int, cache: KVCache, request: Request) {
            self.id = id; self.cache = cache; self.request = request
            pending = request.prompt; sampler = request.sampler
        }
    }

    private var sequences: [Sequence] = []
    private var nextId = 0

    public init(model: any LanguageModel, prefillChunk: Int = 256, cacheCapacity: Int? = nil) {
        precondition(prefillChunk > 0, "BatchGenerator: prefill chunk \(prefillChunk)")
        self.model = model
        self.prefillChunk = prefillChunk
        self.cacheCapacity = cacheCapacity.map { min($0, model.contextLength) }
        model.eval()
    }

    /// Sequences in the batch.
    public var active: Int { sequences.count }
    public var activeIds: [Int] { sequences.map(\.id) }

    /// Adds a sequence; returns its id. A prompt that is empty, too long or holds an id outside
    /// the vocabulary is a thrown error, and the batch is unchanged.
    @discardableResult
    public func add(_ request: Request) throws -> Int {
        guard !request.prompt.isEmpty else { throw ModelError.input("a request with an empty prompt") }
        guard request.maxNewTokens >= 0 else { throw ModelError.input("max new tokens \(request.maxNewTokens)") }
        let context = cacheCapacity ?? model.contextLength
        guard request.prompt.count < context else {
            throw ModelError.input("a prompt of \(request.prompt.count) tokens does not fit the context of \(context)")
        }
        if let k = request.logprobs, k < 0 || k > model.vocabularySize { throw ModelError.input("logprobs \(k)") }
        for (i, id) in request.prompt.enumerated() where id < 0 || Int(id) >= model.vocabularySize {
            throw ModelError.input("prompt: id \(id) at position \(i) is outside the vocabulary (0..<\(model.vocabularySize))")
        }
        let s = Sequence(id: nextId, cache: model.makeCache(capacity: cacheCapacity), request: request)
        nextId += 1
        sequences.append(s)
        return s.id
    }

    /// Drops a sequence (finished elsewhere, or cancelled); the others go on unchanged.
    public func remove(_ id: Int) { sequences.removeAll { $0.id == id } }

    /// The ids generated so far for a sequence still in the batch.
    public func generated(_ id: Int) -> [Int32]? { sequences.first { $0.id == id }?.generated }

    /// One forward pass over every active sequence. Finished sequences leave the batch.
    public func step() throws -> [Event] {
        guard !sequences.isEmpty else { return [] }
        var inputs: [SequenceInput] = [], sampling: [Bool] = []
        for s in sequences {
            if !s.pending.isEmpty {
                let chunk = Array(s.pending.prefix(prefillChunk))
                s.pending.removeFirst(chunk.count)
                let done = s.pending.isEmpty                             // the prompt's last chunk: sample after it
                inputs.append(SequenceInput(tokens: chunk, cache: s.cache, logits: done ? .last : .none))
                sampling.append(done)
            } else {
                inputs.append(SequenceInput(tokens: [s.last!], cache: s.cache, logits: .last))
                sampling.append(true)
            }
        }
        let logits = try model.forward(inputs)                          // (rows, V)
        let v = model.vocabularySize
        var events: [Event] = [], row = 0, finished: [Int] = []
        for (s, samples) in zip(sequences, sampling) where samples {
            defer { row += 1 }
            if s.request.maxNewTokens == 0 { finished.append(s.id); events.append(Event(id: s.id, token: nil, finished: .length)); continue }
            let scores = UnsafeBufferPointer(start: logits.data + row * v, count: v)
            let next = s.sampler.sample(scores)
            var event: Event
            if s.request.stopIds.contains(next) {
                finished.append(s.id)
                event = Event(id: s.id, token: nil, finished: .stop(next))
            } else {
                s.generated.append(next)
                s.last = next
                let full = s.generated.count >= s.request.maxNewTokens || s.cache.length >= s.cache.capacity
                if full { finished.append(s.id) }
                event = Event(id: s.id, token: next, finished: full ? .length : nil)
            }
            if let k = s.request.logprobs {
                let logZ = Self.logSumExp(scores)
                event.logprob = scores[Int(next)] - logZ
                event.top = k == 0 ? [] : Sampler.best(k, of: scores).map { TokenLogprob(id: Int32($0), logprob: scores[$0] - logZ) }
            }
            events.append(event)
        }
        sequences.removeAll { finished.contains($0.id) }
        return events
    }

    /// log Σ exp(x), in Double.
    static func logSumExp(_ x: UnsafeBufferPointer<Float>) -> Float {
        let m = x.max() ?? 0
        var sum = 0.0
        for value in x { sum += Foundation.exp(Double(value - m)) }
        return m + Float(Foundation.log(sum))
    }
}
