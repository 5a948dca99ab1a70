import Foundation
import Models
import Testing
import Tokenization

/// Gemma 3's GGUF vocabulary (262,144 pieces) written as a SentencePiece `.model`, the
/// `tokenizer.model` a merged Gemma folder carries: read back with our `.model` reader (which runs
/// it as the sentencepiece library does), it gives the ids of the GGUF tokenizer (which runs as
/// llama.cpp does) and of llama.cpp itself (the recorded fixture).
@Suite(.serialized) struct Gemma3TokenizerFile {
    static let path = Gemma3AgainstLlamaCpp.path

    static func load() throws -> (gguf: SentencePieceTokenizer, model: SentencePieceTokenizer, bos: UInt32) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError.file(path, "missing: run scripts/fetch/gemma3.sh (make test does)")
        }
        let vocab = try GGUFVocabulary(GGUFFile(path: path))
        let gguf = try #require(vocab.tokenizer as? SentencePieceTokenizer)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gemma3-\(getpid()).model").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try gguf.save(modelFile: out)
        // For checking the file with the sentencepiece library (scripts/fixtures/check_sentencepiece_writer.py).
        if let keep = ProcessInfo.processInfo.environment["LLM_GEMMA_MODEL_OUT"] { try gguf.save(modelFile: keep) }
        return (gguf, try SentencePieceTokenizer(path: out), UInt32(try #require(vocab.bos)))
    }

    static let varied = [
        "Café, déjà vu, naïve façade, Über-straße; NFD: café naïve Ångström",
        "東京都は日本の首都です。中文测试，한국어 테스트 ＡＢＣ１２３！\u{3000}（テスト）",
        "emoji: 😀👍🏽 👨\u{200D}👩\u{200D}👧 ❤️ 🇯🇵 𐍈𝄞 𪛖 \u{E000}",
        "runs:  two   three    four\t\ttabs\n\nnewlines\n\n\n\n\nfive \n \n mixed\r\n" + String(repeating: " ", count: 40) + "x",
        "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n",
        "<table><tr><td>1</td></tr></table> <b>bold</b> <0x41> <unused0> <mask> [multimodal] </s> <eos>",
        " leading space", "trailing space ", "", "   ", "\n", "a\u{01}b\u{07}c\u{1B}d\u{7F}e\u{00}f",
    ]

    @Test func writtenModelEncodesAsTheGGUFTokenizerAndLlamaCpp() throws {
        let (gguf, model, bos) = try Self.load()
        #expect(model.vocabularySize == 262_144 && model.algorithm == .bpe)
        #expect(model.bos == gguf.bos && model.eos == gguf.eos && model.unk == gguf.unk && model.pad == gguf.pad)
        #expect(model.specialTokenId("<start_of_turn>") == 105 && model.specialTokenId("<end_of_turn>") == 106)

        for text in Self.varied {
            let ids = gguf.encodeOrdinary(text)
            #expect(model.encodeOrdinary(text) == ids, "ids of \(text.debugDescription)")
            #expect(try model.encode(text, allowedSpecial: .all) == gguf.encode(text, allowedSpecial: .all), "special ids of \(text.debugDescription)")
            #expect(try model.decode(ids) == gguf.decode(ids), "decode of \(text.debugDescription)")
        }

        // llama.cpp's own ids for the fixture's texts (plain and with turn markers as special tokens).
        let fixture = Gemma3AgainstLlamaCpp.fixture
        for p in Gemma3AgainstLlamaCpp.prompts + (fixture["tokenize_only"] as! [[String: Any]]) {
            let text = p["text"] as! String, want = (p["ids"] as! [Int]).map(UInt32.init)
            let body = p["parse_special"] as! Bool ? try model.encode(text, allowedSpecial: .all) : model.encodeOrdinary(text)
            #expect((p["add_bos"] as! Bool ? [bos] : []) + body == want, "llama.cpp ids of \(text.debugDescription)")
        }
    }
}
