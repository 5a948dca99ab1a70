import Foundation
import Testing

/// `llm dpo` and `llm evaluate` on preference pairs, with the committed tiny Llama: what a user
/// runs, end to end, in a temporary folder.
@Suite struct DPOCommands {
    typealias F = FineTuneCommands

    /// 24 pairs in the three accepted shapes.
    static func pairs(_ dir: String) throws -> String {
        var lines: [String] = []
        for i in 0..<24 {
            let rec: [String: Any]
            switch i % 3 {
            case 0: rec = ["prompt": "Q\(i): what is \(i) + 1?", "chosen": " \(i + 1)", "rejected": " I do not know, maybe \(i * 7)."]
            case 1: rec = ["instruction": "Be kind to \(i).", "input": "", "chosen": "Hello friend \(i)!", "rejected": "Go away \(i)."]
            default: rec = ["conversations": [["from": "human", "value": "hi \(i)"]], "chosen": ["from": "gpt", "value": "hello \(i)"],
                            "rejected": ["from": "gpt", "value": "whatever, \(i)"]]
            }
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: rec, options: [.sortedKeys]), as: UTF8.self))
        }
        let path = dir + "/pairs.jsonl"
        try F.write(lines.joined(separator: "\n") + "\n", path)
        return path
    }

    static func json(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    /// LoRA DPO: the run's files and TRL-named log entries, a resume that ends on the same adapter
    /// bytes, and `evaluate` before (the model against itself) and after (against the base).
    @Test func loraRunResumesExactlyAndEvaluates() throws {
        let dir = try F.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.pairs(dir)
        let common = ["--model", F.base, "--data", data, "--steps", "6", "--eval-every", "3", "--lr", "5e-3", "--seed", "2"]
        let straight = try F.run(["dpo"] + common + ["--out", dir + "/a"])
        #expect(straight.status == 0, "\(straight.err)")
        #expect(straight.out.contains("method: DPO, beta 0.1") && straight.out.contains("reference: the base with the adapters switched off"))
        let fm = FileManager.default
        for f in ["adapter_config.json", "adapter_model.safetensors", "finetune.json", "log.jsonl", "loss.svg", "reference.safetensors",
                  "validation.jsonl", "checkpoint/state.json"] {
            #expect(fm.fileExists(atPath: dir + "/a/" + f), "missing \(f)")
        }
        let log = try String(contentsOfFile: dir + "/a/log.jsonl", encoding: .utf8).split(separator: "\n").map { try Self.json(String($0)) }
        for key in ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen"] {
            #expect(log[0][key] != nil, "log lacks \(key)")
        }
        #expect(log[2]["val_rewards/margins"] != nil && log[2]["val_loss"] != nil)

        let stopped = try F.run(["dpo"] + common + ["--out", dir + "/b", "--stop-after", "3"])
        #expect(stopped.status == 0 && stopped.out.contains("continue with --resume"))
        let resumed = try F.run(["dpo", "--resume", dir + "/b"])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(resumed.out.contains("read from"), "the reference comes from the cache")
        #expect(fm.contents(atPath: dir + "/a/adapter_model.safetensors") == fm.contents(atPath: dir + "/b/adapter_model.safetensors"),
                "a resumed run ends on the same adapter")
        let contradict = try F.run(["dpo", "--resume", dir + "/b", "--beta", "0.5"])
        #expect(contradict.status == 1 && contradict.err.hasPrefix("error: --beta cannot change when resuming"))

        // After: the adapter against the base, on the run's held-out pairs.
        let after = try F.run(["evaluate", "--model", F.base, "--adapter", dir + "/a", "--json"])
        #expect(after.status == 0, "\(after.err)")
        let a = try Self.json(after.out)
        for key in ["reward_accuracy", "reward_margin", "loss", "n", "logprob_accuracy"] { #expect(a[key] != nil, "no \(key)") }
        #expect((a["reward_margin"] as! Double) > 0 && (a["loss"] as! Double) < 0.6931)
        // Before: the model against itself.
        let before = try F.run(["evaluate", "--model", F.base, "--data", dir + "/a/validation.jsonl", "--json"])
        #expect(before.status == 0, "\(before.err)")
        let b = try Self.json(before.out)
        #expect(b["reward_accuracy"] is NSNull && b["reward_margin"] as? Double == 0 && abs((b["loss"] as! Double) - 0.693147) < 1e-5)
        #expect(b["n"] as? Int == a["n"] as? Int)
        // The run as --model: generation works on it.
        let gen = try F.run(["generate", "--model", dir + "/a", "--prompt", "Q1: what is 1 + 1?", "--max-new-tokens", "4", "--temperature", "0"])
        #expect(gen.status == 0, "\(gen.err)")
    }

    /// DPO after SFT: the SFT adapter keeps training and base + it is the reference; `--model RUN`
    /// means the same as `--model BASE --adapter RUN`. Full DPO writes a model folder.
    @Test func afterSFTAndFull() throws {
        let dir = try F.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.pairs(dir)
        let sft = try F.run(["finetune", "--model", F.base, "--data", try F.sftData(dir), "--steps", "2", "--batch", "4", "--lora-rank", "4",
                             "--out", dir + "/sft", "--seed", "1"])
        #expect(sft.status == 0, "\(sft.err)")
        let dpo = try F.run(["dpo", "--model", F.base, "--adapter", dir + "/sft", "--data", data, "--steps", "3", "--lr", "5e-3", "--out", dir + "/d"])
        #expect(dpo.status == 0, "\(dpo.err)")
        #expect(dpo.out.contains("LoRA r=4") && dpo.out.contains("continuing"), "\(dpo.out)")
        let info = try Self.json(try String(contentsOfFile: dir + "/d/finetune.json", encoding: .utf8))
        #expect((info["adapter"] as? String)?.hasSuffix("/sft") == true && (info["base"] as? String)?.hasSuffix("llama-tiny") == true)
        let viaRun = try F.run(["dpo", "--model", dir + "/sft", "--data", data, "--steps", "3", "--lr", "5e-3", "--out", dir + "/d2"])
        #expect(viaRun.status == 0, "\(viaRun.err)")
        #expect(FileManager.default.contents(atPath: dir + "/d/adapter_model.safetensors") == FileManager.default.contents(atPath: dir + "/d2/adapter_model.safetensors"))
        let eval = try F.run(["evaluate", "--model", F.base, "--adapter", dir + "/d"])
        #expect(eval.status == 0 && eval.out.contains("/sft (where"), "\(eval.out)\(eval.err)")

        let full = try F.run(["dpo", "--model", F.base, "--data", data, "--method", "full", "--steps", "2", "--lr", "1e-4", "--out", dir + "/f"])
        #expect(full.status == 0, "\(full.err)")
        #expect(FileManager.default.fileExists(atPath: dir + "/f/model/config.json"))
        let evalFull = try F.run(["evaluate", "--model", dir + "/f", "--json"])
        #expect(evalFull.status == 0, "\(evalFull.err)")
        #expect(try Self.json(evalFull.out)["reward_accuracy"] is Double)
    }

    @Test func badOptionsAndDataAreNamed() throws {
        let dir = try F.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try Self.pairs(dir)
        let base = ["dpo", "--model", F.base, "--data", data, "--out", dir + "/x"]
        let cases: [([String], String)] = [
            (["--beta", "0"], "error: --beta must be a positive number, got 0"),
            (["--beta", "nan"], "error: --beta must be a positive number"),
            (["--method", "head"], "error: --method must be lora or full, got head"),
            (["--lora-dropout", "1"], "error: --lora-dropout must be in [0, 1), got 1"),
            (["--adapter", dir], "error: --adapter \(dir): no adapter_config.json"),
            (["--max-samples", "0"], "error: --max-samples must be positive, got 0"),
        ]
        for (extra, message) in cases {
            let r = try F.run(base + extra)
            #expect(r.status == 1 && r.err.hasPrefix(message), "\(extra): \(r.err)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/x/finetune.json"))
        }
        let few = try F.run(base + ["--max-samples", "6", "--steps", "1"])
        #expect(few.status == 0 && few.out.contains("data: 5 training pairs") && few.out.contains("1 held-out pairs"), "\(few.out)\(few.err)")
        let bad = dir + "/bad.jsonl"
        try F.write(#"{"prompt": "p", "chosen": "a", "rejected": "b"}"# + "\n" + #"{"prompt": "p", "chosen": "a"}"# + "\n", bad)
        let r = try F.run(["dpo", "--model", F.base, "--data", bad, "--out", dir + "/y"])
        #expect(r.status == 1 && r.err.contains("\(bad):2") && r.err.contains("missing field \"rejected\""), "\(r.err)")
        let e = try F.run(["evaluate", "--model", F.base, "--data", data, "--beta=-1"])
        #expect(e.status == 1 && e.err.hasPrefix("error: --beta must be a positive number, got -1"), "\(e.err)")
        let notPairs = try F.run(["evaluate", "--model", F.base, "--data", try F.sftData(dir)])
        #expect(notPairs.status == 1 && notPairs.err.contains("not a fine-tuning run"), "\(notPairs.err)")
    }
}
