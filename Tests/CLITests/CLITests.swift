import Foundation
import Testing

/// The `llm` command as a user runs it: exact output contracts and one-line errors.
@Suite struct CommandLine {
    /// The llm binary built beside this test bundle (.build/<config>/llm).
    static let llm: String = {
        var dir = URL(fileURLWithPath: Bundle.main.bundlePath)
        while dir.pathExtension == "xctest" || !FileManager.default.fileExists(atPath: dir.appendingPathComponent("llm").path) {
            let up = dir.deletingLastPathComponent()
            if up.path == dir.path { break }
            dir = up
        }
        return dir.appendingPathComponent("llm").path
    }()

    static func run(_ args: [String], stdin: String? = nil) throws -> (status: Int32, out: Data, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: llm)
        p.arguments = args
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out; p.standardError = err; p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    @Test func tokenizeJSONIsOneArrayAndNothingElse() throws {
        let r = try Self.run(["tokenize", "--json", "Hello world"])
        #expect(r.status == 0)
        #expect(String(decoding: r.out, as: UTF8.self) == "[15496,995]\n")
    }

    @Test func tokenizeDefaultShowAndSpecials() throws {
        #expect(String(decoding: try Self.run(["tokenize", "Hello world"]).out, as: UTF8.self) == "15496 995\n")
        #expect(String(decoding: try Self.run(["tokenize", "--show", " naïve"]).out, as: UTF8.self) == " 41492  \" naïve\"\n")
        let refused = try Self.run(["tokenize", "a<|endoftext|>"])
        #expect(refused.status != 0 && refused.err.hasPrefix("error: the text spells the special token <|endoftext|> at byte offset 1"))
        #expect(refused.err.contains("--allowed-special all") && refused.err.contains("--ordinary"))
        #expect(String(decoding: try Self.run(["tokenize", "--allowed-special", "all", "a<|endoftext|>"]).out, as: UTF8.self) == "64 50256\n")
        // --ordinary: the special token's text as ordinary text (tiktoken's encode_ordinary: a, <, |, endoftext, |, >).
        #expect(String(decoding: try Self.run(["tokenize", "--ordinary", "a<|endoftext|>"]).out, as: UTF8.self) == "64 27 91 437 1659 5239 91 29\n")
        let both = try Self.run(["tokenize", "--ordinary", "--allowed-special", "all", "x"])
        #expect(both.status == 1 && both.err.contains("--ordinary") && both.err.contains("--allowed-special"))
    }

    /// A SentencePiece .model file and a GGUF file's vocabulary as --tokenizer; --show writes pieces with ▁.
    @Test func tokenizeWithSentencePieceAndGGUFVocabularies() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let model = repo.appendingPathComponent(".cache/sentencepiece/botchan_en_bpe_1000.model").path
        let gguf = repo.appendingPathComponent(".cache/gemma-3-270m-q4_k_m.gguf").path
        let shown = try Self.run(["tokenize", "--tokenizer", model, "--show", "Hello world"])
        #expect(shown.status == 0, "\(shown.err)")
        let lines = String(decoding: shown.out, as: UTF8.self).split(separator: "\n")
        #expect(lines.contains { $0.contains("▁") }, "\(lines)")
        let ids = try Self.run(["tokenize", "--tokenizer", gguf, "--allowed-special", "all", "<start_of_turn>user\nhi"])
        #expect(ids.status == 0 && String(decoding: ids.out, as: UTF8.self).hasPrefix("105 "), "\(ids.err)")
        let plain = try Self.run(["tokenize", "--tokenizer", gguf, "--ordinary", "<start_of_turn>"])
        #expect(plain.status == 0 && !String(decoding: plain.out, as: UTF8.self).contains("105"))
        let back = try Self.run(["detokenize", "--tokenizer", gguf, "--ids", String(decoding: ids.out, as: UTF8.self)])
        #expect(back.out == Data("user\nhi".utf8))      // control tokens decode to nothing, as in sentencepiece and llama.cpp
        let missing = try Self.run(["tokenize", "--tokenizer", "/nonexistent.model", "x"])
        #expect(missing.status == 1 && missing.err.contains("--tokenizer /nonexistent.model"))
    }

    @Test func detokenizeWritesRawBytes() throws {
        let r = try Self.run(["detokenize", "--ids", "15496 995 50256"])
        #expect(r.status == 0 && r.out == Data("Hello world<|endoftext|>".utf8))
        let half = try Self.run(["detokenize", "--ids", "447"])     // one byte of a 3-byte character: passed through unchanged
        #expect(half.out == Data([0xE2, 0x80]))
    }

    @Test func errorsAreOneLineAndNonZero() throws {
        let bad = try Self.run(["detokenize", "--ids", "1 60000"])
        #expect(bad.status == 1 && bad.err == "error: token id 60000 at position 1 is outside the vocabulary (0..<50257)\n")
        let missing = try Self.run(["tokenize", "--file", "/no/such/file"])
        #expect(missing.status == 1 && missing.err == "error: --file /no/such/file: no such file\n")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID()).txt").path
        try Data([0x61, 0x0A, 0x62, 0xFF, 0x63]).write(to: URL(fileURLWithPath: path))
        let invalid = try Self.run(["tokenize", "--file", path])
        #expect(invalid.status == 1 && invalid.err == "error: \(path): invalid UTF-8 at byte offset 3 (line 2)\n")
    }

    @Test func trainTokenizerThenUseIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let words = ["the", "cat", "sat", "on", "mat", "with", "hat", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
                     "tokenizer", "learns", "merges", "from", "text", "files", "and", "saves", "them", "1234", "café", "日本"]
        let text = (0..<3000).map { words[($0 * 7 + $0 / 13) % words.count] }.joined(separator: " ")
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/in.txt"))
        let r = try Self.run(["train-tokenizer", "--input", dir + "/in.txt", "--vocab-size", "300", "--special", "<|endoftext|>", "--output", dir + "/tok"])
        #expect(r.status == 0)
        #expect(String(decoding: r.out, as: UTF8.self).contains("vocabulary   300 (256 bytes + 43 merges + 1 special)"))
        let ids = try Self.run(["tokenize", "--tokenizer", dir + "/tok", "--json", "the cat"])
        let back = try Self.run(["detokenize", "--tokenizer", dir + "/tok", "--ids", String(decoding: ids.out, as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: "[]\n"))])
        #expect(back.out == Data("the cat".utf8))
        let stats = String(decoding: try Self.run(["tokenize", "--stats", "--tokenizer", dir + "/tok", "--file", dir + "/in.txt"]).out, as: UTF8.self)
        #expect(stats.contains("char-level") && stats.contains("gpt2") && stats.contains(dir + "/tok"))
    }

    @Test func helpListsTheCommands() throws {
        let help = String(decoding: try Self.run(["--help"]).out, as: UTF8.self)
        for command in ["tokenize", "detokenize", "train-tokenizer", "demo", "bench"] { #expect(help.contains(command)) }
    }
}

@Suite struct ModelCommands {
    static let tiny = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/gpt2-tiny").path
    static let reference: [String: Any] = {
        let url = URL(fileURLWithPath: tiny + "-reference.json")
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    @Test func generateJSONGivesTransformersGreedyIds() throws {
        let prompt = (Self.reference["greedy_prompt"] as! [Int]).map(String.init).joined(separator: " ")
        let want = (Self.reference["greedy_ids"] as! [Int]).map(String.init).joined(separator: ", ")
        let r = try CommandLine.run(["generate", "--model", Self.tiny, "--ids", prompt, "--temperature", "0", "--max-new-tokens", "16", "--json"])
        #expect(r.status == 0)
        #expect(String(decoding: r.out, as: UTF8.self) == "{\"ids\": [\(want)]}\n")
    }

    @Test func logitsJSONMatchesTransformers() throws {
        let ids = (Self.reference["ids"] as! [Int])
        let r = try CommandLine.run(["logits", "--model", Self.tiny, "--ids", ids.map(String.init).joined(separator: " "), "--json"])
        let out = try JSONSerialization.jsonObject(with: r.out) as! [String: Any]
        let logits = (out["logits"] as! [[Double]]).flatMap { $0 }, want = (Self.reference["logits"] as! [[Double]]).flatMap { $0 }
        #expect(logits.count == want.count)
        #expect(zip(logits, want).map { abs($0 - $1) }.max()! <= 1e-4)
        #expect(abs((out["loss"] as! Double) - (Self.reference["loss"] as! Double)) <= 1e-5)
    }

    @Test func inspectPrintsTheParameterTable() throws {
        let out = String(decoding: try CommandLine.run(["inspect", "--config", "gpt2"]).out, as: UTF8.self)
        #expect(out.contains("layers.11.attention.q.weight") && out.contains("layers.11.mlp.up.weight") && out.contains("(3072, 768)"))
        #expect(out.contains("total 124,439,808 parameters"))
        let bad = try CommandLine.run(["logits", "--model", Self.tiny, "--ids", "1 300"])
        #expect(bad.status == 1 && bad.err.contains("id 300 at position 1 is outside the model's vocabulary (0..<300)"))
    }
}

@Suite struct TrainingCommands {
    /// prepare → train → generate → export → logits on the export, end to end on a small text.
    @Test func trainGenerateExport() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("train-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir + "/docs", withIntermediateDirectories: true)
        let words = ["alpha", "beta", "gamma", "delta", "the", "and", "of", "model", "learns", "text"]
        for f in 0..<3 {
            let text = (0..<400).map { words[($0 * (f + 3) + $0 / 7) % words.count] }.joined(separator: " ")
            try Data(text.utf8).write(to: URL(fileURLWithPath: "\(dir)/docs/\(f).txt"))
        }
        try Data("{\"text\": \"a json document\"}\n{\"text\": \"a json document\"}\n".utf8).write(to: URL(fileURLWithPath: dir + "/docs/x.jsonl"))
        let prep = try CommandLine.run(["prepare", "--input", dir + "/docs", "--tokenizer", "gpt2", "--out", dir + "/data.tok"])
        #expect(prep.status == 0)
        #expect(String(decoding: prep.out, as: UTF8.self).contains("5 document(s), 1 exact duplicate(s) dropped"))
        let train = try CommandLine.run(["train", "--data", dir + "/docs", "--tokenizer", "train", "--vocab-size", "300", "--config", "mini",
                                         "--context", "32", "--batch", "4", "--steps", "6", "--eval-every", "3", "--out", dir + "/run"])
        #expect(train.status == 0, "\(train.err)")
        for f in ["checkpoint/model.safetensors", "checkpoint/optimizer.safetensors", "checkpoint/state.json", "log.jsonl", "loss.svg"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/run/" + f), "\(f)")
        }
        let log = try String(contentsOfFile: dir + "/run/log.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(log.count == 6 && log[2].contains("val_loss"))
        let resumed = try CommandLine.run(["train", "--resume", dir + "/run", "--steps", "8"])
        #expect(resumed.status == 0 && String(decoding: resumed.out, as: UTF8.self).contains("resuming"))
        #expect(try String(contentsOfFile: dir + "/run/log.jsonl", encoding: .utf8).split(separator: "\n").count == 8)
        let gen = try CommandLine.run(["generate", "--model", dir + "/run", "--prompt", "alpha", "--max-new-tokens", "5", "--json"])
        #expect(gen.status == 0 && String(decoding: gen.out, as: UTF8.self).hasPrefix("{\"ids\": ["))
        let export = try CommandLine.run(["export", "--model", dir + "/run", "--format", "hf", "--output", dir + "/hf"])
        #expect(export.status == 0)
        let a = try CommandLine.run(["logits", "--model", dir + "/hf", "--ids", "1 2 3", "--json"])
        let b = try CommandLine.run(["logits", "--model", dir + "/run", "--ids", "1 2 3", "--json"])
        #expect(a.status == 0 && a.out == b.out)
    }
}

@Suite struct LlamaTraining {
    static func losses(_ run: String) throws -> [Double] {
        try String(contentsOfFile: run + "/log.jsonl", encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["loss"] as! Double
        }
    }

    /// `llm train --arch llama` lowers the loss, and a run stopped and resumed logs exactly the
    /// losses of one that never stopped; the run then generates and exports as an HF Llama folder.
    @Test func trainResumeGenerateExport() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(String(repeating: "the cat sat on the mat. the dog sat on the log. ", count: 60).utf8).write(to: URL(fileURLWithPath: dir + "/t.txt"))
        let common = ["--arch", "llama", "--kv-heads", "2", "--data", dir + "/t.txt", "--tokenizer", "char", "--config", "mini", "--context", "16",
                      "--batch", "4", "--lr", "3e-3", "--warmup", "2", "--eval-every", "10"]
        let straight = try CommandLine.run(["train"] + common + ["--steps", "20", "--out", dir + "/straight"])
        #expect(straight.status == 0, "\(straight.err)")
        #expect(String(decoding: straight.out, as: UTF8.self).contains("Llama, 2 layers, 128 wide, 4 heads / 2 kv"))
        let straightLosses = try Self.losses(dir + "/straight")
        #expect(straightLosses.count == 20 && straightLosses.suffix(3).reduce(0, +) < straightLosses.prefix(3).reduce(0, +) - 1)
        let runA = dir + "/a"
        let cut = try CommandLine.run(["train"] + common + ["--steps", "20", "--stop-after", "7", "--out", runA])
        #expect(cut.status == 0 && String(decoding: cut.out, as: UTF8.self).contains("stopped at step 7 of 20"))
        let resumed = try CommandLine.run(["train", "--resume", runA])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(try Self.losses(runA) == straightLosses)
        let gen = try CommandLine.run(["generate", "--model", runA, "--prompt", "the c", "--max-new-tokens", "8", "--temperature", "0"])
        #expect(gen.status == 0, "\(gen.err)")
        let export = try CommandLine.run(["export", "--model", runA, "--format", "hf", "--output", dir + "/hf"])
        #expect(export.status == 0 && String(decoding: export.out, as: UTF8.self).contains("LlamaForCausalLM"), "\(export.err)")
        let a = try CommandLine.run(["logits", "--model", dir + "/hf", "--ids", "1 2 3", "--json"])
        let b = try CommandLine.run(["logits", "--model", runA, "--ids", "1 2 3", "--json"])
        #expect(a.status == 0 && a.out == b.out)
        for (args, message) in [(["--arch", "bert"], "--arch must be gpt or llama, got bert"),
                                (["--arch", "llama", "--kv-heads", "3"], "--kv-heads 3: the head count 4 must be a multiple of it"),
                                (["--kv-heads", "2"], "--kv-heads is for --arch llama")] {
            let bad = try CommandLine.run(["train", "--data", dir + "/t.txt", "--tokenizer", "char", "--config", "mini", "--steps", "1", "--out", dir + "/bad"] + args)
            #expect(bad.status == 1 && bad.err.contains(message), "\(args): \(bad.err)")
        }
    }
}

@Suite struct CharacterLevelTraining {
    @Test func trainAndGenerateWithCharacters() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("char-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(String(repeating: "hello world, hello model. ", count: 80).utf8).write(to: URL(fileURLWithPath: dir + "/t.txt"))
        let r = try CommandLine.run(["train", "--data", dir + "/t.txt", "--tokenizer", "char", "--config", "mini", "--context", "16",
                                     "--batch", "4", "--steps", "4", "--eval-every", "2", "--out", dir + "/run"])
        #expect(r.status == 0, "\(r.err)")
        #expect(String(decoding: r.out, as: UTF8.self).contains("character-level tokenizer: 12 ids (11 characters + unknown)"))
        let g = try CommandLine.run(["generate", "--model", dir + "/run", "--prompt", "hello", "--max-new-tokens", "10", "--seed", "1"])
        #expect(g.status == 0)
        let text = String(decoding: g.out, as: UTF8.self)
        #expect(text.unicodeScalars.allSatisfy { "helo wrd,m.\n".unicodeScalars.contains($0) }, "\(text.debugDescription)")
    }
}
