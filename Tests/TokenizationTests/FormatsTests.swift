import Foundation
import Testing
import Tokenization

@Suite struct Formats {
    /// Our loader reads a tokenizer.json that Hugging Face `tokenizers` trained and saved, and gives
    /// the ids HF gives (scripts/fixtures/make_hf_tokenizer_fixture.py).
    @Test func huggingFaceTokenizerJSONGivesHuggingFaceIds() throws {
        let dir = Paths.fixtures.appendingPathComponent("hf_bytelevel")
        let tok = try Tokenizer.load(path: dir.path)
        #expect(tok.vocabularySize == 400)
        let root = try loadJSON("hf_bytelevel/cases.json")
        for c in root["cases"] as! [[String: Any]] {
            let text = c["text"] as! String, ids = (c["ids"] as! [Int]).map(UInt32.init)
            #expect(try tok.encode(text, allowedSpecial: .all) == ids, "\(text.debugDescription)")
            #expect(try tok.decode(ids) == text)
        }
    }

    @Test func tiktokenFileErrorsNameTheLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID()).tiktoken").path
        try Data("IQ== 0\nIg== 1\nnot-base64!! 2\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: TokenizerError.file(path: path, line: 3, message: "expected 'base64-token rank'")) { try TiktokenFile.read(path) }
        try Data("IQ== 0\nIg== 5\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: TokenizerError.file(path: path, line: 2, message: "rank 5 where 1 was expected (ranks must run 0, 1, 2, …)")) { try TiktokenFile.read(path) }
    }

    @Test func characterLevelBaseline() throws {
        let char = CharTokenizer(training: "hello world")
        #expect(char.vocabularySize == 9)                         // " dehlorw" + unknown
        let ids = char.encode("hello, world")
        #expect(ids.count == 12 && ids[5] == CharTokenizer.unknownId)
        #expect(try char.decode(char.encode("world hello")) == "world hello")
        let data = try JSONEncoder().encode(char)
        #expect(try JSONDecoder().decode(CharTokenizer.self, from: data).encode("low") == char.encode("low"))
    }
}
