import Foundation
import Testing

/// `llm quantize` as a user runs it: a model folder to a quantized GGUF that `llm` then runs, and
/// one-line errors for bad options that leave no file behind.
@Suite struct QuantizeCommand {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let llama = repo.appendingPathComponent("Tests/Fixtures/llama-tiny").path

    static func folder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("quantize-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func quantizedFileRunsAndRequantizes() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try CommandLine.run(["quantize", "--model", Self.llama, "--type", "q4_k_m", "--output", dir + "/tiny.gguf"])
        let out = String(decoding: q.out, as: UTF8.self)
        #expect(q.status == 0, "\(q.err)")
        #expect(out.contains("blk.0.attn_v.weight") && out.contains("wrote \(dir)/tiny.gguf") && out.contains("bits per weight"), "\(out)")
        let g = try CommandLine.run(["generate", "--model", dir + "/tiny.gguf", "--prompt", "Hello", "--max-new-tokens", "4", "--temperature", "0"])
        #expect(g.status == 0, "\(g.err)")
        // A GGUF file requantized: q8_0 everywhere.
        let r = try CommandLine.run(["quantize", "--model", dir + "/tiny.gguf", "--type", "q8_0", "--output", dir + "/tiny-q8.gguf"])
        #expect(r.status == 0 && String(decoding: r.out, as: UTF8.self).contains("Q8_0"), "\(r.err)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["tiny-q8.gguf", "tiny.gguf"])
    }

    /// GPTQ and AWQ from the command line: calibration text in, a file whose projections are the
    /// method's blocks out, which runs.
    @Test(arguments: ["gptq", "awq"])
    func calibratedFromText(_ method: String) throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. 12345 tokens of calibration text.\n", count: 40)
        try text.write(toFile: dir + "/calib.txt", atomically: true, encoding: .utf8)
        let r = try CommandLine.run(["quantize", "--model", Self.llama, "--type", "q4_0", "--method", method, "--calibration", dir + "/calib.txt",
                                     "--calibration-length", "64", "--output", dir + "/g.gguf"])
        let out = String(decoding: r.out, as: UTF8.self)
        let tag = method.uppercased()
        #expect(r.status == 0 && out.contains("\(tag) on") && out.contains("[\(tag) layer 2/2]") && out.contains("wrote"), "\(r.err)\n\(out)")
        if method == "awq" { #expect(out.contains(": attention ") && out.contains(", down "), "\(out)") }
        let g = try CommandLine.run(["generate", "--model", dir + "/g.gguf", "--prompt", "Hello", "--max-new-tokens", "3", "--temperature", "0"])
        #expect(g.status == 0, "\(g.err)")
    }

    /// `llm perplexity --kl-base`: zero against itself, more at 4 bits than at 8, and errors for a
    /// missing base or one with another vocabulary.
    @Test func klDivergenceFromTheBase() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. Some more words to score here.\n", count: 30)
        try text.write(toFile: dir + "/t.txt", atomically: true, encoding: .utf8)
        func kl(_ model: String) throws -> [String: Any] {
            let r = try CommandLine.run(["perplexity", "--model", model, "--kl-base", Self.llama, "--file", dir + "/t.txt", "--context", "64", "--json"])
            #expect(r.status == 0, "\(r.err)")
            return try JSONSerialization.jsonObject(with: r.out) as! [String: Any]
        }
        for t in ["q8_0", "q4_0"] {
            let q = try CommandLine.run(["quantize", "--model", Self.llama, "--type", t, "--output", dir + "/\(t).gguf"])
            #expect(q.status == 0, "\(q.err)")
        }
        let same = try kl(Self.llama), q8 = try kl(dir + "/q8_0.gguf"), q4 = try kl(dir + "/q4_0.gguf")
        #expect(Set(same.keys) == ["perplexity", "nll", "chunks", "scored", "context", "tokens", "kl_divergence", "same_top", "base_perplexity"])
        #expect(abs(same["kl_divergence"] as! Double) < 1e-9 && same["same_top"] as! Double == 1, "\(same)")
        let (k8, k4) = (q8["kl_divergence"] as! Double, q4["kl_divergence"] as! Double)
        #expect(k8 > 0 && k4 > k8, "KL q8_0 \(k8), q4_0 \(k4)")
        let missing = try CommandLine.run(["perplexity", "--model", Self.llama, "--kl-base", dir + "/none", "--file", dir + "/t.txt", "--context", "64"])
        #expect(missing.status == 1 && missing.err.hasPrefix("error: --kl-base"), "\(missing.err)")
        let gpt = Self.repo.appendingPathComponent("Tests/Fixtures/gpt2-tiny").path
        let other = try CommandLine.run(["perplexity", "--model", Self.llama, "--kl-base", gpt, "--file", dir + "/t.txt", "--context", "64"])
        #expect(other.status == 1 && other.err.hasPrefix("error: --kl-base") && other.err.contains("vocabulary"), "\(other.err)")
    }

    @Test func badOptionsAreOneLineErrors() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [([String], String)] = [
            (["--type", "q9_0", "--output", dir + "/a.gguf"], "--type q9_0"),
            (["--type", "q4_0", "--output-type", "q4_k_m", "--output", dir + "/a.gguf"], "--output-type q4_k_m"),
            (["--type", "q4_0", "--method", "gptq9", "--output", dir + "/a.gguf"], "--method gptq9"),
            (["--type", "q4_0", "--method", "gptq", "--output", dir + "/a.gguf"], "--calibration"),
            (["--type", "q4_0", "--method", "gptq", "--calibration", dir + "/none.txt", "--output", dir + "/a.gguf"], "--calibration"),
            (["--type", "q4_0", "--method", "awq", "--output", dir + "/a.gguf"], "--method awq needs --calibration"),
            (["--type", "q4_0", "--calibration", dir, "--output", dir + "/a.gguf"], "only used by --method gptq and awq"),
            (["--type", "q4_0", "--calibration-tokens", "0", "--output", dir + "/a.gguf"], "--calibration-tokens"),
            (["--type", "q4_0", "--output", dir + "/missing/a.gguf"], "does not exist"),
            (["--type", "q4_0", "--output", dir + "/a.bin"], "must end in .gguf"),
            (["--type", "q4_0", "--output", dir], "--output"),
        ]
        for (args, needle) in cases {
            let r = try CommandLine.run(["quantize", "--model", Self.llama] + args)
            #expect(r.status == 1 && r.err.hasPrefix("error: ") && r.err.contains(needle), "\(args): \(r.err)")
        }
        let missing = try CommandLine.run(["quantize", "--model", dir + "/nothing", "--type", "q4_0", "--output", dir + "/b.gguf"])
        #expect(missing.status == 1 && missing.err.hasPrefix("error: "), "\(missing.err)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
