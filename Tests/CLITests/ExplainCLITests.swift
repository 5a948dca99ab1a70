import Foundation
import Testing

/// `llm explain` through the binary: the JSON numbers' shapes and the HTML report.
@Suite struct ExplainCommandLine {
    static let fixtures = OptionTable.fixtures

    static func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test(arguments: ["gpt2-tiny", "llama-tiny", "gemma3-tiny"])
    func jsonHasEveryNumberInItsShape(_ name: String) throws {
        let r = try CommandLine.run(["explain", "--model", Self.fixtures + "/" + name, "--ids", "5 17 200 3 9", "--continue", "3", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let j = try Self.json(r.out)
        let config = try Self.json(Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/" + name + "/config.json")))
        let layers = (config["n_layer"] ?? config["num_hidden_layers"]) as! Int
        let heads = (config["n_head"] ?? config["num_attention_heads"]) as! Int
        let width = (config["n_embd"] ?? config["hidden_size"]) as! Int
        let ids = try #require(j["ids"] as? [Int])
        let t = ids.count
        #expect(Array(ids.prefix(5)) == [5, 17, 200, 3, 9] && t <= 8 && j["prompt_tokens"] as? Int == 5)
        #expect((j["pieces"] as? [String])?.count == t)
        let attentions = try #require(j["attentions"] as? [[[[Double]]]])
        #expect(attentions.count == layers && attentions.allSatisfy { $0.count == heads && $0.allSatisfy { $0.count == t && $0.allSatisfy { $0.count == t } } })
        for row in attentions.joined().joined() { #expect(abs(row.reduce(0, +) - 1) < 1e-5) }
        let hidden = try #require(j["hidden_states"] as? [[[Double]]])
        #expect(hidden.count == layers + 1 && hidden.allSatisfy { $0.count == t && $0.allSatisfy { $0.count == width } })
        let lens = try #require(j["logit_lens"] as? [[[String: Double]]])
        #expect(lens.count == layers && lens.allSatisfy { $0.count == t && $0.allSatisfy { $0["id"] != nil && ($0["probability"] ?? -1) > 0 } })
        let surprise = try #require(j["surprise"] as? [Double])
        #expect(surprise.count == t - 1 && surprise.allSatisfy { $0 >= 0 })
        let top = try #require(j["top_predictions"] as? [[[String: Double]]])
        #expect(top.count == t && top.allSatisfy { $0.count == 5 && zip($0, $0.dropFirst()).allSatisfy { $0["probability"]! >= $1["probability"]! } })
        // Greedy: each generated token is the top prediction at the position before it.
        for i in 5..<t { #expect(Int(top[i - 1][0]["id"]!) == ids[i]) }
        let norms = try #require(j["norms"] as? [String: [[Double]]])
        #expect(norms["residual"]?.count == layers + 1 && norms["attention"]?.count == layers && norms["mlp"]?.count == layers)
    }

    @Test func reportIsOneSelfContainedPage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llm-explain-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/report.html"
        let r = try CommandLine.run(["explain", "--model", Self.fixtures + "/llama-tiny", "--prompt", "The cat sat on the mat </script>", "--output", out])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.hasPrefix("wrote \(out): ") && r.out.isEmpty)
        let page = try String(contentsOfFile: out, encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        // No network: no external scripts, styles, images or fonts.
        for banned in ["src=", "href=", "http://", "https://", "@import", "url("] { #expect(!page.contains(banned), "the page holds \(banned)") }
        // The prompt's own "</script>" cannot end the data block early.
        #expect(page.components(separatedBy: "</script>").count == 3)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["report.html"])   // no temporary file left
    }
}
