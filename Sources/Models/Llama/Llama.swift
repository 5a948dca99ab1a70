import NN
import Tensors

/// A Llama-family decoder (Llama 2/3, SmolLM, Mistral without sliding windows). Reads top to bottom:
///
///   ids (B, T) → embed (B, T, C) → layers → RMSNorm → logits (B, T, V)
///   layer:  h = x + attention(rmsNorm(x))          RoPE on q and k, grouped-query attention
///           out = h + mlp(rmsNorm(h))              SwiGLU: down(silu(gate(h)) ⊙ up(h))
///
/// No position embeddings (RoPE rotates q and k instead), no biases. Projections are any
/// `LinearLayer`: float `Linear`s for a Hugging Face checkpoint or training, `QuantizedLinear`s for
/// a GGUF file. The output head is the token table itself when tied.
public final class Llama: Module, LanguageModel {
    public let config: LlamaConfig
    public var embedTokens: any TokenEmbedding          // (V, C)
    public var layers: [LlamaBlock]
    public var norm: RMSNorm
    public var lmHead: (any LinearLayer)?               // (V, C) when not tied
    public let rope: RotaryEmbedding

    /// Assembles a model from its parts (the loaders build the parts from weights).
    public init(config: LlamaConfig, embedTokens: any TokenEmbedding, layers: [LlamaBlock], norm: RMSNorm,
                lmHead: (any LinearLayer)?, ropePairing: RotaryEmbedding.Pairing, ropeFrequencyFactors: [Float]? = nil) {
        self.config = config
        self.embedTokens = embedTokens
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
        var frequencies = config.ropeFrequencies()
        if let factors = ropeFrequencyFactors {            // GGUF's rope_freqs: θ_i / factor_i
            frequencies = zip(frequencies, factors).map { $0 / $1 }
        }
        self.rope = RotaryEmbedding(headSize: config.headSize, invFreq: frequencies, pairing: ropePairing)
    }

    /// A freshly initialized model (N(0, 0.02) weights, unit norms), for training from scratch.
    public convenience init(_ config: LlamaConfig, rng: RandomGenerator) {
        let c = config.embedding
        func lin(_ i: Int, _ o: Int) -> Linear {
            let l = Linear(i, o, bias: false, rng: rng)
            l.weight.assign(Tensor.randn([o, i], std: 0.02, rng: rng))
            return l
        }
        let blocks = (0..<config.layers).map { _ in
            LlamaBlock(config, linear: { _, rows, cols in lin(cols, rows) }, norm: { _ in RMSNorm(c, eps: config.rmsNormEpsilon) })
        }
        self.init(config: config, embedTokens: Embedding(config.vocabularySize, c, std: 0.02, rng: rng), layers: blocks,
                  norm: RMSNorm(c, eps: config.rmsNormEpsilon), lmHead: config.tiedEmbeddings ? nil : lin(c, config.vocabularySize),
                  ropePairing: .halves)
    }

    public var vocabularySize: Int { config.vocabularySize }
    public var contextLength: Int { config.contextLength }

    /// Final hidden states (B, T, C). With a cache, the ids continue the cached positions.
    public func hidden(_ ids: [Int32], batch: Int, length: Int, cache: KVCache? = nil) -> Tensor {
        let start = cache?.length ?? 0
        precondition(ids.count == batch * length, "Llama: \(ids.count) ids for batch \(batch) × length \(length)")
        precondition(start + length <= config.contextLength, "Llama: position \(start + length) exceeds the context \(config.contextLength)")
        var x = embedTokens(ids, shape: [batch, length])                        // (B, T, C)
        for (i, layer) in layers.enumerated() {
            x = layer(x, rope: rope, start: start, cache: cache, layer: i)      // (B, T, C)
        }
        cache?.advance(length)
        return norm(x)                                                          // (B, T, C)
    }

    /// Logits (B, T, V).
    public func callAsFunction(_ ids: [Int32], batch: Int, length: Int, cache: KVCache? = nil) -> Tensor {
        let h = hidden(ids, batch: batch, length: length, cache: cache)
        return lmHead.map { $0(h) } ?? embedTokens.project(h)                 // (B, T, V)
    }

    public func makeCache(batch: Int = 1, capacity: Int? = nil) -> KVCache {
        KVCache(layers: config.layers, batch: batch, kvHeads: config.kvHeads, headSize: config.headSize,
                capacity: capacity ?? config.contextLength)
    }

    /// Mean next-token cross-entropy: inputs (B, T) predict targets (B, T); -100 targets are ignored.
    public func loss(_ ids: [Int32], targets: [Int32], batch: Int, length: Int) -> Tensor {
        self(ids, batch: batch, length: length).reshaped(batch * length, config.vocabularySize).crossEntropy(targets: targets)
    }
}

/// The weights of one layer, by role; each format names them its own way (see the loaders).
public enum LlamaWeight: CaseIterable, Sendable {
    case inputNorm, q, k, v, o, postAttentionNorm, gate, up, down

    /// (rows, cols) = (out, in) of a projection under `config`; nil for the two norms ((C) each).
    public func shape(_ config: LlamaConfig) -> (rows: Int, cols: Int)? {
        let (c, f) = (config.embedding, config.hidden)
        let (hd, kvd) = (config.heads * config.headSize, config.kvHeads * config.headSize)
        switch self {
        case .inputNorm, .postAttentionNorm: return nil
        case .q: return (hd, c)
        case .k, .v: return (kvd, c)
        case .o: return (c, hd)
        case .gate, .up: return (f, c)
        case .down: return (c, f)
        }
    }
}

/// One Llama layer: pre-norm attention and pre-norm SwiGLU MLP, each added to the residual stream.
public final class LlamaBlock: Module {
    public var inputNorm: RMSNorm
    public var attention: LlamaAttention
    public var postAttentionNorm: RMSNorm
    public var mlp: SwiGLU

    public init(inputNorm: RMSNorm, attention: LlamaAttention, postAttentionNorm: RMSNorm, mlp: SwiGLU) {
        self.inputNorm = inputNorm
        self.attention = attention
        self.postAttentionNorm = postAttentionNorm
        self.mlp = mlp
    }

    /// A layer of `config`'s shape whose projections and norms come from `linear(role, rows, cols)`
    /// and `norm(role)`: random ones, a checkpoint's, a GGUF file's.
    public convenience init<E: Error>(_ config: LlamaConfig,
                                      linear: (LlamaWeight, _ rows: Int, _ cols: Int) throws(E) -> any LinearLayer,
                                      norm: (LlamaWeight) throws(E) -> RMSNorm) throws(E) {
        func make(_ w: LlamaWeight) throws(E) -> any LinearLayer { let s = w.shape(config)!; return try linear(w, s.rows, s.cols) }
        self.init(inputNorm: try norm(.inputNorm),
                  attention: LlamaAttention(q: try make(.q), k: try make(.k), v: try make(.v), o: try make(.o),
                                            heads: config.heads, kvHeads: config.kvHeads, headSize: config.headSize),
                  postAttentionNorm: try norm(.postAttentionNorm),
                  mlp: SwiGLU(gate: try make(.gate), up: try make(.up), down: try make(.down)))
    }

    public func callAsFunction(_ x: Tensor, rope: RotaryEmbedding, start: Int, cache: KVCache?, layer: Int) -> Tensor {
        let h = x + attention(inputNorm(x), rope: rope, start: start, cache: cache, layer: layer)   // (B, T, C)
        return h + mlp(postAttentionNorm(h))                                                         // (B, T, C)
    }
}

/// Grouped-query self-attention with RoPE: H query heads share Hkv key/value heads (H / Hkv each).
public final class LlamaAttention: Module {
    public var q: any LinearLayer        // C → H·D
    public var k: any LinearLayer        // C → Hkv·D
    public var v: any LinearLayer        // C → Hkv·D
    public var o: any LinearLayer        // H·D → C
    public let heads: Int, kvHeads: Int, headSize: Int
    /// Round q, k, v and the output to F16, as llama.cpp's default F16 KV cache and F16 attention
    /// kernel do (set for GGUF models, so their numbers follow llama.cpp's).
    public var halfPrecisionAttention = false

    public init(q: any LinearLayer, k: any LinearLayer, v: any LinearLayer, o: any LinearLayer, heads: Int, kvHeads: Int, headSize: Int) {
        self.q = q; self.k = k; self.v = v; self.o = o
        self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize
    }

    public func callAsFunction(_ x: Tensor, rope: RotaryEmbedding, start: Int, cache: KVCache?, layer: Int) -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        let (h, hkv, d) = (heads, kvHeads, headSize)
        var q = self.q(x).reshaped(b, t, h, d).rope(rope, start: start).transposed(1, 2)      // (B, H, T, D)
        var k = self.k(x).reshaped(b, t, hkv, d).rope(rope, start: start).transposed(1, 2)    // (B, Hkv, T, D)
        var v = self.v(x).reshaped(b, t, hkv, d).transposed(1, 2)                             // (B, Hkv, T, D)
        if halfPrecisionAttention { (q, k, v) = (roundToBlocks(q, .f16), roundToBlocks(k, .f16), roundToBlocks(v, .f16)) }
        var y: Tensor
        if let cache {
            cache.write(layer: layer, k: k, v: v)
            y = causalAttention(q, keys: cache.keys[layer], values: cache.values[layer], length: cache.length + t)  // (B, H, T, D)
        } else {
            y = causalAttention(q, k, v)                                                      // (B, H, T, D)
        }
        if halfPrecisionAttention { y = roundToBlocks(y, .f16) }
        return o(y.transposed(1, 2).reshaped(b, t, h * d))                                    // (B, T, C)
    }
}

/// The gated feed-forward: down(silu(gate(x)) ⊙ up(x)). C → F → C.
public final class SwiGLU: Module {
    public var gate: any LinearLayer     // C → F
    public var up: any LinearLayer       // C → F
    public var down: any LinearLayer     // F → C

    public init(gate: any LinearLayer, up: any LinearLayer, down: any LinearLayer) {
        self.gate = gate; self.up = up; self.down = down
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { down(gate(x).silu() * up(x)) }   // (B, T, C)
}
