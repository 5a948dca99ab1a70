import Tensors

/// What a decoder-only transformer is made of, as data. Every architecture the project knows (GPT-2,
/// Llama, and the ones to come) is one of these plus a map of its weight names: the forward pass
/// (`DecoderModel`) is written once and reads its choices from here.
///
///   ids → token embedding (× embeddingScale) (+ learned positions) → layers → norm → head → logits
///   layer (pre-norm):   h = x + [postAttentionNorm](attention(attentionNorm(x)))
///                       y = h + [postMLPNorm](mlp(mlpNorm(h)))
///   layer (post-norm):  h = attentionNorm(x + attention(x)),  y = mlpNorm(h + mlp(h))
public struct DecoderConfig: Sendable, Equatable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var embedding: Int                 // C, the residual stream's width
    public var layers: Int
    public var heads: Int                     // query heads
    public var kvHeads: Int                   // key/value heads (< heads: grouped-query attention)
    public var headSize: Int                  // D
    public var hidden: Int                    // the MLP's inner width

    public enum Norm: Sendable, Equatable {
        case layerNorm(bias: Bool)            // (x − mean) / std · w + b
        case rmsNorm                          // x / rms · w
    }
    public var norm: Norm
    public var normEpsilon: Float

    public enum NormPlacement: String, Sendable { case pre, post }
    public var normPlacement: NormPlacement = .pre
    /// Also normalize each sub-layer's output before it joins the residual stream (Gemma's
    /// post-attention and post-feed-forward norms).
    public var sandwichNorms = false
    /// RMS-normalize each query and key head before RoPE (Gemma 3, Qwen 3).
    public var qkNorm = false

    public enum Positions: Sendable, Equatable {
        case learned                          // a (context, C) table added to the embeddings (GPT-2)
        case rotary                           // RoPE on queries and keys (Llama)
    }
    public var positions: Positions
    /// RoPE's inverse frequencies (D/2) for global layers and, when they differ, for
    /// sliding-window ones; and which features form a rotated pair.
    public var ropeFrequencies: [Float] = []
    public var localRopeFrequencies: [Float]? = nil
    public var ropePairing: RotaryEmbedding.Pairing = .halves

    public enum Activation: String, Sendable {
        case gelu                             // down(gelu_tanh(up(x)))          (GPT-2)
        case swiGLU                           // down(silu(gate(x)) ⊙ up(x))     (Llama)
        case geGLU                            // down(gelu_tanh(gate(x)) ⊙ up(x)) (Gemma)
        public var gated: Bool { self != .gelu }
    }
    public var activation: Activation
    /// Biases in the projections (and LayerNorms).
    public var bias: Bool
    /// Scores are q·k × this (nil: 1/√D).
    public var attentionScale: Float? = nil
    /// Scores become c·tanh(S/c) before the softmax (Gemma 2: 50); nil: no cap.
    public var attentionSoftcap: Float? = nil
    /// Logits become c·tanh(z/c) (Gemma 2: 30); nil: no cap.
    public var finalLogitSoftcap: Float? = nil

    /// Global layers attend to every earlier position; local ones to the last `slidingWindow`.
    public enum LayerKind: String, Sendable { case global, local }
    public var layerKinds: [LayerKind]? = nil
    public var slidingWindow: Int? = nil

    /// The embeddings are multiplied by this before the first layer (Gemma: √C).
    public var embeddingScale: Float? = nil
    public var tiedEmbeddings: Bool
    /// Dropout on embeddings, attention weights and residual branches (training only).
    public var dropout: Float = 0

    public init(vocabularySize: Int, contextLength: Int, embedding: Int, layers: Int, heads: Int, kvHeads: Int, headSize: Int,
                hidden: Int, norm: Norm, normEpsilon: Float, positions: Positions, activation: Activation, bias: Bool,
                tiedEmbeddings: Bool) {
        self.vocabularySize = vocabularySize; self.contextLength = contextLength; self.embedding = embedding
        self.layers = layers; self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize; self.hidden = hidden
        self.norm = norm; self.normEpsilon = normEpsilon; self.positions = positions; self.activation = activation
        self.bias = bias; self.tiedEmbeddings = tiedEmbeddings
    }

    public func kind(ofLayer i: Int) -> LayerKind { layerKinds?[i] ?? .global }

    /// The window of layer i (nil: it sees every earlier position).
    public func window(ofLayer i: Int) -> Int? { kind(ofLayer: i) == .local ? slidingWindow : nil }

    /// Checks that the numbers fit together; the message names the first that does not.
    public func validate() throws(ModelError) {
        func bad(_ m: String) -> ModelError { .weights("model config: " + m) }
        for (name, v) in [("vocabulary size", vocabularySize), ("context length", contextLength), ("embedding width", embedding),
                          ("MLP width", hidden), ("layer count", layers), ("head count", heads), ("key/value head count", kvHeads),
                          ("head size", headSize)] where v <= 0 {
            throw bad("\(name) is \(v)")
        }
        if heads % kvHeads != 0 { throw bad("\(heads) attention heads is not a multiple of \(kvHeads) key/value heads") }
        if positions == .rotary {
            if headSize % 2 != 0 { throw bad("head size \(headSize) is odd (RoPE rotates pairs)") }
            if ropeFrequencies.count != headSize / 2 { throw bad("\(ropeFrequencies.count) RoPE frequencies for head size \(headSize)") }
            if let local = localRopeFrequencies, local.count != headSize / 2 { throw bad("\(local.count) local RoPE frequencies for head size \(headSize)") }
        }
        if let kinds = layerKinds, kinds.count != layers { throw bad("\(kinds.count) layer kinds for \(layers) layers") }
        if let w = slidingWindow, w <= 0 { throw bad("sliding window \(w)") }
        if layerKinds?.contains(.local) == true && slidingWindow == nil { throw bad("local layers without a sliding window") }
        if dropout < 0 || dropout >= 1 { throw bad("dropout \(dropout) outside [0, 1)") }
        for (name, cap) in [("attention soft-cap", attentionSoftcap), ("final logit soft-cap", finalLogitSoftcap)] {
            if let cap, !(cap > 0) { throw bad("\(name) \(cap) must be positive") }
        }
    }
}

/// The largest sizes a config file may declare: far above any real model's, low enough that a
/// corrupt or hostile file is refused before anything is allocated from its numbers.
public enum ConfigLimits {
    public static let vocabulary = 1 << 22, context = 1 << 24, width = 1 << 16, mlpWidth = 1 << 18
    public static let layers = 1 << 10, heads = 1 << 10, headSize = 1 << 12

    /// Throws naming the first field outside 1...limit (the field as the file spells it).
    static func check<K: CodingKey>(_ fields: [(K, Int, Int)], in c: KeyedDecodingContainer<K>) throws {
        for (key, value, limit) in fields where value < 1 || value > limit {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.stringValue) is \(value), expected 1 to \(limit)")
        }
    }
}
