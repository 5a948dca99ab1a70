import NN
import Tensors

/// The weights of one decoder layer, by role; each format names them its own way (see the loaders).
public enum DecoderWeight: String, CaseIterable, Sendable {
    case attentionNorm, q, k, v, o, postAttentionNorm, mlpNorm, gate, up, down, postMLPNorm, qNorm, kNorm

    /// (rows, cols) = (out, in) of a projection under `config`; nil for norms.
    public func shape(_ config: DecoderConfig) -> (rows: Int, cols: Int)? {
        let (c, f) = (config.embedding, config.hidden)
        let (hd, kvd) = (config.heads * config.headSize, config.kvHeads * config.headSize)
        switch self {
        case .q: return (hd, c)
        case .k, .v: return (kvd, c)
        case .o: return (c, hd)
        case .gate, .up: return (f, c)
        case .down: return (c, f)
        default: return nil
        }
    }

    /// The width a norm normalizes: C for the residual-stream norms, D for the per-head ones.
    public func normSize(_ config: DecoderConfig) -> Int { self == .qNorm || self == .kNorm ? config.headSize : config.embedding }

    /// The roles a layer of `config` has (the optional norms and the gate only where it uses them).
    public static func roles(_ config: DecoderConfig) -> [DecoderWeight] {
        allCases.filter { w in
            switch w {
            case .postAttentionNorm, .postMLPNorm: return config.sandwichNorms
            case .qNorm, .kNorm: return config.qkNorm
            case .gate: return config.activation.gated
            default: return true
            }
        }
    }
}

/// How the rows of one forward pass are laid out, shared by every layer of that pass.
struct ForwardPass {
    /// Position of each token row.
    let positions: [Int]
    enum Batching {
        /// B sequences of equal length, all from position 0, no cache (training, scoring).
        case rectangular(batch: Int)
        /// Sequences of any lengths, each continuing its own cache (inference).
        case cached([CachedSegment])
    }
    let batching: Batching
    /// Set only by `DecoderModel.record`: the pass then hands each layer's attention weights and
    /// contributions to it. nil in every other pass, which records nothing.
    var recorder: ForwardRecorder? = nil

    /// B sequences of T tokens each, every one from position 0.
    static func rectangular(batch b: Int, length t: Int) -> ForwardPass {
        ForwardPass(positions: (0..<(b * t)).map { $0 % t }, batching: .rectangular(batch: b))
    }
}

/// One sequence's rows in a cached pass.
struct CachedSegment {
    let row: Int, count: Int
    let cache: KVCache
}

/// Multi-head self-attention with grouped key/value heads, optional QK-norm, RoPE or none (learned
/// positions are added before the first layer), a sliding window or none, a score soft-cap or none. Every projection is a
/// `LinearLayer` slot, so an adapter can take any of their places.
///
///   x (N, C) → q (N, H·D), k, v (N, Hkv·D) → [QK-norm per head] → [RoPE at each row's position]
///            → attention (rectangular batch, or each sequence against its cache) → o → (N, C)
public final class Attention: Module {
    public var q: any LinearLayer
    public var k: any LinearLayer
    public var v: any LinearLayer
    public var o: any LinearLayer
    public var qNorm: (any NormLayer)?           // (D), applied to every query head
    public var kNorm: (any NormLayer)?           // (D), applied to every key head
    public let heads: Int, kvHeads: Int, headSize: Int
    public let scale: Float?
    public let window: Int?
    public let softcap: Float?
    public let rope: RotaryEmbedding?
    public let dropout: Float
    let rng: RandomGenerator
    public var residualDropout: Dropout
    /// Attention in llama.cpp's arithmetic (set for GGUF models, so their numbers follow
    /// llama.cpp's): q, k, v rounded to F16 as its default F16 KV cache and attention kernel take
    /// them; fewer than `halfPrecisionFewQueries` queries of a sequence (a decoding step, a short
    /// prompt) through its per-query kernel that sums the values in F16 (`halfPrecisionAttention`),
    /// more through ours with the output rounded to F16.
    public var halfPrecision = false

    public init(q: any LinearLayer, k: any LinearLayer, v: any LinearLayer, o: any LinearLayer,
                qNorm: (any NormLayer)? = nil, kNorm: (any NormLayer)? = nil,
                heads: Int, kvHeads: Int, headSize: Int, scale: Float? = nil, window: Int? = nil, softcap: Float? = nil,
                rope: RotaryEmbedding?, dropout: Float = 0, rng: RandomGenerator) {
        self.q = q; self.k = k; self.v = v; self.o = o; self.qNorm = qNorm; self.kNorm = kNorm
        self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize
        self.scale = scale; self.window = window; self.softcap = softcap; self.rope = rope
        self.dropout = dropout; self.rng = rng
        residualDropout = Dropout(dropout, rng: rng)
    }

    /// Attention alone on a rectangular batch x (B, T, C), every sequence from position 0.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        return self(x.reshaped(b * t, c), .rectangular(batch: b, length: t), layer: 0).reshaped(b, t, o.outFeatures)
    }

    func callAsFunction(_ x: Tensor, _ pass: ForwardPass, layer: Int) -> Tensor {
        let n = x.shape[0], (h, hkv, d) = (heads, kvHeads, headSize)
        var q = self.q(x), k = self.k(x), v = self.v(x)                 // (N, H·D), (N, Hkv·D), (N, Hkv·D)
        if let qNorm { q = qNorm(q.reshaped(n * h, d)).reshaped(n, h * d) }
        if let kNorm { k = kNorm(k.reshaped(n * hkv, d)).reshaped(n, hkv * d) }
        if let rope {
            q = q.rope(rope, positions: pass.positions)
            k = k.rope(rope, positions: pass.positions)
        }
        if halfPrecision { (q, k, v) = (roundToBlocks(q, .f16), roundToBlocks(k, .f16), roundToBlocks(v, .f16)) }
        var y: Tensor                                                    // (N, H·D)
        switch pass.batching {
        case let .rectangular(batch) where halfPrecision && batch > 0 && n / batch < halfPrecisionFewQueries && !q.requiresGrad && pass.recorder == nil:
            let t = n / batch, width = hkv * d
            let spans = (0..<batch).map { b in
                CachedAttentionSpan(row: b * t, queries: t, keys: k.data + b * t * width, values: v.data + b * t * width, length: t)
            }
            y = halfPrecisionAttention(q: q, spans: spans, heads: h, kvHeads: hkv, scale: scale, window: window, softcap: softcap)
            return residualDropout(o(y))                                 // (N, C)
        case let .rectangular(batch):
            y = causalAttention(rows: q, k, v, batch: batch, heads: h, kvHeads: hkv, scale: scale, window: window, softcap: softcap,
                                dropout: training ? dropout : 0, rng: rng, probabilities: pass.recorder.map { r in { (p: Tensor) in r.attentions.append(p) } })
        case let .cached(segments):
            let width = hkv * d
            let spans = segments.map { seg in
                let rows = seg.cache.layers[layer].append(keys: k.data + seg.row * width, values: v.data + seg.row * width, count: seg.count)
                return CachedAttentionSpan(row: seg.row, queries: seg.count, keys: rows.keys, values: rows.values, length: rows.rows)
            }
            guard halfPrecision else {
                y = cachedAttention(q: q, spans: spans, heads: h, kvHeads: hkv, scale: scale, window: window, softcap: softcap)
                break
            }
            // llama.cpp's two kernels: few queries sum in F16, many in Float32 (output rounded).
            let few = spans.filter { $0.queries < halfPrecisionFewQueries }, many = spans.filter { $0.queries >= halfPrecisionFewQueries }
            if many.isEmpty { return residualDropout(o(halfPrecisionAttention(q: q, spans: few, heads: h, kvHeads: hkv, scale: scale, window: window, softcap: softcap))) }
            y = roundToBlocks(cachedAttention(q: q, spans: many, heads: h, kvHeads: hkv, scale: scale, window: window, softcap: softcap), .f16)
            if !few.isEmpty {
                let f = halfPrecisionAttention(q: q, spans: few, heads: h, kvHeads: hkv, scale: scale, window: window, softcap: softcap)
                for s in few { (y.data + s.row * h * d).update(from: f.data + s.row * h * d, count: s.queries * h * d) }
            }
            return residualDropout(o(y))                                 // (N, C)
        }
        if halfPrecision { y = roundToBlocks(y, .f16) }
        return residualDropout(o(y))                                     // (N, C)
    }
}

/// The position-wise feed-forward network, plain or gated:
///   gelu:   down(gelu_tanh(up(x)))            swiGLU: down(silu(gate(x)) ⊙ up(x))
///   geGLU:  down(gelu_tanh(gate(x)) ⊙ up(x))                    C → F → C
public final class FeedForward: Module {
    public var gate: (any LinearLayer)?          // C → F (gated kinds)
    public var up: any LinearLayer               // C → F
    public var down: any LinearLayer             // F → C
    public let activation: DecoderConfig.Activation
    public var dropout: Dropout
    /// GELU through ggml's F16 table, as llama.cpp computes it (set for GGUF models).
    public var halfPrecisionGELU = false

    public init(gate: (any LinearLayer)?, up: any LinearLayer, down: any LinearLayer, activation: DecoderConfig.Activation,
                dropout: Float = 0, rng: RandomGenerator) {
        precondition((gate != nil) == activation.gated, "feed-forward: \(activation.rawValue) \(activation.gated ? "needs" : "has no") gate")
        self.gate = gate; self.up = up; self.down = down; self.activation = activation
        self.dropout = Dropout(dropout, rng: rng)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch activation {
        case .gelu: return dropout(down(gelu(up(x))))
        case .swiGLU: return dropout(down(gate!(x).silu() * up(x)))
        case .geGLU: return dropout(down(gelu(gate!(x)) * up(x)))
        }
    }

    private func gelu(_ x: Tensor) -> Tensor { halfPrecisionGELU ? x.geluTanhHalfTable() : x.geluTanh() }
}

/// One decoder layer: attention and feed-forward, each with its norms, each added to the residual
/// stream. (N, C) → (N, C).
public final class DecoderLayer: Module {
    public var attentionNorm: any NormLayer
    public var attention: Attention
    public var postAttentionNorm: (any NormLayer)?
    public var mlpNorm: any NormLayer
    public var mlp: FeedForward
    public var postMLPNorm: (any NormLayer)?
    public let placement: DecoderConfig.NormPlacement

    public init(attentionNorm: any NormLayer, attention: Attention, postAttentionNorm: (any NormLayer)? = nil,
                mlpNorm: any NormLayer, mlp: FeedForward, postMLPNorm: (any NormLayer)? = nil, placement: DecoderConfig.NormPlacement = .pre) {
        self.attentionNorm = attentionNorm; self.attention = attention; self.postAttentionNorm = postAttentionNorm
        self.mlpNorm = mlpNorm; self.mlp = mlp; self.postMLPNorm = postMLPNorm; self.placement = placement
    }

    /// Layer `index` of `config`, its projections from `linear(role, rows, cols)` and its norms
    /// from `norm(role, size)`: random ones, a checkpoint's, a GGUF file's.
    public convenience init<E: Error>(_ config: DecoderConfig, index: Int, rng: RandomGenerator,
                                      linear: (DecoderWeight, _ rows: Int, _ cols: Int) throws(E) -> any LinearLayer,
                                      norm: (DecoderWeight, _ size: Int) throws(E) -> any NormLayer) throws(E) {
        func make(_ w: DecoderWeight) throws(E) -> any LinearLayer { let s = w.shape(config)!; return try linear(w, s.rows, s.cols) }
        func makeNorm(_ w: DecoderWeight) throws(E) -> any NormLayer { try norm(w, w.normSize(config)) }
        var rope: RotaryEmbedding? = nil
        if config.positions == .rotary {
            let local = config.kind(ofLayer: index) == .local
            rope = RotaryEmbedding(headSize: config.headSize, invFreq: local ? config.localRopeFrequencies ?? config.ropeFrequencies : config.ropeFrequencies,
                                   pairing: config.ropePairing)
        }
        let attentionNorm = try makeNorm(.attentionNorm)
        let attention = Attention(q: try make(.q), k: try make(.k), v: try make(.v), o: try make(.o),
                                  qNorm: config.qkNorm ? try makeNorm(.qNorm) : nil, kNorm: config.qkNorm ? try makeNorm(.kNorm) : nil,
                                  heads: config.heads, kvHeads: config.kvHeads, headSize: config.headSize, scale: config.attentionScale,
                                  window: config.window(ofLayer: index), softcap: config.attentionSoftcap, rope: rope,
                                  dropout: config.dropout, rng: rng)
        let postAttentionNorm = config.sandwichNorms ? try makeNorm(.postAttentionNorm) : nil
        let mlpNorm = try makeNorm(.mlpNorm)
        let mlp = FeedForward(gate: config.activation.gated ? try make(.gate) : nil, up: try make(.up), down: try make(.down),
                              activation: config.activation, dropout: config.dropout, rng: rng)
        let postMLPNorm = config.sandwichNorms ? try makeNorm(.postMLPNorm) : nil
        self.init(attentionNorm: attentionNorm, attention: attention, postAttentionNorm: postAttentionNorm,
                  mlpNorm: mlpNorm, mlp: mlp, postMLPNorm: postMLPNorm, placement: config.normPlacement)
    }

    /// The projection in slot `role` (nil for a norm role, or a gate the layer does not have).
    public func projection(_ role: DecoderWeight) -> (any LinearLayer)? {
        switch role {
        case .q: return attention.q
        case .k: return attention.k
        case .v: return attention.v
        case .o: return attention.o
        case .gate: return mlp.gate
        case .up: return mlp.up
        case .down: return mlp.down
        default: return nil
        }
    }

    /// Puts `layer` in slot `role` (an adapter around the projection that was there, say).
    public func setProjection(_ role: DecoderWeight, _ layer: any LinearLayer) {
        switch role {
        case .q: attention.q = layer
        case .k: attention.k = layer
        case .v: attention.v = layer
        case .o: attention.o = layer
        case .gate: mlp.gate = layer
        case .up: mlp.up = layer
        case .down: mlp.down = layer
        default: preconditionFailure("\(role) is not a projection")
        }
    }

    /// The norm in slot `role`, if the layer has one there.
    public func normalization(_ role: DecoderWeight) -> (any NormLayer)? {
        switch role {
        case .attentionNorm: return attentionNorm
        case .postAttentionNorm: return postAttentionNorm
        case .mlpNorm: return mlpNorm
        case .postMLPNorm: return postMLPNorm
        case .qNorm: return attention.qNorm
        case .kNorm: return attention.kNorm
        default: return nil
        }
    }

    func callAsFunction(_ x: Tensor, _ pass: ForwardPass, index: Int) -> Tensor {
        switch placement {
        case .pre:
            var a = attention(attentionNorm(x), pass, layer: index)         // (N, C)
            if let n = postAttentionNorm { a = n(a) }
            let h = x + a
            var m = mlp(mlpNorm(h))
            if let n = postMLPNorm { m = n(m) }
            pass.recorder?.contributions.append((attention: a, mlp: m))
            return h + m
        case .post:
            let a = attention(x, pass, layer: index)
            let h = attentionNorm(x + a)
            let m = mlp(h)
            pass.recorder?.contributions.append((attention: a, mlp: m))
            return mlpNorm(h + m)
        }
    }

    /// The layer alone on a rectangular batch x (B, T, C), every sequence from position 0 (for
    /// benchmarks and tests of one block).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        return self(x.reshaped(b * t, c), .rectangular(batch: b, length: t), index: 0).reshaped(b, t, c)
    }
}
