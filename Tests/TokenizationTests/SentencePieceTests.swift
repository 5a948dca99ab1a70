import Foundation
import Testing
import Tokenization

/// The `sentencepiece` library's own test models (fetched by scripts/fetch/sentencepiece-tests.sh)
/// against what the library gives on the same texts (Tests/Fixtures/sentencepiece.json, from
/// scripts/fixtures/make_sentencepiece_fixtures.py).
enum SentencePieceModels {
    static let folder = Paths.repo.appendingPathComponent(".cache/sentencepiece")

    static func path(_ file: String) throws -> String {
        let path = folder.appendingPathComponent(file).path
        try #require(FileManager.default.fileExists(atPath: path),
                     "missing \(path): run scripts/fetch/sentencepiece-tests.sh (make test does)")
        return path
    }

    static func load(_ file: String) throws -> SentencePieceTokenizer { try SentencePieceTokenizer(path: path(file)) }

    /// A model of the fixture: fetched, or (the tiny trained ones) carried in it as base64.
    static func load(_ model: [String: Any]) throws -> SentencePieceTokenizer {
        guard let base64 = model["model_base64"] as? String else { return try load(model["file"] as! String) }
        let bytes = [UInt8](try #require(Data(base64Encoded: base64)))
        return try SentencePieceTokenizer(model: SentencePieceModelFile(bytes: bytes))
    }

    static var fixture: [[String: Any]] { get throws { try loadJSON("sentencepiece.json")["models"] as! [[String: Any]] } }
}

@Suite struct SentencePieceParity {
    /// Ids, pieces and decoded text equal sentencepiece's for every text of the torture list
    /// (whitespace runs, NFC/NFD accents, full-width forms, CJK, emoji, control characters,
    /// unknown characters, mixed scripts, the empty string), seeded random strings and a page of
    /// botchan.txt, with each of the library's three test models (BPE and two Unigram) and three
    /// tiny trained ones (byte fallback, user-defined and control pieces, whitespace options).
    @Test(arguments: ["botchan_en_bpe_1000.model", "botchan_en_unigram_1000.model", "kyoto_ja_unigram_8000.model",
                      "trained_bpe_keep_whitespace", "trained_unigram_no_dummy_prefix", "trained_bpe_whitespace_suffix"])
    func encodeAndDecodeEqualSentencePiece(_ file: String) throws {
        let model = try #require(try SentencePieceModels.fixture.first { $0["file"] as? String == file })
        let tok = try SentencePieceModels.load(model)
        #expect(tok.vocabularySize == model["vocab_size"] as! Int)
        #expect(tok.algorithm == (model["model_type"] as! String == "bpe" ? .bpe : .unigram))
        func id(_ key: String) -> UInt32? { (model[key] as! Int) < 0 ? nil : UInt32(model[key] as! Int) }
        #expect(tok.bos == id("bos") && tok.eos == id("eos") && tok.unk == id("unk") && tok.pad == id("pad"))
        let cases = model["cases"] as! [[String: Any]]
        #expect(cases.count > 80)
        for c in cases {
            let text = c["text"] as! String
            let want = (c["ids"] as! [Int]).map(UInt32.init)
            #expect(tok.encodeOrdinary(text) == want, "\(file) ids of \(text.debugDescription)")
            #expect(tok.encodeAsPieces(text) == c["pieces"] as! [String], "\(file) pieces of \(text.debugDescription)")
            #expect(try tok.decode(want) == c["decoded"] as! String, "\(file) decode of \(text.debugDescription)")
        }
        for c in model["decode_cases"] as! [[String: Any]] {
            let ids = (c["ids"] as! [Int]).map(UInt32.init)
            #expect(try tok.decode(ids) == c["decoded"] as! String, "\(file) decode of \(ids)")
        }
    }

    @Test func controlTextIsTextUnlessAllowed() throws {
        let tok = try SentencePieceModels.load("botchan_en_unigram_1000.model")
        let hello = tok.encodeOrdinary("hello")
        #expect(try tok.encode("<s>hello</s>", allowedSpecial: .all) == [1] + hello + [2])
        #expect(throws: TokenizerError.disallowedSpecial(token: "</s>", offset: 5)) { try tok.encode("hello</s>") }
        #expect(try tok.encode("<s>x", disallowedSpecial: .none) == tok.encodeOrdinary("<s>x"))
        #expect(!tok.encodeOrdinary("<s>").contains(1))
        #expect(tok.specialTokens.map(\.text) == ["<unk>", "<s>", "</s>"] && tok.specialTokenId("</s>") == 2)
        #expect(try tok.decode([1] + hello + [2]) == "hello")
        #expect(tok.tokenBytes(1) == [] && tok.piece(1) == "<s>")
    }

    @Test func loadTextTokenizerReadsModelFiles() throws {
        let tok = try loadTextTokenizer(path: SentencePieceModels.path("botchan_en_bpe_1000.model"))
        #expect(tok is SentencePieceTokenizer)
        #expect(try tok.decode(tok.encodeOrdinary("Hello world")) == "Hello world")
    }
}

@Suite struct SentencePieceCorruptFiles {
    static func parse(_ bytes: [UInt8]) throws {
        let model = try SentencePieceModelFile(bytes: bytes)
        let tok = try SentencePieceTokenizer(model: model)
        _ = try tok.decode(tok.encodeOrdinary("Hello wörld, 日本語 😀  x"))
    }

    @Test func truncatedModelIsAnErrorNamingTheOffset() throws {
        let bytes = [UInt8](try #require(FileManager.default.contents(atPath: SentencePieceModels.path("botchan_en_bpe_1000.model"))))
        // Inside the first piece's message: a length runs past the end.
        #expect(throws: ProtoError.self) { try SentencePieceModelFile(bytes: Array(bytes[..<5])) }
        #expect(throws: ProtoError.invalid("not a valid SentencePiece model: no pieces")) { try SentencePieceModelFile(bytes: []) }
        // Every cut is an error or a smaller valid model, never a crash.
        var errors = 0
        for cut in stride(from: 1, to: bytes.count, by: 997) {
            do { try Self.parse(Array(bytes[..<cut])) } catch { errors += 1 }
        }
        #expect(errors > 200)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("truncated-\(getpid()).model").path
        try Data(bytes[..<1234]).write(to: URL(fileURLWithPath: tmp))
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let error = #expect(throws: TokenizerError.self) { try SentencePieceTokenizer(path: tmp) }
        if case let .file(path, _, message)? = error {
            #expect(path == tmp && message.contains("at byte"), "\(message)")
        } else {
            Issue.record("expected a file error, got \(String(describing: error))")
        }
    }

    /// Random bytes flipped all over the file (the charsmap's trie included): an error or a model
    /// that encodes without crashing.
    @Test(arguments: ["botchan_en_bpe_1000.model", "kyoto_ja_unigram_8000.model"])
    func flippedBytesNeverCrash(_ file: String) throws {
        let bytes = [UInt8](try #require(FileManager.default.contents(atPath: SentencePieceModels.path(file))))
        var state: UInt64 = 0x5EED
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        for _ in 0..<150 {
            var b = bytes
            for _ in 0..<8 { b[next() % b.count] = UInt8(next() & 0xFF) }
            _ = try? Self.parse(b)
        }
        #expect(throws: (any Error).self) { try Self.parse([0xFF, 0xFF, 0xFF]) }
        #expect(throws: (any Error).self) { try Self.parse([0x0A, 0x7F, 0x01]) }
    }

    @Test func badCharsmapIsAnError() throws {
        var model = SentencePieceModelFile()
        model.pieces = [.init(text: Array("<unk>".utf8), score: 0, type: .unknown), .init(text: Array("a".utf8), score: -1, type: .normal)]
        model.normalizer.precompiledCharsmap = [8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]
        #expect(throws: TokenizerError.invalidVocabulary("precompiled_charsmap: the trie size 8 is not a multiple of 1024")) {
            try SentencePieceTokenizer(model: model)
        }
        model.normalizer.precompiledCharsmap = []
        let tok = try SentencePieceTokenizer(model: model)
        // "▁a▁b": ▁ is unknown, a is a piece, and the unknown ▁ and b merge into one unknown piece.
        #expect(tok.encodeOrdinary("a b") == [0, 1, 0] && tok.encodeAsPieces("a b") == ["▁", "a", "▁b"])
        #expect(try tok.decode([0, 1, 0]) == " ⁇ a ⁇ ")
    }
}

/// A tiny GGUF-style vocabulary ("llama" type) run the way llama.cpp's SPM tokenizer runs it.
@Suite struct SentencePieceFromGGUF {
    static let normal: [(String, Float)] = [
        ("▁", -1), ("h", -2), ("e", -2), ("l", -2), ("o", -2), ("w", -2), ("r", -2), ("d", -2),
        ("ll", -3), ("llo", -4), ("▁h", -5), ("▁he", -6), ("▁hello", -7), ("or", -8), ("▁w", -9),
        ("▁wor", -10), ("ld", -11), ("▁world", -12), ("he", -20),
    ]

    /// 0 <unk>, 1 <bos>, 2 <eos>, 3 <start_of_turn>, 4 "\n" (user-defined), 5...260 <0x00>...<0xFF>, then the normal pieces.
    static func vocab(addSpacePrefix: Bool) throws -> SentencePieceTokenizer {
        var tokens = ["<unk>", "<bos>", "<eos>", "<start_of_turn>", "\n"], types: [Int32] = [2, 3, 3, 3, 4], scores: [Float] = [0, 0, 0, 0, 0]
        for b in 0..<256 { tokens.append(String(format: "<0x%02X>", b)); types.append(6); scores.append(0) }
        for (t, s) in normal { tokens.append(t); types.append(1); scores.append(s) }
        return try SentencePieceTokenizer.fromGGUF(tokens: tokens, scores: scores, tokenTypes: types, bos: 1, eos: 2, unk: 0,
                                                   addSpacePrefix: addSpacePrefix, addBOS: true)
    }

    static func id(_ piece: String) -> UInt32 { UInt32(261 + normal.firstIndex { $0.0 == piece }!) }
    static func byte(_ b: UInt8) -> UInt32 { 5 + UInt32(b) }

    @Test func mergesByScoreWithOrWithoutSpacePrefix() throws {
        let with = try Self.vocab(addSpacePrefix: true), without = try Self.vocab(addSpacePrefix: false)
        #expect(with.encodeOrdinary("hello world") == [Self.id("▁hello"), Self.id("▁world")])
        // No prefix: ll, then llo, merge before "he" (the lowest score), which joins h and e last.
        #expect(without.encodeOrdinary("hello world") == [Self.id("he"), Self.id("llo"), Self.id("▁world")])
        #expect(try with.decode(with.encodeOrdinary("hello world")) == "hello world")
        #expect(try without.decode(without.encodeOrdinary(" hello")) == " hello")
        #expect(with.bos == 1 && with.eos == 2 && with.unk == 0 && with.addBOS && with.algorithm == .llamaSPM)
    }

    @Test func unknownCharactersFallBackToBytes() throws {
        let tok = try Self.vocab(addSpacePrefix: false)
        #expect(tok.encodeOrdinary("hé") == [Self.id("h"), Self.byte(0xC3), Self.byte(0xA9)])
        #expect(tok.encodeOrdinary("😀") == [0xF0, 0x9F, 0x98, 0x80].map(Self.byte))
        #expect(try tok.decode(tok.encodeOrdinary("hé 😀")) == "hé 😀")
        #expect(tok.tokenBytes(Self.byte(0xC3)) == [0xC3] && tok.tokenBytes(1) == [] && tok.tokenBytes(Self.id("▁h")) == [0x20, 0x68])
    }

    @Test func controlTokensOnlyWhenAllowedUserDefinedAlways() throws {
        let tok = try Self.vocab(addSpacePrefix: true)
        let hello = Self.id("▁hello")
        // Allowed: the control token's id, and the text after it gets the space prefix again.
        #expect(try tok.encode("<start_of_turn>hello", allowedSpecial: .all) == [3, hello])
        #expect(throws: TokenizerError.disallowedSpecial(token: "<start_of_turn>", offset: 5)) { try tok.encode("hello<start_of_turn>") }
        // Ordinary: the control token's text is characters ('<' and '_' are bytes here).
        let ordinary = tok.encodeOrdinary("<start_of_turn>")
        #expect(!ordinary.contains(3) && ordinary.first == Self.id("▁") && ordinary[1] == Self.byte(0x3C))
        // User-defined "\n" is cut out in both, as llama.cpp does.
        #expect(tok.encodeOrdinary("hello\nhello") == [hello, 4, hello])
        #expect(try tok.encode("hello\nhello", allowedSpecial: .all) == [hello, 4, hello])
        // llama.cpp drops the space prefix of the first token only (here a control token: nothing to drop).
        #expect(try tok.decode([3, hello, 4, hello, 2]) == " hello\n hello")
        #expect(try tok.decode([hello, 4, hello, 2]) == "hello\n hello")
        #expect(tok.specialTokens.map(\.id) == [0, 1, 2, 3])
    }

    @Test func mismatchedArraysAreErrors() throws {
        #expect(throws: TokenizerError.self) {
            try SentencePieceTokenizer.fromGGUF(tokens: ["a", "b"], scores: [0], tokenTypes: nil, bos: nil, eos: nil, unk: nil, addSpacePrefix: false)
        }
        #expect(throws: TokenizerError.self) {
            try SentencePieceTokenizer.fromGGUF(tokens: ["a"], scores: nil, tokenTypes: [9], bos: nil, eos: nil, unk: nil, addSpacePrefix: false)
        }
        #expect(throws: TokenizerError.self) {
            try SentencePieceTokenizer.fromGGUF(tokens: ["a"], scores: nil, tokenTypes: nil, bos: 5, eos: nil, unk: nil, addSpacePrefix: false)
        }
    }
}
