import Foundation
import Models
import Tensors

/// Autoregressive generation of one sequence with a KV cache: the prompt is run once (prefill,
/// logits of its last position only), then each new token is fed alone, reusing the keys and
/// values of everything before it. (`BatchGenerator` does the same for many sequences at once.)
public struct Generator {
    public let model: any LanguageModel
    public var sampler: Sampler
    /// Generation stops after producing one of these ids (e.g. <|endoftext|>); it is not returned.
    public var stopIds: Set<Int32> = []
    public var useCache = true
    /// Timings of the last call: prompt (prefill) and generated tokens.
    public private(set) var stats = Stats()

    public struct Stats: Sendable {
        public var promptTokens = 0, promptSeconds = 0.0
        public var generatedTokens = 0, generateSeconds = 0.0
        /// The id that ended generation, if a stop id did.
        public var stoppedBy: Int32? = nil
        public var promptTokensPerSecond: Double { Double(promptTokens) / max(promptSeconds, 1e-9) }
        public var generatedTokensPerSecond: Double { Double(generatedTokens) / max(generateSeconds, 1e-9) }
    }

    public init(model: any LanguageModel, sampler: Sampler, stopIds: Set<Int32> = []) {
        self.model = model
        self.sampler = sampler
        self.stopIds = stopIds
    }

    /// Generates up to `maxNewTokens` ids after `prompt` (stopping early at a stop id, at the end of
    /// the context, or when `onToken` returns false). Returns the generated ids only.
    ///
    /// With `cache` (a conversation that goes on), `prompt` holds only the ids that follow the
    /// cached positions; they and the generated ids (all but the last) are added to the cache.
    /// A prompt that does not fit, or holds an id outside the vocabulary, is a thrown error.
    public mutating func generate(prompt: [Int32], maxNewTokens: Int, cache external: KVCache? = nil,
                                  onToken: (Int32) -> Bool = { _ in true }) throws -> [Int32] {
        guard !prompt.isEmpty else { throw ModelError.input("generate: the prompt is empty") }
        let v = model.vocabularySize
        model.eval()
        var stats = Stats()
        let model = self.model, stopIds = self.stopIds, sampler = self.sampler     // (its generator advances in place)
        defer { self.stats = stats }
        return try withNoGrad { () throws -> [Int32] in
            var out: [Int32] = []
            let cache = external ?? (useCache ? model.makeCache(capacity: nil) : nil)
            let limit = cache?.capacity ?? model.contextLength            // positions the sequence may reach
            var sequence = prompt
            var started = Date()
            var logits: Tensor, row: UnsafeMutablePointer<Float>
            if let cache {
                logits = try model.forward([SequenceInput(tokens: prompt, cache: cache)])    // (1, V): prefill
                row = logits.data
            } else {
                logits = try model.logits(prompt, batch: 1, length: prompt.count)           // (1, T, V)
                row = logits.data + (prompt.count - 1) * v
            }
            stats.promptTokens = prompt.count
            stats.promptSeconds = Date().timeIntervalSince(started)
            started = Date()
            defer { stats.generatedTokens = out.count; stats.generateSeconds = Date().timeIntervalSince(started) }
            while out.count < maxNewTokens {
                let next = sampler.sample(UnsafeBufferPointer(start: row, count: v))
                if stopIds.contains(next) { stats.stoppedBy = next; break }
                out.append(next)
                sequence.append(next)
                let fed = cache?.length ?? (sequence.count - 1)               // positions the model has seen
                if !onToken(next) || fed >= limit || out.count == maxNewTokens { break }
                if let cache {
                    logits = try model.forward([SequenceInput(tokens: [next], cache: cache)])    // (1, V)
                    row = logits.data
                } else {
                    logits = try model.logits(sequence, batch: 1, length: sequence.count)      // the whole prefix again
                    row = logits.data + (sequence.count - 1) * v
                }
            }
            return out
        }
    }
}
