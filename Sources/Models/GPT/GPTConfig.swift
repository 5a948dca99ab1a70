import Foundation

/// A GPT's shape, as data. The coding keys are Hugging Face GPT-2's `config.json` keys, so an HF
/// config reads directly; keys HF lacks (`norm`, `bias`) take GPT-2's values when absent.
public struct GPTConfig: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var embedding: Int
    public var layers: Int
    public var heads: Int
    public var layerNormEpsilon: Float = 1e-5
    /// Dropout on embeddings, attention weights and residual branches (training only).
    public var dropout: Float = 0
    /// Biases in the linear layers and LayerNorms (GPT-2: yes).
    public var bias: Bool = true
    /// Output head shares the token embedding matrix (GPT-2: yes).
    public var tiedEmbeddings: Bool = true
    /// Where LayerNorm sits: before each sub-layer (GPT-2, "pre") or after the residual add
    /// (the original Transformer, "post").
    public var norm: Norm = .pre

    public enum Norm: String, Codable, Sendable { case pre, post }

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size", contextLength = "n_positions", embedding = "n_embd", layers = "n_layer"
        case heads = "n_head", layerNormEpsilon = "layer_norm_epsilon", dropout = "resid_pdrop", bias
        case tiedEmbeddings = "tie_word_embeddings", norm, modelType = "model_type", architectures
        case activation = "activation_function"
    }

    public init(vocabularySize: Int, contextLength: Int, embedding: Int, layers: Int, heads: Int,
                dropout: Float = 0, bias: Bool = true, tiedEmbeddings: Bool = true, norm: Norm = .pre) {
        self.vocabularySize = vocabularySize; self.contextLength = contextLength; self.embedding = embedding
        self.layers = layers; self.heads = heads; self.dropout = dropout; self.bias = bias
        self.tiedEmbeddings = tiedEmbeddings; self.norm = norm
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
        contextLength = try c.decode(Int.self, forKey: .contextLength)
        embedding = try c.decode(Int.self, forKey: .embedding)
        layers = try c.decode(Int.self, forKey: .layers)
        heads = try c.decode(Int.self, forKey: .heads)
        try ConfigLimits.check([(.vocabularySize, vocabularySize, ConfigLimits.vocabulary), (.contextLength, contextLength, ConfigLimits.context),
                                (.embedding, embedding, ConfigLimits.width), (.layers, layers, ConfigLimits.layers), (.heads, heads, ConfigLimits.heads)], in: c)
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? 1e-5
        dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? 0
        bias = try c.decodeIfPresent(Bool.self, forKey: .bias) ?? true
        tiedEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tiedEmbeddings) ?? true
        norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .pre
        if let act = try c.decodeIfPresent(String.self, forKey: .activation), !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
            throw DecodingError.dataCorruptedError(forKey: .activation, in: c,
                debugDescription: "activation_function \(act) is not supported (GPT-2 uses gelu_new, the tanh approximation)")
        }
        guard embedding % heads == 0 else {
            throw DecodingError.dataCorruptedError(forKey: .heads, in: c, debugDescription: "n_embd \(embedding) is not divisible by n_head \(heads)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(contextLength, forKey: .contextLength)
        try c.encode(embedding, forKey: .embedding)
        try c.encode(layers, forKey: .layers)
        try c.encode(heads, forKey: .heads)
        try c.encode(layerNormEpsilon, forKey: .layerNormEpsilon)
        try c.encode(dropout, forKey: .dropout)
        try c.encode(bias, forKey: .bias)
        try c.encode(tiedEmbeddings, forKey: .tiedEmbeddings)
        try c.encode(norm, forKey: .norm)
        try c.encode("gpt2", forKey: .modelType)
        try c.encode(["GPT2LMHeadModel"], forKey: .architectures)
        try c.encode("gelu_new", forKey: .activation)
    }

    /// The named presets: GPT-2's four sizes and small ones that train on a laptop CPU.
    public static let presets: [String: GPTConfig] = [
        "gpt2": GPTConfig(vocabularySize: 50257, contextLength: 1024, embedding: 768, layers: 12, heads: 12),
        "gpt2-medium": GPTConfig(vocabularySize: 50257, contextLength: 1024, embedding: 1024, layers: 24, heads: 16),
        "gpt2-large": GPTConfig(vocabularySize: 50257, contextLength: 1024, embedding: 1280, layers: 36, heads: 20),
        "gpt2-xl": GPTConfig(vocabularySize: 50257, contextLength: 1024, embedding: 1600, layers: 48, heads: 25),
        "tiny": GPTConfig(vocabularySize: 50257, contextLength: 256, embedding: 256, layers: 4, heads: 4),
        "small": GPTConfig(vocabularySize: 50257, contextLength: 128, embedding: 192, layers: 4, heads: 6),
        "mini": GPTConfig(vocabularySize: 50257, contextLength: 128, embedding: 128, layers: 2, heads: 4),
    ]
}
