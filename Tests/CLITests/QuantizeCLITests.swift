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

    /// GPTQ from the command line: calibration text in, a file whose projections are GPTQ's blocks out.
    @Test func gptqFromCalibrationText() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. 12345 tokens of calibration text.\n", count: 40)
        try text.write(toFile: dir + "/calib.txt", atomically: true, encoding: .utf8)
        let r = try CommandLine.run(["quantize", "--model", Self.llama, "--type", "q4_0", "--method", "gptq", "--calibration", dir + "/calib.txt",
                                     "--calibration-length", "64", "--output", dir + "/g.gguf"])
        let out = String(decoding: r.out, as: UTF8.self)
        #expect(r.status == 0 && out.contains("GPTQ on") && out.contains("[GPTQ layer 2/2]") && out.contains("wrote"), "\(r.err)\n\(out)")
        let g = try CommandLine.run(["generate", "--model", dir + "/g.gguf", "--prompt", "Hello", "--max-new-tokens", "3", "--temperature", "0"])
        #expect(g.status == 0, "\(g.err)")
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
            (["--type", "q4_0", "--calibration", dir, "--output", dir + "/a.gguf"], "only used by --method gptq"),
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
