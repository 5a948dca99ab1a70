import Foundation
import Testing

/// Every option of every command, given hostile values through the built binary: each must end in
/// exit status 1 and one `error:` line naming the option, never a signal, and no output written.
/// The table must cover every option the binary has (read from its own help dump), so an option
/// added later without checks fails here.
@Suite struct OptionTable {
    /// Hostile values, by kind.
    static let zero = "0", negative = "-1", nan = "nan", inf = "inf"
    static let huge = "1000000000000000"                 // 10¹⁵: parses, larger than any size we take
    static let overflow = "99999999999999999999"         // does not fit a 64-bit integer
    static let hugeFloat = "1e30", word = "bogus", empty = ""
    static let counts = [zero, negative, huge, overflow, nan]
    static let rates = [zero, negative, nan, inf]
    static let nonNegativeRates = [negative, nan, inf]

    /// A scratch folder: an existing file, an existing empty folder, a missing path, outputs.
    struct Scratch {
        let root: String
        var file: String { root + "/a.txt" }
        var folder: String { root + "/folder" }
        var missing: String { root + "/missing/nothing" }
        var json: String { root + "/data.json" }
        func output(_ name: String) -> String { root + "/out/" + name }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("llm-options-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: root + "/folder", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
            try Data("Hello world. This is a small text for the option table.\n".utf8).write(to: URL(fileURLWithPath: root + "/a.txt"))
            try Data(#"[{"instruction": "Say hi", "input": "", "output": "Hi"}]"#.utf8).write(to: URL(fileURLWithPath: root + "/data.json"))
        }
    }

    struct Row {
        let command: [String]
        let base: [String]
        let options: [String: [String]]
        /// Options that take any value (free text): no hostile value exists.
        var free: Set<String> = []
        /// Paths the command would write: none may exist after a refused run.
        var outputs: [String] = []
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path

    static func table(_ s: Scratch) -> [Row] {
        let gpt2 = fixtures + "/gpt2-tiny", adapter = fixtures + "/lora/gpt2-tiny-adapter"
        let paths = [s.missing, empty]
        let files = [s.missing, s.folder, empty]
        let folders = [s.missing, s.file, empty]
        let threads = ["--threads": [zero, negative, huge, overflow]]
        let loading = ["--adapter": [s.missing, s.file, s.folder, empty], "--arithmetic": [word, empty]].merging(threads) { $1 }
        let tokenizerChoice = ["--encoding": [word, empty], "--tokenizer": paths]
        let sampling = ["--max-new-tokens": counts, "--temperature": nonNegativeRates, "--top-k": counts,
                        "--top-p": [zero, "2", negative, nan, inf], "--seed": [negative, nan]]
        func tuning(_ out: String) -> [String: [String]] {
            ["--model": paths, "--data": files, "--val-data": files, "--out": [s.file, empty, s.missing + "/run"],
             "--method": [word, empty], "--lora-rank": counts, "--lora-alpha": rates, "--lora-dropout": [negative, "1", nan, inf],
             "--lora-targets": [word, empty, "q,,v"], "--epochs": counts, "--steps": [zero, negative, overflow], "--batch": counts,
             "--grad-accum": counts, "--lr": rates, "--min-lr": nonNegativeRates + ["1"], "--warmup": [negative, overflow],
             "--weight-decay": nonNegativeRates, "--max-length": [zero, "1", negative, huge], "--val-fraction": [negative, "1", nan, inf],
             "--seed": [negative, nan], "--eval-every": [negative, overflow], "--prompt-format": [word, empty],
             "--placeholder": ["x", "=y", empty], "--tokenizer": paths, "--resume": folders, "--stop-after": [zero, negative],
             "--max-samples": [zero, negative, overflow]].merging(threads) { $1 }
        }
        let runOut = s.output("run"), fileOut = s.output("file"), gguf = s.output("model.gguf")
        return [
            Row(command: ["tokenize"], base: ["hello"], options: ["--file": files, "--allowed-special": [word, empty]].merging(tokenizerChoice) { $1 }),
            Row(command: ["detokenize"], base: ["--ids", "1"], options: ["--ids": [empty, "x", "1,,y", overflow], "--file": files].merging(tokenizerChoice) { $1 }),
            Row(command: ["train-tokenizer"], base: ["--input", s.file, "--vocab-size", "300", "--output", runOut],
                options: ["--input": files, "--vocab-size": counts + ["255"], "--pattern": [word, empty], "--special": [empty],
                          "--output": [s.file, empty, s.missing + "/tok"]].merging(threads) { $1 }, outputs: [runOut]),
            Row(command: ["prepare"], base: ["--input", s.file, "--out", fileOut],
                options: ["--input": paths, "--jsonl-field": [empty], "--tokenizer": paths, "--out": [s.folder, empty, s.missing + "/x.tok"]]
                    .merging(threads) { $1 }, outputs: [fileOut]),
            Row(command: ["train"], base: ["--data", s.file, "--steps", "1", "--out", runOut],
                options: ["--data": paths, "--tokenizer": paths, "--vocab-size": counts, "--arch": [word, empty], "--config": [word, empty],
                          "--embedding": counts, "--layers": counts, "--heads": counts, "--kv-heads": counts, "--steps": [zero, negative, overflow, nan],
                          "--minutes": rates + [hugeFloat], "--batch": counts, "--context": counts, "--stride": counts, "--grad-accum": counts,
                          "--lr": rates, "--min-lr": nonNegativeRates + ["1"], "--warmup": [negative, overflow], "--weight-decay": nonNegativeRates,
                          "--clip": nonNegativeRates, "--dropout": [negative, "1", nan, inf], "--eval-every": [negative, overflow, nan],
                          "--sample-every": [negative, overflow], "--seed": [negative, nan], "--out": [s.file, empty, s.file + "/run"],
                          "--resume": folders + [s.folder], "--stop-after": [zero, negative, overflow]].merging(threads) { $1 },
                outputs: [runOut]),
            Row(command: ["generate"], base: ["--model", gpt2, "--prompt", "hi"],
                options: ["--model": paths, "--prompt": [empty], "--ids": [empty, "x"], "--system": ["x"], "--stop": [empty], "--tokenizer": paths]
                    .merging(sampling) { $1 }.merging(loading) { $1 }),
            Row(command: ["chat"], base: ["--model", gpt2], options: ["--model": paths].merging(sampling) { $1 }.merging(loading) { $1 },
                free: ["--system"]),
            Row(command: ["logits"], base: ["--model", gpt2, "--ids", "1 2"],
                options: ["--model": paths, "--ids": [empty, "x", "1 -2"], "--top": counts].merging(loading) { $1 }),
            Row(command: ["perplexity"], base: ["--model", gpt2, "--file", s.file],
                options: ["--model": paths, "--file": files, "--context": counts + ["3"], "--chunks": counts, "--tokenizer": paths,
                          "--kl-base": paths].merging(loading) { $1 }),
            Row(command: ["inspect"], base: ["--config", "tiny"], options: ["--config": [word, empty], "--model": paths, "--array-items": [negative, huge, overflow]]),
            Row(command: ["export"], base: ["--model", gpt2, "--output", runOut],
                options: ["--model": folders, "--format": [word, empty], "--output": [s.file, empty, s.missing + "/hf"]], outputs: [runOut]),
            Row(command: ["quantize"], base: ["--model", gpt2, "--type", "q8_0", "--output", gguf],
                options: ["--model": paths, "--type": [word, empty], "--output": [s.folder, empty, s.missing + "/x.gguf", s.output("x.txt")],
                          "--method": [word, empty], "--calibration": files, "--calibration-tokens": counts,
                          "--calibration-length": counts + ["1"], "--output-type": [word, empty], "--tokenizer": paths].merging(loading) { $1 },
                outputs: [gguf]),
            Row(command: ["finetune"], base: ["--model", gpt2, "--data", s.json, "--out", runOut],
                options: tuning(runOut).merging(["--task": [word, empty], "--train-layers": [negative, huge, "2"], "--columns": ["label,text", empty]]) { $1 },
                outputs: [runOut]),
            Row(command: ["dpo"], base: ["--model", gpt2, "--data", s.json, "--out", runOut],
                options: tuning(runOut).merging(["--adapter": [s.missing, s.file, empty], "--beta": rates, "--method": [word, empty, "head"]]) { $1 },
                outputs: [runOut]),
            Row(command: ["merge"], base: ["--model", gpt2, "--adapter", adapter, "--output", runOut],
                options: ["--model": paths, "--adapter": folders, "--output": [s.file, empty, s.missing + "/m", s.folder]].merging(threads) { $1 },
                outputs: [runOut]),
            Row(command: ["classify"], base: ["--model", s.folder, "--text", "hi"],
                options: ["--model": folders, "--text": [empty], "--file": files].merging(threads) { $1 }),
            Row(command: ["evaluate"], base: ["--model", gpt2],
                options: ["--model": paths, "--adapter": folders, "--data": files, "--batch": counts, "--beta": rates,
                          "--prompt-format": [word, empty], "--max-length": [zero, "1", negative, huge]].merging(threads) { $1 }),
            Row(command: ["explain"], base: ["--model", gpt2, "--prompt", "hi", "--output", s.output("report.html")],
                options: ["--model": paths, "--prompt": [empty], "--ids": [empty, "x"], "--continue": [negative, huge, overflow, nan],
                          "--output": [s.folder, empty, s.missing + "/r.html"], "--tokenizer": paths].merging(loading) { $1 },
                outputs: [s.output("report.html")]),
            // Every value here must be refused before the server starts (one that passed would serve forever).
            Row(command: ["serve"], base: ["--model", gpt2, "--port", "0"],
                options: ["--model": paths, "--host": [empty], "--port": [negative, "65536", huge, overflow, word], "--parallel": counts + ["257"],
                          "--context": counts + ["1"], "--api-key": [empty], "--api-key-file": files, "--max-queue": counts,
                          "--stream-interval-ms": [negative, "10001", overflow, word], "--cors-origin": [empty], "--name": [empty], "--tokenizer": paths].merging(loading) { $1 }),
            Row(command: ["demo"], base: [],
                options: ["--steps": counts, "--points": counts, "--hidden": counts, "--lr": rates, "--seed": [negative, nan]].merging(threads) { $1 }),
            Row(command: ["bench", "gemm"], base: [],
                options: ["--shapes": [empty, "1x2", "0x1x1", "axbxc", "99999x1x1", "8x8x8,"], "--seconds": rates + [hugeFloat]].merging(threads) { $1 }),
            Row(command: ["bench", "block"], base: [],
                options: ["--batch": counts, "--context": counts, "--embedding": counts + ["100"], "--heads": counts, "--seconds": rates]
                    .merging(threads) { $1 }),
            Row(command: ["bench", "tokenizer"], base: ["--corpus", s.file],
                options: ["--corpus": files, "--train": files, "--heldout": files, "--vocab": counts, "--threads": counts,
                          "--ids-out": [s.folder, empty, s.missing + "/ids"], "--repeats": counts]),
            Row(command: ["bench", "sentencepiece"], base: ["--model", s.file, "--text", s.file],
                options: ["--model": files, "--text": files, "--repeat": counts]),
            Row(command: ["bench", "train"], base: [],
                options: ["--config": [word, empty], "--batch": counts, "--context": counts, "--steps": counts].merging(threads) { $1 }),
            Row(command: ["bench", "generate"], base: [],
                options: ["--config": [word, empty], "--prompt": counts, "--tokens": counts].merging(threads) { $1 }),
            Row(command: ["bench", "llama"], base: ["--model", gpt2],
                options: ["--model": paths, "--prompt-tokens": counts, "--gen-tokens": counts, "--repetitions": counts].merging(loading) { $1 }),
            Row(command: ["bench", "batch"], base: ["--model", gpt2],
                options: ["--model": paths, "--sequences": counts, "--prompt-tokens": counts, "--gen-tokens": counts, "--repetitions": counts]
                    .merging(loading) { $1 }),
            Row(command: ["bench", "quant"], base: [],
                options: ["--shape": [empty, "1", "0x1", "axb", "99999x1"], "--inputs": counts, "--seconds": rates, "--types": [word, empty, "q4_0,"]]
                    .merging(threads) { $1 }),
            Row(command: ["bench", "allreduce"], base: ["--floats", "16"], options: ["--floats": counts, "--repetitions": counts]),
            Row(command: ["bench", "explain"], base: ["--model", gpt2],
                options: ["--model": paths, "--tokens": counts, "--repetitions": counts].merging(loading) { $1 }),
            Row(command: ["bench", "finetune"], base: ["--model", gpt2],
                options: ["--model": paths, "--method": [word, empty], "--objective": [word, empty], "--batch": counts, "--length": counts,
                          "--rank": counts, "--alpha": rates, "--steps": counts, "--warmup-steps": [negative, huge, overflow], "--seed": [negative, nan]]
                    .merging(threads) { $1 }),
        ]
    }

    /// Every (command, option) the binary has, from its help dump: the options that take a value.
    static func binaryOptions() throws -> [String: Set<String>] {
        let r = try CommandLine.run(["--experimental-dump-help"])
        let root = try #require(try JSONSerialization.jsonObject(with: r.out) as? [String: Any])
        var out: [String: Set<String>] = [:]
        func walk(_ command: [String: Any], _ path: [String]) {
            if !path.isEmpty {
                var names = Set<String>()
                for a in command["arguments"] as? [[String: Any]] ?? [] where a["kind"] as? String == "option" {
                    if let n = (a["preferredName"] as? [String: Any])?["name"] as? String { names.insert("--" + n) }
                }
                out[path.joined(separator: " ")] = names
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                if let name = sub["commandName"] as? String, name != "help" { walk(sub, path + [name]) }
            }
        }
        walk(root["command"] as? [String: Any] ?? [:], [])
        return out
    }

    @Test func everyOptionIsInTheTable() throws {
        let s = try Scratch()
        defer { try? FileManager.default.removeItem(atPath: s.root) }
        let rows = Self.table(s)
        let known = Dictionary(rows.map { ($0.command.joined(separator: " "), Set($0.options.keys).union($0.free)) }) { a, _ in a }
        for (command, options) in try Self.binaryOptions() where command != "bench" {
            let covered = try #require(known[command], "llm \(command) is not in the option table")
            #expect(options.subtracting(covered).isEmpty, "llm \(command): options without hostile values in the table: \(options.subtracting(covered).sorted())")
        }
    }

    @Test func hostileValuesAreRefusedWithOneLine() throws {
        let s = try Scratch()
        defer { try? FileManager.default.removeItem(atPath: s.root) }
        var cases: [(args: [String], option: String, outputs: [String])] = []
        for row in Self.table(s) {
            for (option, values) in row.options.sorted(by: { $0.key < $1.key }) {
                for v in values {
                    // The option replaces the base's value of the same name, if any.
                    var base = row.base
                    if let i = base.firstIndex(of: option) { base.removeSubrange(i...i + 1) }
                    cases.append((row.command + base + [option, v], option, row.outputs))
                }
            }
        }
        // Combinations that make no sense, each refused naming one of its options.
        cases += [
            (["train", "--data", s.file, "--steps", "1", "--batch", "65536", "--context", "1048576", "--out", s.output("run")], "--batch", [s.output("run")]),
            (["train", "--data", s.file, "--steps", "1", "--minutes", "1", "--out", s.output("run")], "--minutes", [s.output("run")]),
            (["train", "--data", s.file, "--steps", "1", "--kv-heads", "1", "--out", s.output("run")], "--kv-heads", [s.output("run")]),
            (["train", "--data", s.file, "--steps", "1", "--lr", "1e-4", "--min-lr", "1e-3", "--out", s.output("run")], "--min-lr", [s.output("run")]),
            (["generate", "--model", Self.fixtures + "/gpt2-tiny", "--ids", "1", "--chat"], "--chat", []),
            (["tokenize", "--ordinary", "--allowed-special", "all", "x"], "--ordinary", []),
            (["explain", "--model", Self.fixtures + "/gpt2-tiny", "--prompt", "hi"], "--output", []),
            (["serve", "--model", Self.fixtures + "/gpt2-tiny", "--port", "0", "--api-key", "k", "--api-key-file", s.file], "--api-key", []),
            (["serve", "--model", Self.fixtures + "/gpt2-tiny", "--port", "0", "--context", "100000"], "--context", []),
            (["explain", "--model", Self.fixtures + "/gpt2-tiny", "--ids", "1", "--continue", "64", "--json"], "--continue", []),
        ]
        let results = Results(count: cases.count)
        DispatchQueue.concurrentPerform(iterations: cases.count) { i in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.llm)
            p.arguments = cases[i].args
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice; p.standardError = err; p.standardInput = FileHandle.nullDevice
            do { try p.run() } catch { results.set(i, (-1, false, "could not start: \(error)")); return }
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            results.set(i, (p.terminationStatus, p.terminationReason == .uncaughtSignal, String(decoding: e, as: UTF8.self)))
        }
        for (i, c) in cases.enumerated() {
            let (status, signalled, err) = results.get(i)
            let shown = "llm " + c.args.map { $0.isEmpty ? "''" : $0 }.joined(separator: " ")
            let lines = err.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(!signalled, "\(shown): killed by signal \(status)")
            #expect(status == 1, "\(shown): exit status \(status), stderr \(err)")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: ") && lines[0].contains(c.option), "\(shown): expected one error line naming \(c.option), got \(err)")
            for o in c.outputs { #expect(!FileManager.default.fileExists(atPath: o), "\(shown): left \(o) behind") }
        }
    }

    /// Outcomes written by concurrent runs: exit status, killed by a signal, stderr.
    final class Results: @unchecked Sendable {
        private var values: [(Int32, Bool, String)]
        private let lock = NSLock()
        init(count: Int) { values = Array(repeating: (0, false, ""), count: count) }
        func set(_ i: Int, _ v: (Int32, Bool, String)) { lock.lock(); values[i] = v; lock.unlock() }
        func get(_ i: Int) -> (Int32, Bool, String) { lock.lock(); defer { lock.unlock() }; return values[i] }
    }
}
