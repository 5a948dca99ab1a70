import Foundation
import Tensors

/// A Gemma 3 text model's shape, as data. The coding keys are Hugging Face `Gemma3TextConfig`'s
/// `config.json` keys (transformers 4.5x and 5.x spellings both read); a GGUF file's `gemma3.*`
/// metadata maps onto the same fields (see `GGUFDecoder`).
///
/// What makes Gemma 3 more than Llama, every part a `DecoderConfig` switch:
///   embeddings × √C · RMSNorm before and after both attention and MLP (four per block), each
///   scaling by (1 + w) in HF's weights · RMSNorm on every query and key head · scores scaled by
///   query_pre_attn_scalar^−½ · GELU(tanh)-gated MLP · sliding-window layers (window 512) with
///   RoPE base 10 000, every sixth layer global with base 1 000 000 · tied output.
public struct Gemma3Config: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var embedding: Int                 // hidden_size, C
    public var hidden: Int                    // intermediate_size, F
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headSize: Int                  // head_dim, D (not C / heads: 256 for 640 wide)
    public var rmsNormEpsilon: Float = 1e-6
    /// Scores are q·k / √queryPreAttentionScalar.
    public var queryPreAttentionScalar: Float
    public var slidingWindow: Int
    /// Per layer: true for a sliding-window layer, false for a global one.
    public var localLayers: [Bool]
    public var ropeBase: Float = 1_000_000             // global layers
    public var localRopeBase: Float = 10_000           // sliding-window layers
    /// Linear RoPE scaling of the global layers (Gemma 3 4B and up: 8); nil: none.
    public var ropeScalingFactor: Float?
    public var attentionSoftcap: Float?
    public var finalLogitSoftcap: Float?
    public var tiedEmbeddings = true

    public init(vocabularySize: Int, contextLength: Int, embedding: Int, hidden: Int, layers: Int, heads: Int, kvHeads: Int,
                headSize: Int, rmsNormEpsilon: Float = 1e-6, queryPreAttentionScalar: Float? = nil, slidingWindow: Int,
                localLayers: [Bool]? = nil, ropeBase: Float = 1_000_000, localRopeBase: Float = 10_000) {
        self.vocabularySize = vocabularySize; self.contextLength = contextLength; self.embedding = embedding
        self.hidden = hidden; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize
        self.rmsNormEpsilon = rmsNormEpsilon; self.queryPreAttentionScalar = queryPreAttentionScalar ?? Float(headSize)
        self.slidingWindow = slidingWindow
        self.localLayers = localLayers ?? Gemma3Config.pattern(layers: layers, every: 6)
        self.ropeBase = ropeBase; self.localRopeBase = localRopeBase
    }

    /// Every `n`-th layer global, the others sliding-window (llama.cpp's swa pattern: layer i is
    /// local unless i % n == n − 1).
    public static func pattern(layers: Int, every n: Int) -> [Bool] {
        (0..<layers).map { n <= 0 ? false : $0 % n < n - 1 }
    }

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size", contextLength = "max_position_embeddings", embedding = "hidden_size"
        case hidden = "intermediate_size", layers = "num_hidden_layers", heads = "num_attention_heads"
        case kvHeads = "num_key_value_heads", headSize = "head_dim", rmsNormEpsilon = "rms_norm_eps"
        case queryPreAttentionScalar = "query_pre_attn_scalar", slidingWindow = "sliding_window", layerTypes = "layer_types"
        case pattern = "sliding_window_pattern", privatePattern = "_sliding_window_pattern"
        case ropeBase = "rope_theta", localRopeBase = "rope_local_base_freq", ropeScaling = "rope_scaling", ropeParameters = "rope_parameters"
        case attentionSoftcap = "attn_logit_softcapping", finalLogitSoftcap = "final_logit_softcapping"
        case tiedEmbeddings = "tie_word_embeddings", modelType = "model_type", architectures, activation = "hidden_activation"
        case attentionBias = "attention_bias", bidirectional = "use_bidirectional_attention"
    }

    /// One layer kind's RoPE: `{rope_type, rope_theta, factor}` (transformers 5's rope_parameters
    /// entries and 4.x's rope_scaling).
    struct Rope: Codable {
        var type: String?
        var theta: Float?
        var factor: Float?
        enum CodingKeys: String, CodingKey { case type = "rope_type", legacyType = "type", theta = "rope_theta", factor }
        init(type: String?, theta: Float?, factor: Float?) { self.type = type; self.theta = theta; self.factor = factor }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? c.decodeIfPresent(String.self, forKey: .legacyType)
            theta = try c.decodeIfPresent(Float.self, forKey: .theta)
            factor = try c.decodeIfPresent(Float.self, forKey: .factor)
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(type ?? "default", forKey: .type)
            try c.encodeIfPresent(theta, forKey: .theta)
            try c.encodeIfPresent(factor, forKey: .factor)
        }
        /// The linear factor this entry asks for (nil: none); other kinds are refused.
        func linearFactor(_ c: KeyedDecodingContainer<Gemma3Config.CodingKeys>) throws -> Float? {
            switch type ?? "default" {
            case "default": return nil
            case "linear": return factor.flatMap { $0 == 1 ? nil : $0 }
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .ropeParameters, in: c, debugDescription: "rope type \"\(other)\" is not supported (default, linear are)")
            }
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decodeIfPresent(String.self, forKey: .modelType)
        if type == "gemma3" {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "model_type \"gemma3\" is the multimodal Gemma 3 (text_config inside): only the text model gemma3_text is supported")
        }
        if let type, type != "gemma3_text" {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "model_type \"\(type)\" is not gemma3_text")
        }
        if let act = try c.decodeIfPresent(String.self, forKey: .activation), !["gelu_pytorch_tanh", "gelu_tanh"].contains(act) {
            throw DecodingError.dataCorruptedError(forKey: .activation, in: c, debugDescription: "hidden_activation \"\(act)\" is not supported (gelu_pytorch_tanh is)")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .attentionBias) == true {
            throw DecodingError.dataCorruptedError(forKey: .attentionBias, in: c, debugDescription: "attention_bias is not supported")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .bidirectional) == true {
            throw DecodingError.dataCorruptedError(forKey: .bidirectional, in: c, debugDescription: "use_bidirectional_attention (an embedding model) is not supported")
        }
        vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
        contextLength = try c.decode(Int.self, forKey: .contextLength)
        embedding = try c.decode(Int.self, forKey: .embedding)
        hidden = try c.decode(Int.self, forKey: .hidden)
        layers = try c.decode(Int.self, forKey: .layers)
        heads = try c.decode(Int.self, forKey: .heads)
        kvHeads = try c.decodeIfPresent(Int.self, forKey: .kvHeads) ?? heads
        headSize = try c.decodeIfPresent(Int.self, forKey: .headSize) ?? 256
        rmsNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .rmsNormEpsilon) ?? 1e-6
        queryPreAttentionScalar = try c.decodeIfPresent(Float.self, forKey: .queryPreAttentionScalar) ?? Float(headSize)
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow) ?? 4096
        try ConfigLimits.check([(.vocabularySize, vocabularySize, ConfigLimits.vocabulary), (.contextLength, contextLength, ConfigLimits.context),
                                (.embedding, embedding, ConfigLimits.width), (.hidden, hidden, ConfigLimits.mlpWidth),
                                (.layers, layers, ConfigLimits.layers), (.heads, heads, ConfigLimits.heads), (.kvHeads, kvHeads, ConfigLimits.heads),
                                (.headSize, headSize, ConfigLimits.headSize), (.slidingWindow, slidingWindow, ConfigLimits.context)], in: c)
        if let types = try c.decodeIfPresent([String].self, forKey: .layerTypes) {
            localLayers = try types.map { t in
                switch t {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw DecodingError.dataCorruptedError(forKey: .layerTypes, in: c, debugDescription: "layer type \"\(t)\" is not sliding_attention or full_attention")
                }
            }
        } else {
            let every = try c.decodeIfPresent(Int.self, forKey: .pattern) ?? c.decodeIfPresent(Int.self, forKey: .privatePattern) ?? 6
            localLayers = Gemma3Config.pattern(layers: layers, every: every)
        }
        // transformers 5: rope_parameters {full_attention: {...}, sliding_attention: {...}};
        // 4.x: rope_theta, rope_local_base_freq, rope_scaling (global layers only).
        if let p = try c.decodeIfPresent([String: Rope].self, forKey: .ropeParameters) {
            ropeBase = p["full_attention"]?.theta ?? 1_000_000
            localRopeBase = p["sliding_attention"]?.theta ?? 10_000
            ropeScalingFactor = try p["full_attention"]?.linearFactor(c)
            if try p["sliding_attention"]?.linearFactor(c) != nil {
                throw DecodingError.dataCorruptedError(forKey: .ropeParameters, in: c, debugDescription: "RoPE scaling on sliding-window layers is not supported")
            }
        } else {
            ropeBase = try c.decodeIfPresent(Float.self, forKey: .ropeBase) ?? 1_000_000
            localRopeBase = try c.decodeIfPresent(Float.self, forKey: .localRopeBase) ?? 10_000
            ropeScalingFactor = try c.decodeIfPresent(Rope.self, forKey: .ropeScaling)?.linearFactor(c)
        }
        attentionSoftcap = try c.decodeIfPresent(Float.self, forKey: .attentionSoftcap)
        finalLogitSoftcap = try c.decodeIfPresent(Float.self, forKey: .finalLogitSoftcap)
        tiedEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tiedEmbeddings) ?? true
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("gemma3_text", forKey: .modelType)
        try c.encode(["Gemma3ForCausalLM"], forKey: .architectures)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(contextLength, forKey: .contextLength)
        try c.encode(embedding, forKey: .embedding)
        try c.encode(hidden, forKey: .hidden)
        try c.encode(layers, forKey: .layers)
        try c.encode(heads, forKey: .heads)
        try c.encode(kvHeads, forKey: .kvHeads)
        try c.encode(headSize, forKey: .headSize)
        try c.encode(rmsNormEpsilon, forKey: .rmsNormEpsilon)
        try c.encode(queryPreAttentionScalar, forKey: .queryPreAttentionScalar)
        try c.encode(slidingWindow, forKey: .slidingWindow)
        try c.encode(localLayers.map { $0 ? "sliding_attention" : "full_attention" }, forKey: .layerTypes)
        try c.encode(["full_attention": Rope(type: ropeScalingFactor == nil ? "default" : "linear", theta: ropeBase, factor: ropeScalingFactor),
                      "sliding_attention": Rope(type: "default", theta: localRopeBase, factor: nil)], forKey: .ropeParameters)
        try c.encodeIfPresent(attentionSoftcap, forKey: .attentionSoftcap)
        try c.encodeIfPresent(finalLogitSoftcap, forKey: .finalLogitSoftcap)
        try c.encode(tiedEmbeddings, forKey: .tiedEmbeddings)
        try c.encode("gelu_pytorch_tanh", forKey: .activation)
    }

    /// Checks that the numbers fit together; the message names the first that does not.
    public func validate() throws(ModelError) {
        func bad(_ m: String) -> ModelError { .weights("Gemma 3 config: " + m) }
        for (name, v) in [("vocab_size", vocabularySize), ("max_position_embeddings", contextLength), ("hidden_size", embedding),
                          ("intermediate_size", hidden), ("num_hidden_layers", layers), ("num_attention_heads", heads),
                          ("num_key_value_heads", kvHeads), ("head_dim", headSize), ("sliding_window", slidingWindow)] where v <= 0 {
            throw bad("\(name) is \(v)")
        }
        if heads % kvHeads != 0 { throw bad("\(heads) attention heads is not a multiple of \(kvHeads) key/value heads") }
        if headSize % 2 != 0 { throw bad("head_dim \(headSize) is odd (RoPE rotates pairs)") }
        if localLayers.count != layers { throw bad("\(localLayers.count) layer types for \(layers) layers") }
        if !(queryPreAttentionScalar > 0) { throw bad("query_pre_attn_scalar is \(queryPreAttentionScalar)") }
        for (name, v) in [("rope_theta", ropeBase), ("rope_local_base_freq", localRopeBase)] where !(v > 0) { throw bad("\(name) is \(v)") }
        if let f = ropeScalingFactor, !(f > 0) { throw bad("RoPE scaling factor \(f)") }
    }

    /// Gemma 3 in the decoder's terms.
    public func decoder() -> DecoderConfig {
        var d = DecoderConfig(vocabularySize: vocabularySize, contextLength: contextLength, embedding: embedding, layers: layers,
                              heads: heads, kvHeads: kvHeads, headSize: headSize, hidden: hidden, norm: .rmsNorm,
                              normEpsilon: rmsNormEpsilon, positions: .rotary, activation: .geGLU, bias: false,
                              tiedEmbeddings: tiedEmbeddings)
        d.sandwichNorms = true
        d.qkNorm = true
        d.embeddingScale = Float(embedding).squareRoot()
        d.attentionScale = 1 / queryPreAttentionScalar.squareRoot()
        d.attentionSoftcap = attentionSoftcap
        d.finalLogitSoftcap = finalLogitSoftcap
        d.ropeFrequencies = RotaryEmbedding.frequencies(headSize: headSize, base: ropeBase).map { $0 / (ropeScalingFactor ?? 1) }
        d.localRopeFrequencies = RotaryEmbedding.frequencies(headSize: headSize, base: localRopeBase)
        d.ropePairing = .halves
        d.layerKinds = localLayers.map { $0 ? .local : .global }
        d.slidingWindow = slidingWindow
        return d
    }
}
