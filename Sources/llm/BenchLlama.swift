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
        @OptionGroup var loading: ModelLoading
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try checkModel(model)
            try positive(promptTokens, "--prompt-tokens", max: 1 << 20)
            try positive(genTokens, "--gen-tokens", max: 1 << 20)
            try positive(repetitions, "--repetitions", max: 1000)
        }

        func run() throws {
            global.apply()
            let loaded = try loading.load(model)
            let lm = loaded.model
            guard promptTokens + genTokens <= lm.contextLength else { throw CLIError("--prompt-tokens + --gen-tokens must fit the context (\(lm.contextLength))") }
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
    /// `llm bench batch`: decoding many sequences at once (one forward pass per step for all of
    /// them, as a server batches requests) against one sequence alone, in tokens per second.
    struct BatchSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "batch", abstract: "Aggregate decode tok/s of N sequences batched vs one sequence.")
        @Option(help: "A GGUF file or a model folder.") var model: String
        @Option(help: "Sequences decoded together.") var sequences = 8
        @Option(help: "Prompt tokens per sequence (random ids; not timed).") var promptTokens = 16
        @Option(help: "Tokens generated per sequence (timed).") var genTokens = 64
        @Option(help: "Runs of each (the best is reported).") var repetitions = 3
        @Flag(help: "Print {\"single_tok_s\", \"batched_tok_s\", \"sequences\"} and nothing else.") var json = false
        @OptionGroup var loading: ModelLoading
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try checkModel(model)
            try positive(sequences, "--sequences", max: 1 << 12)
            try positive(promptTokens, "--prompt-tokens", max: 1 << 20)
            try positive(genTokens, "--gen-tokens", max: 1 << 20)
            try positive(repetitions, "--repetitions", max: 1000)
        }

        func run() throws {
            global.apply()
            let loaded = try loading.load(model)
            let lm = loaded.model
            guard promptTokens + genTokens < lm.contextLength else { throw CLIError("--prompt-tokens + --gen-tokens must fit the context (\(lm.contextLength))") }
            let rng = RandomGenerator(seed: 1)
            /// Seconds to decode genTokens tokens for each of n sequences, after their prefill.
            func decode(_ n: Int) throws -> Double {
                let engine = BatchGenerator(model: lm)
                for _ in 0..<n {
                    let prompt = (0..<promptTokens).map { _ in Int32(rng.next() % UInt64(lm.vocabularySize)) }
                    try engine.add(.init(prompt: prompt, maxNewTokens: genTokens + 1))
                }
                _ = try engine.step()                                    // prefill, and each sequence's first token
                let t0 = Date()
                for _ in 0..<genTokens { _ = try engine.step() }
                return Date().timeIntervalSince(t0)
            }
            _ = try decode(1); _ = try decode(sequences)                 // warm-up
            var single = Double.infinity, batched = Double.infinity
            for _ in 0..<repetitions {
                single = min(single, try decode(1))
                batched = min(batched, try decode(sequences))
            }
            let singleRate = Double(genTokens) / single, batchedRate = Double(genTokens * sequences) / batched
            if json {
                print("{\"single_tok_s\": \(singleRate), \"batched_tok_s\": \(batchedRate), \"sequences\": \(sequences)}")
            } else {
                print(loaded.summary)
                print("threads \(Parallel.threads) · 1 sequence: \(String(format: "%.1f", singleRate)) tok/s · \(sequences) sequences: \(String(format: "%.1f", batchedRate)) tok/s in all (\(String(format: "%.2f", batchedRate / singleRate))x)")
            }
        }
    }

    /// `llm bench quant`: matrix-vector speed of each weight format (GB/s of weights read), through
    /// `linear` (float activations) and `linearGGML` (activations rounded as ggml does: Q8_0, Q8_1,
    /// Q8_K; integer kernels where there are some). K-quant weights are random valid blocks (there
    /// is no K quantizer yet) and need columns in multiples of 256: other shapes round up for them.
    struct QuantSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "quant", abstract: "Matrix-vector GB/s of weights for each block format.")
        @Option(help: "Rows × columns of the weight matrix.") var shape = "1536x576"
        @Option(help: "Input rows (1 = generation).") var inputs = 1
        @Option(help: "Seconds per format.") var seconds: Double = 1
        @Option(help: "Formats, comma-separated (default: all).") var types: String?
        @Flag(help: "One JSON object per format instead of the table.") var json = false
        @OptionGroup var global: GlobalOptions

        static let formats: [GGMLType] = [.f32, .f16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

        func validate() throws {
            let d = shape.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
            guard d.count == 2, d.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 1 << 16 }) else {
                throw CLIError("--shape must be ROWSxCOLS with sizes from 1 to 65536, got '\(shape)'")
            }
            try positive(inputs, "--inputs", max: 1 << 12)
            try positive(seconds, "--seconds", max: 3600)
            _ = try chosenFormats()
        }

        func chosenFormats() throws -> [GGMLType] {
            guard let types else { return Self.formats }
            return try types.split(separator: ",", omittingEmptySubsequences: false).map { name in
                guard let t = Self.formats.first(where: { $0.name.lowercased() == name.lowercased() }) else {
                    throw CLIError("--types: unknown format '\(name)' (known: \(Self.formats.map(\.name).joined(separator: ", ")))")
                }
                return t
            }
        }

        func run() throws {
            global.apply()
            let d = shape.split(separator: "x").compactMap { Int($0) }
            let chosen = try chosenFormats()
            let rng = RandomGenerator(seed: 0)
            let w = Tensor.randn([d[0], d[1]], rng: rng), x = Tensor.randn([inputs, d[1]], rng: rng)
            if !json {
                print("threads \(Parallel.threads) · \(d[0])×\(d[1]) weights · \(inputs) input row(s)")
                print("format    linear GB/s      µs   ggml GB/s      µs")
            }
            for type in chosen {
                let cols = (d[1] + type.blockSize - 1) / type.blockSize * type.blockSize
                let q = type.isKQuant ? QuantizedMatrix.random(type, rows: d[0], cols: cols, rng: rng) : QuantizedMatrix.quantize(w, as: type)
                let xt = cols == d[1] ? x : Tensor.randn([inputs, cols], rng: rng)
                let t = bestTime(seconds: seconds) { _ = linear(xt, q) }
                let g = bestTime(seconds: seconds) { _ = linearGGML(xt, q) }
                let gb = { (t: Double) in String(format: "%8.2f", Double(q.byteCount) / t / 1e9) }
                if json {
                    print(#"{"type":"\#(type.name)","rows":\#(d[0]),"cols":\#(cols),"inputs":\#(inputs),"threads":\#(Parallel.threads),"#
                        + #""linear_gbs":\#(Double(q.byteCount) / t / 1e9),"ggml_gbs":\#(Double(q.byteCount) / g / 1e9),"ggml_us":\#(g * 1e6)}"#)
                    continue
                }
                let note = cols == d[1] ? "" : "   (\(d[0])×\(cols))"
                print("\(type.name.padding(6)) \(gb(t))  \(String(format: "%8.2f", t * 1e6))    \(gb(g))  \(String(format: "%8.2f", g * 1e6))\(note)")
            }
        }
    }
}

extension Bench {
    /// `llm bench explain`: what looking inside costs. One forward pass over T tokens as every
    /// command runs it (all positions' logits, nothing kept) against the same pass recording every
    /// layer's attention weights, residual stream and contributions (`DecoderModel.record`), and
    /// against the recording plus the logit lens (one output-head pass per layer).
    struct ExplainSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "explain", abstract: "Seconds of a plain forward pass vs a recorded one (and with the logit lens).")
        @Option(help: "A GGUF file or a model folder.") var model: String
        @Option(help: "Prompt tokens (random ids).") var tokens = 128
        @Option(help: "Runs of each (the best is reported).") var repetitions = 5
        @Flag(help: "Print {\"plain_s\", \"record_s\", \"record_lens_s\", \"tokens\"} and nothing else.") var json = false
        @OptionGroup var loading: ModelLoading
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try checkModel(model)
            try positive(tokens, "--tokens", max: 1 << 20)
            try positive(repetitions, "--repetitions", max: 1000)
        }

        func run() throws {
            global.apply()
            let loaded = try loading.load(model)
            guard let lm = loaded.model as? DecoderModel else { throw CLIError("--model \(model): this model's forward pass cannot be recorded") }
            guard tokens <= lm.contextLength else { throw CLIError("--tokens \(tokens) is more than the model's context (\(lm.contextLength))") }
            lm.eval()
            let rng = RandomGenerator(seed: 1)
            let ids = (0..<tokens).map { _ in Int32(rng.next() % UInt64(lm.vocabularySize)) }
            func seconds(_ body: () throws -> Void) rethrows -> Double {
                let t0 = Date()
                try body()
                return Date().timeIntervalSince(t0)
            }
            let plain = { _ = try withNoGrad { try lm.logits(ids, batch: 1, length: ids.count) } }
            let record = { _ = try lm.record(ids) }
            let lens = { _ = lm.logitLens(try lm.record(ids)) }
            try plain(); try record()                                            // warm-up: pages in the weights
            var best = [Double.infinity, .infinity, .infinity]
            for _ in 0..<repetitions {                                           // interleaved, so drift hits all three alike
                best[0] = min(best[0], try seconds(plain))
                best[1] = min(best[1], try seconds(record))
                best[2] = min(best[2], try seconds(lens))
            }
            if json {
                print("{\"plain_s\": \(best[0]), \"record_s\": \(best[1]), \"record_lens_s\": \(best[2]), \"tokens\": \(tokens)}")
            } else {
                print(loaded.summary)
                print(String(format: "%d tokens: plain forward %.3f s · recorded %.3f s (%.2fx) · recorded + logit lens %.3f s (%.2fx), best of %d",
                             tokens, best[0], best[1], best[1] / best[0], best[2], best[2] / best[0], repetitions))
            }
        }
    }
}
