import Models
import Tensors

/// Autoregressive generation with a KV cache: the prompt is run once (prefill), then each new
/// token is fed alone, reusing the keys and values of everything before it.
public struct Generator {
    public let model: GPT
    public var sampler: Sampler
    /// Generation stops after producing one of these ids (e.g. <|endoftext|>); it is not returned.
    public var stopIds: Set<Int32> = []
    public var useCache = true

    public init(model: GPT, sampler: Sampler, stopIds: Set<Int32> = []) {
        self.model = model
        self.sampler = sampler
        self.stopIds = stopIds
    }

    /// Generates up to `maxNewTokens` ids after `prompt` (stopping early at a stop id, at the end of
    /// the context, or when `onToken` returns false). Returns the generated ids only.
    public func generate(prompt: [Int32], maxNewTokens: Int, onToken: (Int32) -> Bool = { _ in true }) -> [Int32] {
        precondition(!prompt.isEmpty, "generate: empty prompt")
        let v = model.config.vocabularySize, context = model.config.contextLength
        model.eval()
        return withNoGrad {
            var out: [Int32] = []
            var sequence = prompt
            let cache = useCache ? model.makeCache(capacity: context) : nil
            var logits = model(prompt, batch: 1, length: prompt.count, cache: cache)    // (1, T, V): prefill
            var row = logits.data + (prompt.count - 1) * v
            while out.count < maxNewTokens {
                let next = sampler.sample(UnsafeBufferPointer(start: row, count: v))
                if stopIds.contains(next) { break }
                out.append(next)
                sequence.append(next)
                if !onToken(next) || sequence.count >= context { break }
                if let cache {
                    logits = model([next], batch: 1, length: 1, cache: cache)            // (1, 1, V)
                    row = logits.data
                } else {
                    logits = model(sequence, batch: 1, length: sequence.count)         // (1, T, V): the whole prefix again
                    row = logits.data + (sequence.count - 1) * v
                }
            }
            return out
        }
    }
}
