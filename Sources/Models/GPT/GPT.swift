import Foundation
import NN
import Tensors

/// GPT-2: token and learned position embeddings, LayerNorms with biases, one attention and one
/// GELU MLP (4·C wide) per layer, biases everywhere, the output head tied to the token table.
/// The forward pass is `DecoderModel`'s; this file says what GPT-2 is in its terms:
///
///   ids (B, T) → wte[ids] + wpe[0..<T] (B, T, C) → layers (pre- or post-norm) → lnF → logits (B, T, V)
public final class GPT: DecoderModel {
    public let config: GPTConfig

    /// Assembles a model from its parts (the loaders build the parts from weights).
    public init(config: GPTConfig, embedTokens: any TokenEmbedding, embedPositions: any TokenEmbedding, layers: [DecoderLayer],
                norm: any NormLayer, lmHead: (any LinearLayer)?, rng: RandomGenerator) {
        self.config = config
        super.init(spec: config.decoder, embedTokens: embedTokens, embedPositions: embedPositions, layers: layers, norm: norm,
                   lmHead: lmHead, rng: rng)
    }

    /// GPT-2's initialization: N(0, 0.02) weights, zero biases, unit norms, and the projections
    /// that end a residual branch (attention's o, the MLP's down) scaled by 1/√(2·layers).
    public convenience init(_ config: GPTConfig, rng: RandomGenerator) {
        let spec = config.decoder
        let residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        func linear(_ role: DecoderWeight, _ rows: Int, _ cols: Int) -> any LinearLayer {
            Linear(weight: Tensor.randn([rows, cols], std: role == .o || role == .down ? residualStd : 0.02, rng: rng),
                   bias: config.bias ? Tensor.zeros([rows]) : nil)
        }
        func norm(_ role: DecoderWeight, _ size: Int) -> any NormLayer { LayerNorm(size, eps: config.layerNormEpsilon, bias: config.bias) }
        let wte = Embedding(config.vocabularySize, config.embedding, std: 0.02, rng: rng)
        let wpe = Embedding(config.contextLength, config.embedding, std: 0.01, rng: rng)
        let layers = (0..<config.layers).map { i in DecoderLayer(spec, index: i, rng: rng, linear: linear, norm: norm) }
        let head = config.tiedEmbeddings ? nil : Linear(weight: Tensor.randn([config.vocabularySize, config.embedding], std: 0.02, rng: rng))
        self.init(config: config, embedTokens: wte, embedPositions: wpe, layers: layers,
                  norm: LayerNorm(config.embedding, eps: config.layerNormEpsilon, bias: config.bias), lmHead: head, rng: rng)
    }

    public override var architecture: String { "gpt" }
    public override var summary: String {
        "GPT, \(config.layers) layers, \(config.embedding) wide, \(config.heads) heads, vocab \(config.vocabularySize)"
    }

    /// A Hugging Face GPT-2 folder (config.json + model.safetensors).
    public override func save(to folder: String) throws { try HuggingFaceGPT2.save(self, to: folder) }
}

extension GPTConfig {
    /// GPT-2 in the decoder's terms.
    public var decoder: DecoderConfig {
        var d = DecoderConfig(vocabularySize: vocabularySize, contextLength: contextLength, embedding: embedding, layers: layers,
                              heads: heads, kvHeads: heads, headSize: embedding / heads, hidden: 4 * embedding,
                              norm: .layerNorm(bias: bias), normEpsilon: layerNormEpsilon, positions: .learned,
                              activation: .gelu, bias: bias, tiedEmbeddings: tiedEmbeddings)
        d.normPlacement = norm == .pre ? .pre : .post
        d.dropout = dropout
        return d
    }
}
