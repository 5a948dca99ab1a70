import NN
import Tensors

/// A Llama-family decoder (Llama 2/3, SmolLM, Mistral). The forward pass is `DecoderModel`'s; this file
/// says what Llama is in its terms:
///
///   ids (B, T) → embed (B, T, C) → layers → RMSNorm → logits (B, T, V)
///   layer:  h = x + attention(rmsNorm(x))          RoPE on q and k, grouped-query attention
///           out = h + mlp(rmsNorm(h))              SwiGLU: down(silu(gate(h)) ⊙ up(h))
///
/// No position embeddings (RoPE rotates q and k instead), no biases. Projections are any
/// `LinearLayer`: float `Linear`s for a Hugging Face checkpoint or training, `QuantizedLinear`s for
/// a GGUF file. The output head is the token table itself when tied. With `sliding_window`
/// (Mistral), every layer attends to that many positions at most.
public final class Llama: DecoderModel {
    public let config: LlamaConfig

    /// Assembles a model from its parts (the loaders build the parts from weights); `spec` is the
    /// config's decoder unless given (GGUF's RoPE layout differs).
    public init(config: LlamaConfig, spec: DecoderConfig? = nil, embedTokens: any TokenEmbedding, layers: [DecoderLayer], norm: any NormLayer,
                lmHead: (any LinearLayer)?, rng: RandomGenerator = RandomGenerator(seed: 0)) {
        self.config = config
        super.init(spec: spec ?? config.decoder(), embedTokens: embedTokens, embedPositions: nil,
                   layers: layers, norm: norm, lmHead: lmHead, rng: rng)
    }

    /// A freshly initialized model (N(0, 0.02) weights, unit norms), for training from scratch.
    public convenience init(_ config: LlamaConfig, rng: RandomGenerator) {
        let parts = DecoderModel.randomRMSNormParts(config.decoder(), rng: rng)
        self.init(config: config, embedTokens: parts.embedTokens, layers: parts.layers, norm: parts.norm, lmHead: parts.lmHead, rng: rng)
    }

    public override var architecture: String { "llama" }
    public override var summary: String {
        let c = config
        return "Llama, \(c.layers) layers, \(c.embedding) wide, \(c.heads) heads / \(c.kvHeads) kv, vocab \(c.vocabularySize)"
    }

    /// A Hugging Face Llama folder (config.json + model.safetensors).
    public override func save(to folder: String) throws { try HuggingFaceLlama.save(self, to: folder) }
}

extension LlamaConfig {
    /// Llama in the decoder's terms. GGUF files store Q and K for `.adjacent` RoPE pairs and may
    /// carry per-frequency factors (rope_freqs): θ_i / factor_i.
    public func decoder(ropePairing: RotaryEmbedding.Pairing = .halves, ropeFrequencyFactors: [Float]? = nil) -> DecoderConfig {
        var d = DecoderConfig(vocabularySize: vocabularySize, contextLength: contextLength, embedding: embedding, layers: layers,
                              heads: heads, kvHeads: kvHeads, headSize: headSize, hidden: hidden, norm: .rmsNorm,
                              normEpsilon: rmsNormEpsilon, positions: .rotary, activation: .swiGLU, bias: false,
                              tiedEmbeddings: tiedEmbeddings)
        var frequencies = ropeFrequencies()
        if let factors = ropeFrequencyFactors { frequencies = zip(frequencies, factors).map { $0 / $1 } }
        d.ropeFrequencies = frequencies
        d.ropePairing = ropePairing
        if let w = slidingWindow {
            d.slidingWindow = w
            d.layerKinds = Array(repeating: .local, count: layers)
        }
        return d
    }
}
