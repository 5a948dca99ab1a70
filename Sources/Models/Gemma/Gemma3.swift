import NN
import Tensors

/// Gemma 3 (text), e.g. Google's 270M model made for fine-tuning. The forward pass is
/// `DecoderModel`'s; `Gemma3Config.decoder()` says which of its parts Gemma uses:
///
///   ids → embed (N, C) × √C → 18 layers → RMSNorm → tied head → logits (N, V)
///   layer:  h = x + postAttnNorm(attention(attnNorm(x)))    q, k: RMSNorm per head (D), then RoPE
///           y = h + postFFNorm(mlp(ffnNorm(h)))             mlp: down(gelu_tanh(gate(h)) ⊙ up(h))
///   attention: 4 query heads, 1 key/value head, D = 256; five of every six layers see only the
///   last 512 positions (RoPE base 10 000), the sixth sees all (RoPE base 1 000 000).
///
/// The norms here scale by their weight as stored in a GGUF file (llama.cpp's converter has
/// already added Gemma's 1); a Hugging Face folder stores w for a scale of (1 + w), and its loader
/// adds the 1 (and the writer takes it off again).
public final class Gemma3: DecoderModel {
    public let config: Gemma3Config

    public init(config: Gemma3Config, embedTokens: any TokenEmbedding, layers: [DecoderLayer], norm: any NormLayer,
                lmHead: (any LinearLayer)?, rng: RandomGenerator = RandomGenerator(seed: 0)) {
        self.config = config
        super.init(spec: config.decoder(), embedTokens: embedTokens, embedPositions: nil, layers: layers, norm: norm, lmHead: lmHead, rng: rng)
    }

    /// A freshly initialized model (N(0, 0.02) weights, unit norm scales), for training from scratch.
    public convenience init(_ config: Gemma3Config, rng: RandomGenerator) {
        let parts = DecoderModel.randomRMSNormParts(config.decoder(), rng: rng)
        self.init(config: config, embedTokens: parts.embedTokens, layers: parts.layers, norm: parts.norm, lmHead: parts.lmHead, rng: rng)
    }

    public override var architecture: String { "gemma3" }
    public override var summary: String {
        let c = config
        let local = c.localLayers.filter { $0 }.count
        return "Gemma 3, \(c.layers) layers (\(local) sliding-window \(c.slidingWindow), \(c.layers - local) global), \(c.embedding) wide, "
            + "\(c.heads) heads / \(c.kvHeads) kv × \(c.headSize), vocab \(c.vocabularySize)"
    }

    /// A Hugging Face Gemma 3 folder (config.json + model.safetensors).
    public override func save(to folder: String) throws { try HuggingFaceGemma3.save(self, to: folder) }
}
