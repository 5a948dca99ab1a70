import NN
import Tensors

/// GPT: token and position embeddings, a stack of transformer blocks, a final LayerNorm and the
/// output head (tied to the token embeddings, or its own matrix). Reads top to bottom:
///
///   ids (B, T) → wte[ids] + wpe[0..<T] (B, T, C) → blocks → lnF → logits (B, T, V)
public final class GPT: Module {
    public let config: GPTConfig
    public var wte: Embedding                 // (V, C) token embeddings
    public var wpe: Embedding                 // (P, C) position embeddings
    public var blocks: [TransformerBlock]
    public var lnF: LayerNorm
    public var lmHead: Linear?                // (V, C) when not tied to wte
    var embeddingDropout: Dropout
    /// The generator the dropout layers draw from (saved in checkpoints for exact resumes).
    public let rng: RandomGenerator

    /// GPT-2's initialization: N(0, 0.02) weights, zero biases, residual projections scaled by 1/√(2·layers).
    public init(_ config: GPTConfig, rng: RandomGenerator) {
        self.config = config
        self.rng = rng
        let c = config.embedding
        wte = Embedding(config.vocabularySize, c, std: 0.02, rng: rng)
        wpe = Embedding(config.contextLength, c, std: 0.01, rng: rng)
        blocks = (0..<config.layers).map { _ in
            TransformerBlock(embedding: c, heads: config.heads, dropout: config.dropout, bias: config.bias,
                             norm: config.norm, eps: config.layerNormEpsilon, rng: rng)
        }
        lnF = LayerNorm(c, eps: config.layerNormEpsilon, bias: config.bias)
        lmHead = config.tiedEmbeddings ? nil : Linear(c, config.vocabularySize, bias: false, rng: rng)
        embeddingDropout = Dropout(config.dropout, rng: rng)
        super.init()
        for (name, p) in namedParameters() {
            if name.hasSuffix(".bias") { p.fill(0); continue }
            if name.hasPrefix("blocks") && name.hasSuffix("weight") && p.rank == 2 {
                let std: Float = name.hasSuffix("proj.weight") ? 0.02 / Float(2 * config.layers).squareRoot() : 0.02
                p.assign(Tensor.randn(p.shape, std: std, rng: rng))
            }
        }
        if let lmHead { lmHead.weight.assign(Tensor.randn(lmHead.weight.shape, std: 0.02, rng: rng)) }
    }

    /// The output matrix (V, C).
    public var outputWeight: Tensor { lmHead?.weight ?? wte.weight }

    /// Final hidden states (B, T, C) for ids of shape (B, T). With a cache, the ids continue the
    /// cached positions (their keys and values are added to it).
    public func hidden(_ ids: [Int32], batch: Int, length: Int, cache: KVCache? = nil) -> Tensor {
        let start = cache?.length ?? 0
        precondition(ids.count == batch * length, "GPT: \(ids.count) ids for batch \(batch) × length \(length)")
        precondition(start + length <= config.contextLength, "GPT: position \(start + length) exceeds the context \(config.contextLength)")
        let positions = (start..<(start + length)).map { Int32($0) }
        let tok = wte(ids, shape: [batch, length])                    // (B, T, C)
        let pos = wpe(positions, shape: [length])                     // (T, C), broadcast over B
        var x = embeddingDropout(tok + pos)                           // (B, T, C)
        for (i, block) in blocks.enumerated() { x = block(x, cache: cache, layer: i) }   // (B, T, C)
        cache?.advance(length)
        return lnF(x)                                                 // (B, T, C)
    }

    /// Logits (B, T, V).
    public func callAsFunction(_ ids: [Int32], batch: Int, length: Int, cache: KVCache? = nil) -> Tensor {
        linear(hidden(ids, batch: batch, length: length, cache: cache), outputWeight)   // (B, T, V)
    }

    /// An empty cache sized for this model.
    public func makeCache(batch: Int = 1, capacity: Int? = nil) -> KVCache {
        KVCache(layers: config.layers, batch: batch, kvHeads: config.heads, headSize: config.embedding / config.heads,
                capacity: capacity ?? config.contextLength)
    }

    /// Mean next-token cross-entropy: inputs (B, T) predict targets (B, T); -100 targets are ignored.
    public func loss(_ ids: [Int32], targets: [Int32], batch: Int, length: Int) -> Tensor {
        let logits = self(ids, batch: batch, length: length)                  // (B, T, V)
        return logits.reshaped(batch * length, config.vocabularySize).crossEntropy(targets: targets)
    }
}
