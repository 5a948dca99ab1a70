import Foundation
import Testing

/// The commands that work with a real GGUF model (SmolLM2-135M-Instruct Q4_1, fetched into
/// .cache by scripts/fetch/smollm2.sh, which `make test` runs first).
@Suite struct LlamaCommandLine {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let smol = repo.appendingPathComponent(".cache/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static func text(_ d: Data) -> String { String(decoding: d, as: UTF8.self) }
    static func requireModel() throws {
        guard FileManager.default.fileExists(atPath: smol) else {
            throw CLIFixtureMissing(message: "\(smol) is missing: run scripts/fetch/smollm2.sh (make test does)")
        }
    }

    @Test func inspectListsMetadataAndTensors() throws {
        try Self.requireModel()
        let r = try CommandLine.run(["inspect", "--model", Self.smol])
        let out = Self.text(r.out)
        #expect(r.status == 0, "\(r.err)")
        #expect(out.hasPrefix("GGUF v3: 33 metadata entries, 272 tensors"))
        #expect(out.contains("llama.block_count") && out.contains("tokenizer.ggml.pre"))
        #expect(out.range(of: #"token_embd\.weight\s+Q8_0\s+\(49152, 576\)\s+30,081,024"#, options: .regularExpression) != nil)
        #expect(out.range(of: #"blk\.0\.attn_q\.weight\s+Q4_1\s+\(576, 576\)\s+207,360"#, options: .regularExpression) != nil)
    }

    /// Exact answers are checked with --arithmetic float32: with llama.cpp's arithmetic (8-bit
    /// activations) a greedy answer can flip at a near-tie when float order changes, from one CPU
    /// to another (see SmolLM2Tests); Float32 on the dequantized weights is stable.
    @Test func generateWithChatAnswers() throws {
        try Self.requireModel()
        let r = try CommandLine.run(["generate", "--model", Self.smol, "--chat", "--prompt", "What is the capital of France?",
                                     "--temperature", "0", "--max-new-tokens", "30", "--arithmetic", "float32"])
        #expect(r.status == 0, "\(r.err)")
        #expect(Self.text(r.out) == "The capital of France is Paris.\n")
        #expect(r.err.contains("tok/s"))
        let ids = try CommandLine.run(["generate", "--model", Self.smol, "--chat", "--prompt", "What is the capital of France?",
                                       "--temperature", "0", "--max-new-tokens", "30", "--json", "--arithmetic", "float32"])
        let parsed = try JSONSerialization.jsonObject(with: ids.out) as! [String: [Int]]
        #expect(parsed["ids"] == [504, 3575, 282, 4649, 314, 7042, 30])     // the reply, without <|im_end|>
        // The default (llama.cpp's arithmetic) answers and reports its speed.
        let fast = try CommandLine.run(["generate", "--model", Self.smol, "--chat", "--prompt", "Name a color.", "--max-new-tokens", "20"])
        #expect(fast.status == 0 && !Self.text(fast.out).isEmpty && fast.err.contains("generation"), "\(fast.err)")
        let bad = try CommandLine.run(["generate", "--model", Self.smol, "--prompt", "x", "--arithmetic", "int3"])
        #expect(bad.status == 1 && bad.err == "error: --arithmetic int3: expected llama.cpp or float32\n")
    }

    @Test func chatKeepsHistoryResetsAndExits() throws {
        try Self.requireModel()
        let r = try CommandLine.run(["chat", "--model", Self.smol, "--temperature", "0", "--arithmetic", "float32"],
                                    stdin: "What is the capital of France?\nAnd of Germany?\n/reset\nAnd of Germany?\n/exit\nignored\n")
        #expect(r.status == 0, "\(r.err)")
        let lines = Self.text(r.out).split(separator: "\n").map(String.init)
        #expect(lines.count >= 3)
        #expect(lines.first == "The capital of France is Paris.")
        #expect(lines.count > 2 && lines[1] == "The capital of Germany is Berlin.")   // "And of Germany?" needs the first turn
        #expect(lines.count > 2 && lines[2] != lines[1])                              // after /reset it has no context
        #expect(r.err.components(separatedBy: "[prompt ").count - 1 == 3)  // one speed line per reply
        #expect(r.err.contains("(conversation cleared)") && r.err.contains("tok/s"))
    }

    @Test func logitsJSONForAGGUFModel() throws {
        try Self.requireModel()
        let r = try CommandLine.run(["logits", "--model", Self.smol, "--ids", "504 3458 282 4649 314", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let parsed = try JSONSerialization.jsonObject(with: r.out) as! [String: Any]
        let logits = parsed["logits"] as! [[Double]]
        #expect(logits.count == 5 && logits.allSatisfy { $0.count == 49152 })
        #expect((parsed["loss"] as! Double).isFinite)
    }

    /// `llm perplexity` agrees with llama-perplexity (same file, same context) within 1 %, and
    /// works for GPT models and Hugging Face Llama folders too.
    @Test func perplexityMatchesLlamaPerplexityAndRunsForEveryFormat() throws {
        let fixtures = Self.repo.appendingPathComponent("Tests/Fixtures")
        let text = fixtures.appendingPathComponent("perplexity.txt").path
        try Self.requireModel()
        let r = try CommandLine.run(["perplexity", "--model", Self.smol, "--file", text, "--context", "128", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let ours = try JSONSerialization.jsonObject(with: r.out) as! [String: Any]
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("smollm2-llamacpp.json"))) as! [String: Any]
        let run = ((fixture["perplexity"] as! [String: Any])["runs"] as! [[String: Any]]).first { $0["context"] as! Int == 128 }!
        let ppl = ours["perplexity"] as! Double, theirs = run["ppl"] as! Double
        #expect(abs(ppl / theirs - 1) <= 0.01, "ours \(ppl), llama-perplexity \(theirs)")
        #expect(ours["tokens"] as! Int == run["n_tokens"] as! Int && ours["scored"] as! Int == run["scored_tokens"] as! Int)
        // A GPT (a character-level model trained for a few steps on the text) and a Hugging Face Llama folder.
        let runFolder = FileManager.default.temporaryDirectory.appendingPathComponent("ppl-\(UUID())").path
        let trained = try CommandLine.run(["train", "--data", text, "--tokenizer", "char", "--config", "mini", "--context", "32",
                                           "--batch", "4", "--steps", "4", "--eval-every", "4", "--out", runFolder])
        #expect(trained.status == 0, "\(trained.err)")
        for folder in [runFolder, fixtures.appendingPathComponent("llama-tiny").path] {
            let m = try CommandLine.run(["perplexity", "--model", folder, "--file", text, "--context", "32", "--chunks", "2", "--json"])
            #expect(m.status == 0, "\(folder): \(m.err)")
            let p = (try JSONSerialization.jsonObject(with: m.out) as! [String: Any])["perplexity"] as! Double
            #expect(p.isFinite && p > 1, "\(folder): \(p)")
        }
        let short = try CommandLine.run(["perplexity", "--model", Self.smol, "--file", text, "--context", "4096"])
        #expect(short.status == 1 && short.err.contains("less than one chunk of 4096"), "\(short.err)")
        let info = try CommandLine.run(["inspect", "--model", fixtures.appendingPathComponent("llama-tiny").path])
        #expect(Self.text(info.out).hasPrefix("Llama: vocab 320") && Self.text(info.out).contains("total 106,816 parameters"), "\(Self.text(info.out))")
    }

    /// Gemma 3 270M Q4_K_M from the command line: chat in its turn format, and perplexity with BOS
    /// first (as llama-perplexity adds it) within 1 % of llama-perplexity's at context 128.
    @Test func gemma3ChatsAndScoresPerplexity() throws {
        let gemma = Self.repo.appendingPathComponent(".cache/gemma-3-270m-q4_k_m.gguf").path
        guard FileManager.default.fileExists(atPath: gemma) else { throw CLIFixtureMissing(message: "\(gemma) is missing: run scripts/fetch/gemma3.sh") }
        let r = try CommandLine.run(["generate", "--model", gemma, "--chat", "--prompt", "Name a color.", "--max-new-tokens", "12", "--temperature", "0"])
        #expect(r.status == 0 && !Self.text(r.out).isEmpty && r.err.contains("generation"), "\(r.err)")
        let fixtures = Self.repo.appendingPathComponent("Tests/Fixtures")
        let p = try CommandLine.run(["perplexity", "--model", gemma, "--file", fixtures.appendingPathComponent("perplexity.txt").path,
                                     "--context", "128", "--json"])
        #expect(p.status == 0, "\(p.err)")
        let ours = try JSONSerialization.jsonObject(with: p.out) as! [String: Any]
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("gemma3-llamacpp.json"))) as! [String: Any]
        let run = ((fixture["perplexity"] as! [String: Any])["runs"] as! [[String: Any]]).first { $0["context"] as! Int == 128 }!
        let theirs = run["ppl"] as! Double, ppl = ours["perplexity"] as! Double
        #expect(abs(ppl / theirs - 1) <= 0.01, "ours \(ppl), llama-perplexity \(theirs)")
        #expect(ours["tokens"] as! Int == run["n_tokens"] as! Int && ours["scored"] as! Int == run["scored_tokens"] as! Int)
    }

    @Test func badModelFilesAreOneLineErrors() throws {
        let missing = try CommandLine.run(["generate", "--model", "/no/such/model.gguf", "--prompt", "x"])
        #expect(missing.status == 1 && missing.err == "error: --model /no/such/model.gguf: no such file or folder\n")
        try Self.requireModel()
        // The first 100 KB of the real file: the header ends mid-vocabulary.
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID()).gguf").path
        let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: Self.smol)).read(upToCount: 100_000)!
        try head.write(to: URL(fileURLWithPath: cut))
        defer { try? FileManager.default.removeItem(atPath: cut) }
        let r = try CommandLine.run(["generate", "--model", cut, "--prompt", "x"])
        // The vocabulary array claims more strings than the 98,893 bytes left can hold.
        #expect(r.status == 1 && r.err.hasPrefix("error: \(cut): metadata tokenizer.ggml.tokens element count is 49152 at byte 1099"), "\(r.err)")
        #expect(r.err.split(separator: "\n").count == 1)
    }
}

struct CLIFixtureMissing: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
