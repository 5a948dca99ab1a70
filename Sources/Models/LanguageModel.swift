import NN
import Tensors

/// What generation, chat, logits and perplexity need from a model, whatever its architecture
/// (GPT, Llama): ids in, next-token logits out, optionally continuing a KV cache.
public protocol LanguageModel: Module {
    var vocabularySize: Int { get }
    /// The longest sequence the model handles (position embeddings or RoPE's trained range).
    var contextLength: Int { get }
    /// Logits (B, T, V) for ids (B·T); with a cache, the ids continue the cached positions.
    func callAsFunction(_ ids: [Int32], batch: Int, length: Int, cache: KVCache?) -> Tensor
    /// An empty cache for this model, grown as needed up to `capacity` positions.
    func makeCache(batch: Int, capacity: Int?) -> KVCache
}

extension GPT: LanguageModel {
    public var vocabularySize: Int { config.vocabularySize }
    public var contextLength: Int { config.contextLength }
}
