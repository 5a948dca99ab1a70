import NN
import Tensors

/// Causal multi-head self-attention: one fused q/k/v projection, the engine's fused attention,
/// and an output projection.
public final class CausalSelfAttention: Module {
    public var qkv: Linear          // (C) → (3C)
    public var proj: Linear         // (C) → (C)
    public let heads: Int
    public let dropout: Float
    let rng: RandomGenerator
    public var residualDropout: Dropout

    public init(embedding c: Int, heads: Int, dropout: Float = 0, bias: Bool = true, rng: RandomGenerator) {
        precondition(c % heads == 0, "attention: embedding \(c) not divisible by \(heads) heads")
        qkv = Linear(c, 3 * c, bias: bias, rng: rng)
        proj = Linear(c, c, bias: bias, rng: rng)
        self.heads = heads
        self.dropout = dropout
        self.rng = rng
        residualDropout = Dropout(dropout, rng: rng)
    }

    public func callAsFunction(_ x: Tensor, cache: KVCache? = nil, layer: Int = 0) -> Tensor {
        let qkv = qkv(x)                                                    // (B, T, 3C): q | k | v
        guard let cache else {
            let y = causalAttention(packed: qkv, heads: heads, dropout: training ? dropout : 0, rng: rng)  // (B, T, C)
            return residualDropout(proj(y))                                 // (B, T, C)
        }
        // With a cache: new keys/values join the cached ones; queries attend to all of them.
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        let parts = qkv.reshaped(b, t, 3, heads, c / heads).permuted(2, 0, 3, 1, 4)   // (3, B, nh, T, hs)
        let (q, k, v) = (parts.select(axis: 0, 0), parts.select(axis: 0, 1), parts.select(axis: 0, 2))
        cache.write(layer: layer, k: k, v: v)
        let y = causalAttention(q, keys: cache.keys[layer], values: cache.values[layer], length: cache.length + t)  // (B, nh, T, hs)
        return proj(y.transposed(1, 2).reshaped(b, t, c))                  // (B, T, C)
    }
}

/// Position-wise feed-forward: C → 4C → GELU (tanh) → C.
public final class MLP: Module {
    public var fc: Linear
    public var proj: Linear
    public var dropout: Dropout

    public init(embedding c: Int, hidden: Int? = nil, dropout: Float = 0, bias: Bool = true, rng: RandomGenerator) {
        fc = Linear(c, hidden ?? 4 * c, bias: bias, rng: rng)
        proj = Linear(hidden ?? 4 * c, c, bias: bias, rng: rng)
        self.dropout = Dropout(dropout, rng: rng)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { dropout(proj(fc(x).geluTanh())) }   // (B, T, C)
}

/// A GPT-2 transformer block. (B, T, C) → (B, T, C).
///   pre-norm (GPT-2):        x + attn(ln1(x)), then h + mlp(ln2(h))
///   post-norm (Transformer): ln1(x + attn(x)), then ln2(h + mlp(h))
public final class TransformerBlock: Module {
    public var ln1: LayerNorm
    public var attn: CausalSelfAttention
    public var ln2: LayerNorm
    public var mlp: MLP
    public let norm: GPTConfig.Norm

    public init(embedding c: Int, heads: Int, dropout: Float = 0, bias: Bool = true, norm: GPTConfig.Norm = .pre,
                eps: Float = 1e-5, rng: RandomGenerator) {
        ln1 = LayerNorm(c, eps: eps, bias: bias)
        attn = CausalSelfAttention(embedding: c, heads: heads, dropout: dropout, bias: bias, rng: rng)
        ln2 = LayerNorm(c, eps: eps, bias: bias)
        mlp = MLP(embedding: c, dropout: dropout, bias: bias, rng: rng)
        self.norm = norm
    }

    public func callAsFunction(_ x: Tensor, cache: KVCache? = nil, layer: Int = 0) -> Tensor {
        switch norm {
        case .pre:
            let h = x + attn(ln1(x), cache: cache, layer: layer)
            return h + mlp(ln2(h))
        case .post:
            let h = ln1(x + attn(x, cache: cache, layer: layer))
            return ln2(h + mlp(h))
        }
    }
}
