import Foundation
import Testing

/// `llm finetune`, `merge`, `classify`, `evaluate` and `--adapter` on the committed tiny Llama
/// (its tokenizer is byte-level BPE): what a user runs, end to end, in a temporary folder.
@Suite struct FineTuneCommands {
    static let base = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/llama-tiny").path

    static func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try CommandLine.run(args)
        return (r.status, String(decoding: r.out, as: UTF8.self), r.err)
    }

    static func folder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func write(_ text: String, _ path: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }

    static func sftData(_ dir: String) throws -> String {
        var lines: [String] = []
        for i in 0..<24 {
            let rec: [String: Any] = i % 3 == 0
                ? ["instruction": "Add \(i) and 2.", "input": "", "output": "\(i + 2)"]
                : i % 3 == 1 ? ["messages": [["role": "user", "content": "hi \(i)"], ["role": "assistant", "content": "hello \(i)"]]]
                : ["prompt": "Count to \(i % 5 + 2):", "completion": " " + (1...(i % 5 + 2)).map(String.init).joined(separator: " ")]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: rec, options: [.sortedKeys]), as: UTF8.self))
        }
        let path = dir + "/data.jsonl"
        try write(lines.joined(separator: "\n") + "\n", path)
        return path
    }

    /// LoRA SFT: the run's files, a resume that ends on the same adapter bytes as a straight run,
    /// the adapter used unmerged by generate/logits/perplexity and fused by merge.
    @Test func sftLoRARunResumesExactlyAndIsUsable() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.sftData(dir)
        let common = ["--model", Self.base, "--data", data, "--steps", "6", "--batch", "4", "--eval-every", "3", "--lr", "3e-3", "--seed", "4"]
        let straight = try Self.run(["finetune"] + common + ["--out", dir + "/a"])
        #expect(straight.status == 0, "\(straight.err)")
        #expect(straight.out.contains("trainable: ") && straight.out.contains("LoRA r=16"))
        let fm = FileManager.default
        for f in ["adapter_config.json", "adapter_model.safetensors", "finetune.json", "log.jsonl", "loss.svg", "checkpoint/state.json"] {
            #expect(fm.fileExists(atPath: dir + "/a/" + f), "missing \(f)")
        }
        let stopped = try Self.run(["finetune"] + common + ["--out", dir + "/b", "--stop-after", "3"])
        #expect(stopped.status == 0 && stopped.out.contains("continue with --resume"))
        let resumed = try Self.run(["finetune", "--resume", dir + "/b"])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(fm.contents(atPath: dir + "/a/adapter_model.safetensors") == fm.contents(atPath: dir + "/b/adapter_model.safetensors"),
                "a resumed run ends on the same adapter")
        let contradict = try Self.run(["finetune", "--resume", dir + "/b", "--lr", "1"])
        #expect(contradict.status == 1 && contradict.err.hasPrefix("error: --lr cannot change when resuming"))
        let again = try Self.run(["finetune"] + common + ["--out", dir + "/a"])
        #expect(again.status == 1 && again.err.contains("already holds a run"))

        // The adapter, unmerged, changes the logits; the run folder alone loads the same.
        let ids = ["--ids", "5 17 33 4 120", "--json", "--arithmetic", "float32"]
        let plain = try Self.run(["logits", "--model", Self.base] + ids).out
        let adapted = try Self.run(["logits", "--model", Self.base, "--adapter", dir + "/a"] + ids).out
        let run = try Self.run(["logits", "--model", dir + "/a"] + ids).out
        #expect(adapted != plain && adapted == run)
        let gen = try Self.run(["generate", "--model", Self.base, "--adapter", dir + "/a", "--prompt", "Add 3 and 2.", "--max-new-tokens", "4"])
        #expect(gen.status == 0, "\(gen.err)")
        try Self.write(String(repeating: "Count to five: 1 2 3 4 5. ", count: 20), dir + "/text.txt")
        let ppl = try Self.run(["perplexity", "--model", Self.base, "--adapter", dir + "/a", "--file", dir + "/text.txt", "--context", "32", "--json"])
        #expect(ppl.status == 0 && ppl.out.contains("\"perplexity\""), "\(ppl.err)")

        // Merged: a plain model folder giving the adapted logits.
        let merged = try Self.run(["merge", "--model", Self.base, "--adapter", dir + "/a", "--output", dir + "/merged"])
        #expect(merged.status == 0, "\(merged.err)")
        let mergedLogits = try JSONSerialization.jsonObject(with: Data(try Self.run(["logits", "--model", dir + "/merged"] + ids).out.utf8)) as! [String: Any]
        let adaptedLogits = try JSONSerialization.jsonObject(with: Data(adapted.utf8)) as! [String: Any]
        let a = (mergedLogits["logits"] as! [[Double]]).flatMap { $0 }, b = (adaptedLogits["logits"] as! [[Double]]).flatMap { $0 }
        #expect(zip(a, b).map { abs($0 - $1) }.max()! <= 1e-4)
        #expect(fm.fileExists(atPath: dir + "/merged/tokenizer.json"))

        let eval = try Self.run(["evaluate", "--model", dir + "/a", "--data", data, "--json"])
        let e = try JSONSerialization.jsonObject(with: Data(eval.out.utf8)) as! [String: Any]
        #expect(Set(e.keys) == ["loss", "perplexity", "tokens", "examples"] && (e["tokens"] as! Int) > 0)
    }

    /// Classification: LoRA + head on a CSV, then classify and evaluate in text and JSON.
    @Test func classificationRunClassifiesAndEvaluates() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var csv = "id,text,label\n"
        for i in 0..<48 { csv += "\(i),\"\(i % 2 == 0 ? "good, great" : "bad awful") thing \(i)\",\(i % 2 == 0 ? "pos" : "neg")\n" }
        try Self.write(csv, dir + "/train.csv")
        let r = try Self.run(["finetune", "--model", Self.base, "--task", "classify", "--data", dir + "/train.csv", "--out", dir + "/c",
                              "--steps", "25", "--batch", "8", "--lr", "3e-3", "--eval-every", "0"])
        #expect(r.status == 0, "\(r.err)")
        let one = try Self.run(["classify", "--model", dir + "/c", "--text", "good, great thing 99", "--json"])
        let p = (try JSONSerialization.jsonObject(with: Data(one.out.utf8)) as! [String: Any])["predictions"] as! [[String: Any]]
        #expect(p.count == 1 && p[0]["label"] as? String == "pos")
        let probs = p[0]["probabilities"] as! [String: Double]
        #expect(Set(probs.keys) == ["neg", "pos"] && abs(probs.values.reduce(0, +) - 1) < 1e-5)
        let eval = try Self.run(["evaluate", "--model", dir + "/c", "--data", dir + "/train.csv", "--json"])
        let e = try JSONSerialization.jsonObject(with: Data(eval.out.utf8)) as! [String: Any]
        #expect((e["accuracy"] as! Double) >= 0.9 && e["n"] as? Int == 48)
        #expect(e["confusion"] as? [[Int]] != nil && (e["per_class"] as? [String: Any])?.keys.sorted() == ["neg", "pos"])
        let text = try Self.run(["evaluate", "--model", dir + "/c", "--data", dir + "/train.csv"])
        #expect(text.out.contains("precision") && text.out.contains("confusion"))
        // A headerless TSV with --columns; a bad label column names the line.
        try Self.write("pos\tgood, great\nneg\tbad awful\n", dir + "/x.tsv")
        let head = try Self.run(["finetune", "--model", Self.base, "--task", "classify", "--method", "head", "--data", dir + "/x.tsv",
                                 "--columns", "label,text", "--out", dir + "/h", "--steps", "2", "--batch", "2", "--val-fraction", "0"])
        #expect(head.status == 0 && head.out.contains("the classification head only"), "\(head.err)")
        let noLabel = try Self.run(["finetune", "--model", Self.base, "--task", "classify", "--data", dir + "/x.tsv", "--out", dir + "/n"])
        #expect(noLabel.status == 1 && noLabel.err.contains("x.tsv:1") && noLabel.err.contains("--columns"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/n"), "nothing is written for bad data")
    }

    /// Bad data and options: one error line naming the file, line and field (or the option).
    @Test func badDataAndOptionsAreNamed() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [(String, String)] = [
            ("{\"instruction\": \"x\", \"output\": \"y\"}\n{\"instruction\": \"x\"\n", "bad.jsonl:2: invalid JSON"),
            ("{\"instruction\": \"x\"}\n", "bad.jsonl:1: missing field \"output\""),
            ("{\"instruction\": \"x\", \"output\": \"  \"}\n", "bad.jsonl:1: field \"output\" is empty"),
            ("{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n", "bad.jsonl:1: messages[0]: unknown role \"robot\""),
            ("{\"foo\": 1}\n", "bad.jsonl:1: not a known record"),
        ]
        for (text, want) in cases {
            try Self.write(text, dir + "/bad.jsonl")
            let r = try Self.run(["finetune", "--model", Self.base, "--data", dir + "/bad.jsonl", "--out", dir + "/r"])
            #expect(r.status == 1 && r.err.contains(want) && r.err.hasPrefix("error: ") && r.err.split(separator: "\n").count == 1, "\(r.err)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/r"))
        }
        let data = try Self.sftData(dir)
        let options: [([String], String)] = [
            (["--lora-rank", "0"], "--lora-rank must be positive, got 0"),
            (["--lora-alpha", "nan"], "--lora-alpha must be a positive number"),
            (["--lora-dropout", "1"], "--lora-dropout must be in [0, 1), got 1"),
            (["--lora-targets", "q,x"], "--lora-targets: unknown projection 'x'"),
            (["--lr", "inf"], "--lr must be a positive number"),
            (["--batch", "0"], "--batch must be positive, got 0"),
            (["--val-fraction", "1"], "--val-fraction must be in [0, 1), got 1"),
            (["--max-length", "9999"], "--max-length 9999 exceeds the model's context of 256"),
            (["--method", "head"], "--method head is for --task classify"),
            (["--train-layers", "1"], "--train-layers goes with --method full"),
            (["--method", "full", "--train-layers", "7"], "--train-layers 7: the model has 2 layers"),
            (["--task", "chat"], "--task must be sft or classify, got chat"),
            (["--prompt-format", "x"], "--prompt-format must be book or chat, got x"),
        ]
        for (extra, want) in options {
            let r = try Self.run(["finetune", "--model", Self.base, "--data", data, "--out", dir + "/o"] + extra)
            #expect(r.status == 1 && r.err.contains(want), "\(extra): \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/o"))
        }
        let adapter = try Self.run(["generate", "--model", Self.base, "--adapter", dir, "--prompt", "x"])
        #expect(adapter.status == 1 && adapter.err.contains("--adapter \(dir): no adapter_config.json"))
    }

    /// One of our own GPT runs (trained here with its own tokenizer) fine-tunes with LoRA, and the
    /// adapter merges into a GPT-2 folder (q/k/v joined back into c_attn) with the same logits.
    @Test func ourGPTRunFineTunesAndMerges() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let words = ["alpha", "beta", "gamma", "delta", "the", "and", "of", "model", "learns", "text"]
        try Self.write((0..<600).map { words[($0 * 3 + $0 / 7) % words.count] }.joined(separator: " "), dir + "/corpus.txt")
        let train = try Self.run(["train", "--data", dir + "/corpus.txt", "--tokenizer", "train", "--vocab-size", "300", "--config", "mini",
                                  "--context", "32", "--batch", "4", "--steps", "3", "--out", dir + "/run"])
        #expect(train.status == 0, "\(train.err)")
        let data = try Self.sftData(dir)
        let ft = try Self.run(["finetune", "--model", dir + "/run", "--data", data, "--out", dir + "/ft", "--steps", "3", "--batch", "4",
                               "--lr", "1e-2", "--max-length", "32"])
        #expect(ft.status == 0 && ft.out.contains("on 12 projections"), "\(ft.err)\(ft.out)")   // 2 layers × q,k,v,o,up,down (no gate)
        let ids = ["--ids", "5 17 33 4", "--json"]
        let adapted = try Self.run(["logits", "--model", dir + "/ft"] + ids)
        #expect(adapted.status == 0, "\(adapted.err)")
        let merged = try Self.run(["merge", "--model", dir + "/run", "--adapter", dir + "/ft", "--output", dir + "/merged"])
        #expect(merged.status == 0, "\(merged.err)")
        let a = ((try JSONSerialization.jsonObject(with: Data(adapted.out.utf8)) as! [String: Any])["logits"] as! [[Double]]).flatMap { $0 }
        let m = ((try JSONSerialization.jsonObject(with: Data(try Self.run(["logits", "--model", dir + "/merged"] + ids).out.utf8)) as! [String: Any])["logits"] as! [[Double]]).flatMap { $0 }
        #expect(a.count == m.count && zip(a, m).map { abs($0 - $1) }.max()! <= 1e-4)
    }
}
