import ArgumentParser
import Foundation
import Models
import NN
import Tensors

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the engine's speed (make bench adds the numpy / PyTorch columns).",
        subcommands: [Gemm.self, Block.self, TokenizerSpeed.self, SentencePieceSpeed.self, TrainSpeed.self, GenerateSpeed.self, LlamaSpeed.self, BatchSpeed.self, QuantSpeed.self, FineTuneSpeed.self, ExplainSpeed.self, AllReduceSpeed.self])
}

extension Bench {
    /// `llm bench gemm`: sgemm GFLOPS through our BLAS wrapper at transformer shapes.
    struct Gemm: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "sgemm GFLOPS at transformer shapes (M×K·K×N).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Shapes as MxKxN, comma separated.")
        var shapes = "768x768x768,1024x3072x768,1024x768x3072,2048x2048x2048"
        @Option(help: "Seconds to spend on each shape.") var seconds: Double = 1.5
        @Flag(help: "Print JSON lines instead of a table.") var json = false

        func validate() throws {
            for spec in shapes.split(separator: ",", omittingEmptySubsequences: false) {
                let d = spec.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                guard d.count == 3, d.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 1 << 14 }) else {
                    throw CLIError("--shapes must be MxKxN sizes from 1 to 16384, comma separated; got '\(spec)'")
                }
            }
            try positive(seconds, "--seconds", max: 3600)
        }

        func run() throws {
            global.apply()
            if !json { print("threads: \(Parallel.threads), BLAS kernels: \(BLAS.kernelName ?? "Accelerate")\n| shape (M×K×N) | GFLOPS |\n|---|---|") }
            for spec in shapes.split(separator: ",") {
                let d = spec.split(separator: "x").compactMap { Int($0) }
                let (m, k, n) = (d[0], d[1], d[2])
                let rng = RandomGenerator(seed: 0)
                let a = Tensor.randn([m, k], rng: rng), b = Tensor.randn([k, n], rng: rng)
                let flops = 2.0 * Double(m * k * n)
                let best = bestTime(seconds: seconds) { _ = matmul(a, b) }
                let gflops = flops / best / 1e9
                if json { print("{\"shape\": \"\(m)x\(k)x\(n)\", \"gflops\": \(gflops), \"blas_kernels\": \"\(BLAS.kernelName ?? "Accelerate")\"}") }
                else { print("| \(m)×\(k)×\(n) | \(fmt(Float(gflops), 1)) |") }
            }
        }
    }

    /// `llm bench block`: forward + backward of one GPT-2-sized transformer block.
    struct Block: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forward+backward of one transformer block (GPT-2 small sizes).")
        @OptionGroup var global: GlobalOptions
        @Option var batch = 4
        @Option var context = 256
        @Option var embedding = 768
        @Option var heads = 12
        @Option(help: "Seconds to spend.") var seconds: Double = 5
        @Flag(help: "Print one JSON line instead of text.") var json = false

        func validate() throws {
            try positive(batch, "--batch", max: 1 << 12)
            try positive(context, "--context", max: 1 << 16)
            try positive(embedding, "--embedding", max: 1 << 14)
            try positive(heads, "--heads", max: 1 << 10)
            guard embedding % heads == 0 else { throw CLIError("--embedding \(embedding) is not divisible by --heads \(heads)") }
            try positive(seconds, "--seconds", max: 3600)
        }

        func run() throws {
            global.apply()
            let rng = RandomGenerator(seed: 0)
            // One GPT-2 layer (LayerNorms, attention, GELU MLP), as the decoder builds it.
            let block = GPT(GPTConfig(vocabularySize: 8, contextLength: context, embedding: embedding, layers: 1, heads: heads), rng: rng).layers[0]
            let x = Tensor.randn([batch, context, embedding], rng: rng, requiresGrad: true)
            let g = Tensor.randn([batch, context, embedding], rng: rng)
            let best = bestTime(seconds: seconds) {
                block.zeroGrad(); x.zeroGrad()
                block(x).backward(g)
            }
            let tokens = Double(batch * context)
            if json { print("{\"ms\": \(best * 1000), \"tokens_per_s\": \(tokens / best)}") }
            else { print("block fwd+bwd B\(batch) T\(context) C\(embedding) nh\(heads): \(fmt(Float(best * 1000), 2)) ms, \(Int(tokens / best)) tok/s, threads \(Parallel.threads)") }
        }
    }
}

/// Best wall time of `body` over repeated runs for about `seconds` (after one warm-up run).
func bestTime(seconds: Double, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    let end = Date().addingTimeInterval(seconds)
    repeat {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    } while Date() < end
    return best
}
