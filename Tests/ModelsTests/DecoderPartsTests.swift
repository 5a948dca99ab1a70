import Foundation
import Models
import NN
import Testing
import Tensors

/// The decoder with every optional part switched on (QK-norm, sandwich norms, GeGLU, scaled
/// embeddings, score and logit soft-caps, a scale, local and global layers with their own RoPE,
/// grouped kv heads, learned positions off): its gradients match finite differences, so every part
/// trains, and the config checks name what does not fit.
@Suite struct DecoderParts {
    static func spec() -> DecoderConfig {
        var spec = DecoderConfig(vocabularySize: 11, contextLength: 8, embedding: 8, layers: 2, heads: 2, kvHeads: 1, headSize: 4,
                                 hidden: 6, norm: .rmsNorm, normEpsilon: 1e-6, positions: .rotary, activation: .geGLU, bias: false,
                                 tiedEmbeddings: false)
        spec.qkNorm = true; spec.sandwichNorms = true; spec.embeddingScale = 2
        spec.attentionSoftcap = 3; spec.finalLogitSoftcap = 4; spec.attentionScale = 0.4
        spec.ropeFrequencies = RotaryEmbedding.frequencies(headSize: 4, base: 100)
        spec.localRopeFrequencies = RotaryEmbedding.frequencies(headSize: 4, base: 10)
        spec.layerKinds = [.local, .global]; spec.slidingWindow = 3
        return spec
    }

    @Test func everyPartsGradientMatchesFiniteDifferences() throws {
        let spec = Self.spec()
        try spec.validate()
        let rng = RandomGenerator(seed: 4)
        let layers = (0..<2).map { i in
            DecoderLayer(spec, index: i, rng: rng, linear: { _, rows, cols in Linear(weight: Tensor.randn([rows, cols], std: 0.5, rng: rng)) },
                         norm: { _, size in RMSNorm(weight: Tensor.uniform([size], 0.5, 1.5, rng: rng), eps: 1e-6) })
        }
        let model = DecoderModel(spec: spec, embedTokens: Embedding(11, 8, std: 0.7, rng: rng), embedPositions: nil, layers: layers,
                                 norm: RMSNorm(weight: Tensor.uniform([8], 0.5, 1.5, rng: rng)), lmHead: Linear(weight: Tensor.randn([11, 8], std: 0.5, rng: rng)), rng: rng)
        #expect(model.layers[0].postAttentionNorm != nil && model.layers[0].attention.qNorm != nil && model.layers[0].mlp.gate != nil)
        #expect(model.layers[0].attention.window == 3 && model.layers[1].attention.window == nil)
        let ids: [Int32] = [1, 4, 9, 2, 7, 3, 10, 0, 5, 5, 8, 6]               // 2 sequences of 6: past the window of 3
        let params = model.parameters
        let result = GradCheck.run(params, eps: 3e-3) { try! model.logits(ids, batch: 2, length: 6) }
        print("decoder parts gradient check: \(result)")
        #expect(result.maxError < 5e-3, "\(result)")
    }

    @Test func configChecksNameTheProblem() {
        func message(_ edit: (inout DecoderConfig) -> Void) -> String {
            var s = Self.spec()
            edit(&s)
            do { try s.validate(); return "valid" } catch { return "\(error)" }
        }
        #expect(message { $0.kvHeads = 3 }.contains("2 attention heads is not a multiple of 3 key/value heads"))
        #expect(message { $0.layerKinds = [.local] }.contains("1 layer kinds for 2 layers"))
        #expect(message { $0.slidingWindow = nil }.contains("local layers without a sliding window"))
        #expect(message { $0.attentionSoftcap = 0 }.contains("attention soft-cap 0.0 must be positive"))
        #expect(message { $0.ropeFrequencies = [1] }.contains("1 RoPE frequencies for head size 4"))
        #expect(message { _ in } == "valid")
    }
}
