import ArgumentParser
import Foundation
import Inference
import Models
import NN
import Tensors

extension Bench {
    /// `llm bench train`: training throughput (tok/s), MFU and peak memory for a preset.
    struct TrainSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "train", abstract: "GPT training throughput (tok/s, MFU, peak RSS).")
        @Option var config = "tiny"
        @Option var batch = 8
        @Option var context = 256
        @Option var steps = 6
        @Flag var json = false
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try oneOf(config, "--config", GPTConfig.presets.keys.sorted())
            try positive(batch, "--batch", max: 1 << 12)
            try positive(context, "--context", max: 1 << 16)
            try positive(steps, "--steps", max: 1 << 20)
        }

        func run() throws {
            global.apply()
            var cfg = GPTConfig.presets[config]!
            cfg.contextLength = max(cfg.contextLength, context)
            let gpt = GPT(cfg, rng: RandomGenerator(seed: 0))
            let opt = AdamW(ParameterGroup.decayMatrices(of: gpt, weightDecay: 0.1), learningRate: 1e-4, beta1: 0.9, beta2: 0.95)
            let rng = RandomGenerator(seed: 1)
            let n = batch * context
            func step() {
                let x = (0..<n).map { _ in Int32(rng.int(below: cfg.vocabularySize)) }
                let y = (0..<n).map { _ in Int32(rng.int(below: cfg.vocabularySize)) }
                try! gpt.loss(x, targets: y, batch: batch, length: context).backward()     // sizes checked above
                clipGradNorm(gpt.parameters, maxNorm: 1)
                opt.step()
                opt.zeroGrad()
            }
            let peak = measurePeakGFLOPS()                                  // before training: a cool, quiet machine
            step()                                                          // warm-up
            var times: [Double] = []
            for _ in 0..<steps { times.append(bestTime(seconds: 0) { step() }) }
            let best = times.min()!
            let tps = Double(n) / best
            // nanoGPT's estimate: 6·N per token for the matrices, plus attention's 12·L·C·T.
            let flopsPerToken = 6.0 * Double(gpt.parameterCount - cfg.contextLength * cfg.embedding) + 12.0 * Double(cfg.layers * cfg.embedding * context)
            let mfu = tps * flopsPerToken / (peak * 1e9)
            let rss = peakRSSBytes()
            if json {
                print("{\"tokens_per_s\": \(tps), \"mfu\": \(mfu), \"peak_gflops\": \(peak), \"peak_rss_mb\": \(Double(rss) / 1_048_576)}")
            } else {
                print("\(config) B\(batch) T\(context): \(Int(tps)) tok/s, MFU \(String(format: "%.1f", mfu * 100)) % of \(Int(peak)) GFLOPS measured, peak RSS \(rss / 1_048_576) MiB")
            }
        }
    }

    /// `llm bench generate`: greedy generation speed with the KV cache, batch 1.
    struct GenerateSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "generate", abstract: "Greedy generation speed with the KV cache (tok/s).")
        @Option var config = "gpt2"
        @Option var prompt = 16
        @Option var tokens = 100
        @Flag var json = false
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try oneOf(config, "--config", GPTConfig.presets.keys.sorted())
            try positive(prompt, "--prompt", max: 1 << 16)
            try positive(tokens, "--tokens", max: 1 << 16)
        }

        func run() throws {
            global.apply()
            let cfg = GPTConfig.presets[config]!
            guard prompt + tokens + 4 <= cfg.contextLength else { throw CLIError("--prompt + --tokens must fit the context of \(cfg.contextLength)") }
            let gpt = GPT(cfg, rng: RandomGenerator(seed: 0))
            let ids = (0..<prompt).map { Int32($0 * 37 % cfg.vocabularySize) }
            var gen = Generator(model: gpt, sampler: .greedy)
            _ = try gen.generate(prompt: ids, maxNewTokens: 4)              // warm-up
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = Date()
                let out = try gen.generate(prompt: ids, maxNewTokens: tokens)
                precondition(out.count == tokens)
                best = min(best, Date().timeIntervalSince(t0))
            }
            let tps = Double(tokens) / best
            if json { print("{\"tokens_per_s\": \(tps)}") } else { print("\(config): \(String(format: "%.1f", tps)) tok/s (prompt \(prompt), \(tokens) new, greedy, KV cache)") }
        }
    }
}

/// Best sgemm rate at 2048³ over about a second: the machine's practical FP32 peak.
func measurePeakGFLOPS() -> Double {
    let rng = RandomGenerator(seed: 0)
    let a = Tensor.randn([2048, 2048], rng: rng), b = Tensor.randn([2048, 2048], rng: rng)
    let t = bestTime(seconds: 3) { _ = matmul(a, b) }
    return 2.0 * 2048 * 2048 * 2048 / t / 1e9
}

/// Peak resident memory of this process (VmHWM), in bytes.
func peakRSSBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
}
