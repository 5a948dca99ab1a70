import NN
import Tensors

/// A decoder turned classifier (the book's chapter 6, transformers' `…ForSequenceClassification`):
/// the output head is replaced by `score`, a (classes, C) matrix without bias, read at the last
/// real token of each sequence, the one that has seen the whole text.
///
///   ids (B, T) → decoder → final norm (B·T, C) → rows at position length−1 (B, C) → score → (B, K)
///
/// Sequences are right-padded; causal attention keeps padding out of every real position.
public final class SequenceClassifier: Module {
    public let base: DecoderModel
    public var score: Linear                 // (K, C)
    public let labels: [String]

    /// A fresh head: N(0, 0.02), as transformers initializes `score`.
    public init(base: DecoderModel, labels: [String], rng: RandomGenerator) {
        self.base = base
        self.labels = labels
        score = Linear(weight: Tensor.randn([labels.count, base.spec.embedding], std: 0.02, rng: rng))
    }

    /// A head with given weights (a saved run's), (K, C).
    public init(base: DecoderModel, labels: [String], score: Tensor) throws(ModelError) {
        guard score.shape == [labels.count, base.spec.embedding] else {
            throw .weights("classification head: expected \(Shape.describe([labels.count, base.spec.embedding])) for \(labels.count) labels, got \(Shape.describe(score.shape))")
        }
        self.base = base
        self.labels = labels
        self.score = Linear(weight: score)
    }

    /// Class logits (B, K) for B right-padded rows of `length` ids, each with its real `lengths[b]`.
    public func logits(_ ids: [Int32], lengths: [Int], length: Int) throws(ModelError) -> Tensor {
        let batch = lengths.count
        for (b, n) in lengths.enumerated() where n < 1 || n > length {
            throw .input("sequence \(b) has length \(n), outside 1...\(length)")
        }
        let h = try base.features(ids, batch: batch, length: length)                  // (B·T, C)
        let last = h.gatherRows(lengths.enumerated().map { Int32($0.offset * length + $0.element - 1) })   // (B, C)
        return score(last)                                                          // (B, K)
    }

    /// Mean cross-entropy of the class logits against label indices (B).
    public func loss(_ ids: [Int32], lengths: [Int], length: Int, labels targets: [Int32]) throws(ModelError) -> Tensor {
        guard targets.count == lengths.count else { throw .input("\(targets.count) labels for \(lengths.count) sequences") }
        for (i, t) in targets.enumerated() where t < 0 || Int(t) >= labels.count {
            throw .input("label \(t) of sequence \(i) is not one of the \(labels.count) classes")
        }
        return try logits(ids, lengths: lengths, length: length).crossEntropy(targets: targets)
    }
}
