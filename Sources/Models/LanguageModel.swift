import NN
import Tensors

/// One sequence's part of a ragged inference batch: tokens that continue its cache (a whole
/// prompt, a chunk of one, or the one token sampled last), and which logits it wants back.
public struct SequenceInput {
    public enum Logits: Sendable { case last, all, none }
    public var tokens: [Int32]
    public var cache: KVCache
    public var logits: Logits

    public init(tokens: [Int32], cache: KVCache, logits: Logits = .last) {
        self.tokens = tokens; self.cache = cache; self.logits = logits
    }
}

/// What generation, chat, logits, perplexity and training need from a model, whatever its
/// architecture: ids in, next-token logits out.
public protocol LanguageModel: Module {
    var vocabularySize: Int { get }
    /// The longest sequence the model handles (position embeddings or RoPE's trained range).
    var contextLength: Int { get }
    /// A short description: architecture, sizes, weight format.
    var summary: String { get }
    /// Logits (B, T, V) for ids (B·T), every sequence from position 0, no cache: training and
    /// scoring. Differentiable.
    func logits(_ ids: [Int32], batch: Int, length: Int) throws(ModelError) -> Tensor
    /// Mean next-token cross-entropy: inputs (B, T) predict targets (B, T); -100 targets are ignored.
    func loss(_ ids: [Int32], targets: [Int32], batch: Int, length: Int) throws(ModelError) -> Tensor
    /// One inference step over a ragged batch: each sequence's tokens continue its own cache at its
    /// own positions. Returns the logits asked for, (rows, V), sequence by sequence.
    func forward(_ batch: [SequenceInput]) throws(ModelError) -> Tensor
    /// An empty cache for one sequence, up to `capacity` positions (default: the context).
    func makeCache(capacity: Int?) -> KVCache
}

extension LanguageModel {
    public func makeCache() -> KVCache { makeCache(capacity: nil) }
}

/// A model that can be trained and checkpointed: its dropout generator (saved for exact resumes)
/// and a way to write itself as a folder `ModelFolder.load` reads back.
public protocol TrainableModel: LanguageModel {
    var rng: RandomGenerator { get }
    /// The architecture's name in checkpoints and commands ("gpt", "llama").
    var architecture: String { get }
    func save(to folder: String) throws
}
