import ArgumentParser
import Foundation
import Inference
import Models
import Tensors

extension Bench {
    /// `llm bench llama`: prompt processing and generation speed of a model file, measured the way
    /// `llama-bench -p P -n N` does: pp = one batch of P tokens from an empty cache; tg = N tokens
    /// fed one at a time from an empty cache (no sampling cost); each the mean of `--repetitions`
    /// runs after a warm-up.
    struct LlamaSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "llama", abstract: "Prompt (pp) and generation (tg) tok/s of a model file, as llama-bench measures them.")
        @Option(help: "A GGUF file or a model folder.") var model: String
        @Option(help: "Prompt tokens (pp).") var promptTokens = 128
        @Option(help: "Generated tokens (tg).") var genTokens = 64
        @Option(help: "Runs of each test (the mean is reported).") var repetitions = 5
        @Flag(help: "Print {\"pp_tok_s\", \"tg_tok_s\", \"load_s\", \"peak_rss_mib\"} and nothing else.") var json = false
        @OptionGroup var numerics: ArithmeticOption
        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.apply()
            let loaded = try loadLanguageModel(model, arithmetic: numerics.value())
            let lm = loaded.model
            lm.eval()
            let v = lm.vocabularySize
            let rng = RandomGenerator(seed: 1)
            let prompt = (0..<promptTokens).map { _ in Int32(rng.next() % UInt64(v)) }
            func pp() throws -> Double {
                let cache = lm.makeCache(capacity: promptTokens)
                let t0 = Date()
                _ = try lm.forward([SequenceInput(tokens: prompt, cache: cache)])
                return Date().timeIntervalSince(t0)
            }
            func tg() throws -> Double {
                let cache = lm.makeCache(capacity: genTokens)
                var id = prompt[0]
                let t0 = Date()
                for _ in 0..<genTokens {
                    let logits = try lm.forward([SequenceInput(tokens: [id], cache: cache)])
                    id = Int32(argmax(UnsafeBufferPointer(start: logits.data, count: v)))
                }
                return Date().timeIntervalSince(t0)
            }
            _ = try pp(); _ = try tg()                                           // warm-up: pages in the weights
            var ppTimes: [Double] = [], tgTimes: [Double] = []
            for _ in 0..<max(1, repetitions) { ppTimes.append(try pp()); tgTimes.append(try tg()) }
            let ppRate = Double(promptTokens) / (ppTimes.reduce(0, +) / Double(ppTimes.count))
            let tgRate = Double(genTokens) / (tgTimes.reduce(0, +) / Double(tgTimes.count))
            let rss = Double(peakRSSBytes()) / 1_048_576
            if json {
                print("{\"pp_tok_s\": \(ppRate), \"tg_tok_s\": \(tgRate), \"load_s\": \(loaded.loadSeconds), \"peak_rss_mib\": \(rss)}")
            } else {
                print(loaded.summary)
                print("threads \(Parallel.threads) · load \(String(format: "%.3f", loaded.loadSeconds)) s · peak RSS \(String(format: "%.0f", rss)) MiB")
                print("pp\(promptTokens): \(String(format: "%.1f", ppRate)) tok/s · tg\(genTokens): \(String(format: "%.1f", tgRate)) tok/s (mean of \(repetitions))")
            }
        }
    }
}

extension Bench {
    /// `llm bench quant`: matrix-vector speed of each weight format (GB/s of weights read).
    struct QuantSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "quant", abstract: "Matrix-vector GB/s of weights for each block format.")
        @Option(help: "Rows × columns of the weight matrix.") var shape = "1536x576"
        @Option(help: "Input rows (1 = generation).") var inputs = 1
        @Option(help: "Seconds per format.") var seconds: Double = 1
        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.apply()
            let d = shape.split(separator: "x").compactMap { Int($0) }
            guard d.count == 2 else { throw CLIError("--shape: expected ROWSxCOLS") }
            let rng = RandomGenerator(seed: 0)
            let w = Tensor.randn([d[0], d[1]], rng: rng), x = Tensor.randn([inputs, d[1]], rng: rng)
            print("threads \(Parallel.threads) · \(d[0])×\(d[1]) weights · \(inputs) input row(s)")
            for type in [GGMLType.f32, .f16, .q8_0, .q4_0, .q4_1] {
                let q = QuantizedMatrix.quantize(w, as: type)
                let t = bestTime(seconds: seconds) { _ = linear(x, q) }
                print("\(type.name.padding(5)) \(String(format: "%8.2f", Double(q.byteCount) / t / 1e9)) GB/s  \(String(format: "%7.2f", t * 1e6)) µs")
            }
        }
    }
}
