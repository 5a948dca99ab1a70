import Foundation
import Testing
import Tokenization

enum Paths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repo.appendingPathComponent("Tests/Fixtures")
    static let gpt2Ranks = repo.appendingPathComponent(".cache/gpt2.tiktoken").path
}

/// GPT-2's tokenizer, loaded once (the ranks file is fetched by scripts/fetch/gpt2-tiktoken.sh,
/// which `make test` runs first).
enum GPT2 {
    static let tokenizer: Tokenizer? = try? Tokenizer.gpt2(ranksFile: Paths.gpt2Ranks)
    static func require() throws -> Tokenizer {
        try #require(tokenizer, "missing \(Paths.gpt2Ranks): run scripts/fetch/gpt2-tiktoken.sh (make test does)")
    }
}

func loadJSON(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: Paths.fixtures.appendingPathComponent(name))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}
