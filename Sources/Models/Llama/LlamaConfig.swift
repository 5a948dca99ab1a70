import Foundation
import Tensors

/// A Llama-family model's shape, as data. The coding keys are Hugging Face `LlamaConfig`'s
/// `config.json` keys; a GGUF file's `llama.*` metadata maps onto the same fields.
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var embedding: Int                 // hidden_size
    public var hidden: Int                    // intermediate_size (SwiGLU width)
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int                   // < heads: grouped-query attention
    public var headSize: Int
    public var rmsNormEpsilon: Float = 1e-5
    public var ropeBase: Float = 10000
    public var ropeScaling: RopeScaling?
    public var tiedEmbeddings: Bool = false
    /// Mistral's sliding-window attention: every position sees at most this many (itself included).
    public var slidingWindow: Int?

    /// RoPE frequency scaling (HF `rope_scaling`): "linear" divides every frequency by `factor`;
    /// "llama3" divides only the low frequencies, blending in between.
    public struct RopeScaling: Codable, Equatable, Sendable {
        public var type: String
        public var factor: Float
        public var lowFrequencyFactor: Float?
        public var highFrequencyFactor: Float?
        public var originalContextLength: Int?

        enum CodingKeys: String, CodingKey {
            case type = "rope_type", legacyType = "type", factor, lowFrequencyFactor = "low_freq_factor"
            case highFrequencyFactor = "high_freq_factor", originalContextLength = "original_max_position_embeddings"
        }

        public init(type: String, factor: Float, lowFrequencyFactor: Float? = nil, highFrequencyFactor: Float? = nil, originalContextLength: Int? = nil) {
            self.type = type; self.factor = factor; self.lowFrequencyFactor = lowFrequencyFactor
            self.highFrequencyFactor = highFrequencyFactor; self.originalContextLength = originalContextLength
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? c.decode(String.self, forKey: .legacyType)
            factor = try c.decodeIfPresent(Float.self, forKey: .factor) ?? 1
            lowFrequencyFactor = try c.decodeIfPresent(Float.self, forKey: .lowFrequencyFactor)
            highFrequencyFactor = try c.decodeIfPresent(Float.self, forKey: .highFrequencyFactor)
            originalContextLength = try c.decodeIfPresent(Int.self, forKey: .originalContextLength)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(type, forKey: .type)
            try c.encode(factor, forKey: .factor)
            try c.encodeIfPresent(lowFrequencyFactor, forKey: .lowFrequencyFactor)
            try c.encodeIfPresent(highFrequencyFactor, forKey: .highFrequencyFactor)
            try c.encodeIfPresent(originalContextLength, forKey: .originalContextLength)
        }
    }

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size", contextLength = "max_position_embeddings", embedding = "hidden_size"
        case hidden = "intermediate_size", layers = "num_hidden_layers", heads = "num_attention_heads"
        case kvHeads = "num_key_value_heads", headSize = "head_dim", rmsNormEpsilon = "rms_norm_eps"
        case ropeBase = "rope_theta", ropeScaling = "rope_scaling", tiedEmbeddings = "tie_word_embeddings"
        case modelType = "model_type", architectures, attentionBias = "attention_bias", mlpBias = "mlp_bias", activation = "hidden_act"
        case ropeParameters = "rope_parameters", slidingWindow = "sliding_window"
    }

    public init(vocabularySize: Int, contextLength: Int, embedding: Int, hidden: Int, layers: Int, heads: Int,
                kvHeads: Int? = nil, headSize: Int? = nil, rmsNormEpsilon: Float = 1e-5, ropeBase: Float = 10000,
                ropeScaling: RopeScaling? = nil, tiedEmbeddings: Bool = false, slidingWindow: Int? = nil) {
        self.vocabularySize = vocabularySize; self.contextLength = contextLength; self.embedding = embedding
        self.hidden = hidden; self.layers = layers; self.heads = heads; self.kvHeads = kvHeads ?? heads
        self.headSize = headSize ?? embedding / heads; self.rmsNormEpsilon = rmsNormEpsilon; self.ropeBase = ropeBase
        self.ropeScaling = ropeScaling; self.tiedEmbeddings = tiedEmbeddings; self.slidingWindow = slidingWindow
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let type = try c.decodeIfPresent(String.self, forKey: .modelType), !["llama", "mistral"].contains(type) {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "model_type \"\(type)\" is not a Llama model")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .attentionBias) == true || c.decodeIfPresent(Bool.self, forKey: .mlpBias) == true {
            throw DecodingError.dataCorruptedError(forKey: .attentionBias, in: c, debugDescription: "attention_bias / mlp_bias are not supported")
        }
        if let act = try c.decodeIfPresent(String.self, forKey: .activation), act != "silu" {
            throw DecodingError.dataCorruptedError(forKey: .activation, in: c, debugDescription: "hidden_act \"\(act)\" is not supported (silu is)")
        }
        vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
        contextLength = try c.decode(Int.self, forKey: .contextLength)
        embedding = try c.decode(Int.self, forKey: .embedding)
        hidden = try c.decode(Int.self, forKey: .hidden)
        layers = try c.decode(Int.self, forKey: .layers)
        heads = try c.decode(Int.self, forKey: .heads)
        try ConfigLimits.check([(.vocabularySize, vocabularySize, ConfigLimits.vocabulary), (.contextLength, contextLength, ConfigLimits.context),
                                (.embedding, embedding, ConfigLimits.width), (.hidden, hidden, ConfigLimits.mlpWidth),
                                (.layers, layers, ConfigLimits.layers), (.heads, heads, ConfigLimits.heads)], in: c)
        kvHeads = try c.decodeIfPresent(Int.self, forKey: .kvHeads) ?? heads
        headSize = try c.decodeIfPresent(Int.self, forKey: .headSize) ?? embedding / heads
        try ConfigLimits.check([(.kvHeads, kvHeads, ConfigLimits.heads), (.headSize, headSize, ConfigLimits.headSize)], in: c)
        rmsNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .rmsNormEpsilon) ?? 1e-6
        // transformers ≥ 5 writes `rope_parameters: {rope_theta, rope_type, factor, ...}` instead of
        // `rope_theta` + `rope_scaling`; read either.
        let parameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        ropeBase = try c.decodeIfPresent(Float.self, forKey: .ropeBase) ?? parameters?.theta ?? 10000
        ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
        if ropeScaling == nil, let parameters, parameters.scaling.type != "default" { ropeScaling = parameters.scaling }
        tiedEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tiedEmbeddings) ?? false
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        // A sliding window is Mistral's: transformers' Llama would ignore it.
        try c.encode(slidingWindow == nil ? "llama" : "mistral", forKey: .modelType)
        try c.encode([slidingWindow == nil ? "LlamaForCausalLM" : "MistralForCausalLM"], forKey: .architectures)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(contextLength, forKey: .contextLength)
        try c.encode(embedding, forKey: .embedding)
        try c.encode(hidden, forKey: .hidden)
        try c.encode(layers, forKey: .layers)
        try c.encode(heads, forKey: .heads)
        try c.encode(kvHeads, forKey: .kvHeads)
        try c.encode(headSize, forKey: .headSize)
        try c.encode(rmsNormEpsilon, forKey: .rmsNormEpsilon)
        try c.encode(ropeBase, forKey: .ropeBase)
        try c.encodeIfPresent(ropeScaling, forKey: .ropeScaling)
        try c.encode(tiedEmbeddings, forKey: .tiedEmbeddings)
        try c.encodeIfPresent(slidingWindow, forKey: .slidingWindow)
        try c.encode("silu", forKey: .activation)
    }

    /// transformers 5's `rope_parameters`: the base and the scaling in one object.
    struct RopeParameters: Decodable {
        var theta: Float?
        var scaling: RopeScaling
        enum Keys: String, CodingKey { case theta = "rope_theta" }
        init(from decoder: Decoder) throws {
            theta = try decoder.container(keyedBy: Keys.self).decodeIfPresent(Float.self, forKey: .theta)
            scaling = try RopeScaling(from: decoder)
        }
    }

    /// Checks that the numbers fit together; the message names the first that does not.
    public func validate() throws(ModelError) {
        func bad(_ m: String) -> ModelError { .weights("Llama config: " + m) }
        for (name, v) in [("vocab_size", vocabularySize), ("max_position_embeddings", contextLength), ("hidden_size", embedding),
                          ("intermediate_size", hidden), ("num_hidden_layers", layers), ("num_attention_heads", heads),
                          ("num_key_value_heads", kvHeads), ("head_dim", headSize)] where v <= 0 {
            throw bad("\(name) is \(v)")
        }
        if heads % kvHeads != 0 { throw bad("\(heads) attention heads is not a multiple of \(kvHeads) key/value heads") }
        if headSize % 2 != 0 { throw bad("head size \(headSize) is odd (RoPE rotates pairs)") }
        if let w = slidingWindow, w <= 0 { throw bad("sliding_window is \(w)") }
        if let s = ropeScaling, !["linear", "llama3", "default"].contains(s.type) {
            throw bad("rope_scaling type \"\(s.type)\" is not supported (linear, llama3 are)")
        }
    }

    /// RoPE's inverse frequencies after scaling (D/2 values), Hugging Face's definitions.
    public func ropeFrequencies() -> [Float] {
        var f = RotaryEmbedding.frequencies(headSize: headSize, base: ropeBase)
        guard let s = ropeScaling else { return f }
        switch s.type {
        case "linear":
            f = f.map { $0 / s.factor }
        case "llama3":
            let low = s.lowFrequencyFactor ?? 1, high = s.highFrequencyFactor ?? 4
            let original = Float(s.originalContextLength ?? 8192)
            let lowWavelength = original / low, highWavelength = original / high
            f = f.map { inv in
                let wavelength = 2 * Float.pi / inv
                if wavelength < highWavelength { return inv }                  // high frequency: kept
                if wavelength > lowWavelength { return inv / s.factor }        // low frequency: scaled
                let smooth = (original / wavelength - low) / (high - low)      // in between: blended
                return (1 - smooth) * inv / s.factor + smooth * inv
            }
        default: break
        }
        return f
    }
}
