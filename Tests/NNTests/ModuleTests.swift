import Models
import NN
import Testing
import Tensors

@Suite struct Modules {
    @Test func parametersHaveStableDottedNames() {
        let block = Self.gptLayer()
        let names: [String] = block.namedParameters().map { $0.name }
        #expect(names == ["attentionNorm.weight", "attentionNorm.bias", "attention.q.weight", "attention.q.bias", "attention.k.weight",
                          "attention.k.bias", "attention.v.weight", "attention.v.bias", "attention.o.weight", "attention.o.bias",
                          "mlpNorm.weight", "mlpNorm.bias", "mlp.up.weight", "mlp.up.bias", "mlp.down.weight", "mlp.down.bias"])
        #expect(block.namedParameters().first { $0.name == "mlp.up.weight" }!.tensor.shape == [32, 8])
        // 2·(2·8) norms + 4·(8·8 + 8) + (8·32 + 32) + (32·8 + 8)
        #expect(block.parameterCount == 32 + 288 + 288 + 264)
    }

    /// One GPT-2 layer of width 8 with 2 heads.
    static func gptLayer(dropout: Float = 0) -> DecoderLayer {
        GPT(GPTConfig(vocabularySize: 4, contextLength: 8, embedding: 8, layers: 1, heads: 2, dropout: dropout), rng: RandomGenerator(seed: 0)).layers[0]
    }

    @Test func buffersAreNotParameters() {
        let llama = Llama(LlamaConfig(vocabularySize: 8, contextLength: 8, embedding: 8, hidden: 16, layers: 1, heads: 2), rng: RandomGenerator(seed: 0))
        #expect(llama.namedBuffers().map(\.name) == ["ropeInverseFrequencies"])
        #expect(!llama.namedParameters().contains { $0.name.contains("rope") })
    }

    @Test func arraysOfModulesAreNumbered() {
        final class Stack: Module {
            var blocks: [Linear]
            var head: Linear?
            init(_ rng: RandomGenerator) { blocks = [Linear(2, 2, rng: rng), Linear(2, 2, bias: false, rng: rng)]; head = nil }
        }
        let s = Stack(RandomGenerator(seed: 0))
        #expect(s.namedParameters().map(\.name) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight"])
    }

    @Test func trainAndEvalModeReachEverySubmodule() {
        let block = Self.gptLayer(dropout: 0.5)
        block.eval()
        #expect(block.namedModules().allSatisfy { !$0.module.training })
        let x = Tensor.randn([1, 3, 8], rng: RandomGenerator(seed: 1))
        #expect(block(x).scalars == block(x).scalars)          // eval: no dropout, deterministic
        block.train()
        #expect(block.mlp.dropout.training)
    }

    @Test func swappedSubmoduleAndFrozenParameters() {
        let block = Self.gptLayer()
        block.mlp.up = Linear(8, 16, rng: RandomGenerator(seed: 2))   // a submodule is just a var
        #expect(block.namedParameters().first { $0.name == "mlp.up.weight" }!.tensor.shape == [16, 8])
        block.freeze()
        (block.mlp.down as! Linear).bias!.requiresGrad = true
        #expect(block.trainableParameters.count == 1)
    }

    @Test func strictLoadReportsEveryProblem() throws {
        let lin = Linear(3, 2, rng: RandomGenerator(seed: 0))
        do {
            try lin.load(["weight": Tensor.zeros([3, 2]), "extra": Tensor.zeros([1])])
            Issue.record("load should fail")
        } catch {
            #expect(error.description == "cannot load parameters: missing: bias; unexpected: extra; weight: expected (2, 3), got (3, 2)")
        }
        try lin.load(["weight": Tensor.ones([2, 3]), "bias": Tensor.full([2], 5)])
        #expect(lin.bias!.scalars == [5, 5])
    }
}

@Suite struct Schedules {
    @Test func warmupThenCosineToTheFloor() {
        let s = WarmupCosineLR(maxLR: 1, minLR: 0.1, warmupSteps: 9, decaySteps: 109)
        #expect(s.learningRate(at: 0) == 0.1)             // (0 + 1) / (9 + 1)
        #expect(s.learningRate(at: 8) == 0.9)
        #expect(s.learningRate(at: 9) == 1)
        #expect(abs(s.learningRate(at: 59) - 0.55) < 1e-6) // halfway: min + (max − min)/2
        #expect(s.learningRate(at: 109) == 0.1 && s.learningRate(at: 500) == 0.1)
        #expect(ConstantLR(0.3).learningRate(at: 1000) == 0.3)
    }

    @Test func clippingScalesToTheMaxNorm() {
        let a = Tensor([3], requiresGrad: true), b = Tensor([4], requiresGrad: true)
        a.grad = Tensor([3]); b.grad = Tensor([4])
        let norm = clipGradNorm([a, b], maxNorm: 1)
        #expect(norm == 5)
        #expect(abs(gradNorm([a, b]) - 1) < 1e-5)
        #expect(clipGradNorm([a, b], maxNorm: 10) < 1.0001)   // under the limit: untouched
    }
}
