import Foundation
import Testing
import Tokenization

/// Writing SentencePiece `.model` files: what a tokenizer writes loads back as the same tokenizer.
@Suite struct SentencePieceWriterRoundTrip {
    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("spw-\(getpid())-\(name)").path
    }

    /// Each model of the fixture (the library's three test models and the tiny trained ones):
    /// saved, loaded back from the file, and run over the fixture's texts: the same ids, pieces
    /// and decoded text as sentencepiece gave, the same special ids, and a file whose settings
    /// are the ones read.
    @Test(arguments: ["botchan_en_bpe_1000.model", "botchan_en_unigram_1000.model", "kyoto_ja_unigram_8000.model",
                      "trained_bpe_keep_whitespace", "trained_unigram_no_dummy_prefix", "trained_bpe_whitespace_suffix"])
    func savedModelEncodesAsTheOriginal(_ file: String) throws {
        let model = try #require(try SentencePieceModels.fixture.first { $0["file"] as? String == file })
        let original = try SentencePieceModels.load(model)
        let path = Self.temporaryPath(file + ".model")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try original.save(modelFile: path)
        // For checking the files with the sentencepiece library by hand.
        if let keep = ProcessInfo.processInfo.environment["LLM_SPW_KEEP_DIR"] { try original.save(modelFile: keep + "/" + file + ".model") }
        let loaded = try SentencePieceTokenizer(path: path)

        #expect(loaded.vocabularySize == original.vocabularySize && loaded.algorithm == original.algorithm)
        #expect(loaded.bos == original.bos && loaded.eos == original.eos && loaded.unk == original.unk && loaded.pad == original.pad)
        for id in 0..<UInt32(original.vocabularySize) {
            guard loaded.piece(id) == original.piece(id), loaded.pieceType(id) == original.pieceType(id),
                  loaded.score(id)?.bitPattern == original.score(id)?.bitPattern else {
                Issue.record("\(file): piece \(id) \(original.piece(id) ?? "") came back as \(loaded.piece(id) ?? "")")
                break
            }
        }
        for c in model["cases"] as! [[String: Any]] {
            let text = c["text"] as! String
            let want = (c["ids"] as! [Int]).map(UInt32.init)
            #expect(loaded.encodeOrdinary(text) == want, "\(file) ids of \(text.debugDescription)")
            #expect(loaded.encodeAsPieces(text) == c["pieces"] as! [String], "\(file) pieces of \(text.debugDescription)")
            #expect(try loaded.decode(want) == c["decoded"] as! String, "\(file) decode of \(text.debugDescription)")
        }
        for c in model["decode_cases"] as! [[String: Any]] {
            let ids = (c["ids"] as! [Int]).map(UInt32.init)
            #expect(try loaded.decode(ids) == c["decoded"] as! String, "\(file) decode of \(ids)")
        }

        // The settings read back are the ones written: serializing again gives the same bytes.
        let written = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        #expect(try SentencePieceModelFile(bytes: written).serialized() == written)
        let settings = try SentencePieceModelFile(bytes: written)
        let source = original.modelFile()
        #expect(settings.normalizer.precompiledCharsmap == source.normalizer.precompiledCharsmap)
        #expect(settings.denormalizer?.precompiledCharsmap == source.denormalizer?.precompiledCharsmap)
        #expect(settings.modelType == source.modelType && settings.byteFallback == source.byteFallback)
        #expect(settings.unkSurface == source.unkSurface && settings.bosPiece == source.bosPiece && settings.padId == source.padId)
    }

    /// A fetched file, read and written again, holds the same pieces and settings: the only
    /// difference from the library's own bytes is the trainer fields we do not keep.
    @Test func rewrittenFileKeepsEveryFieldWeRead() throws {
        let path = try SentencePieceModels.path("kyoto_ja_unigram_8000.model")
        let read = try SentencePieceModelFile(path: path)
        let again = try SentencePieceModelFile(bytes: read.serialized())
        #expect(again.pieces.count == read.pieces.count)
        #expect(zip(again.pieces, read.pieces).allSatisfy { $0.text == $1.text && $0.score.bitPattern == $1.score.bitPattern && $0.type == $1.type })
        #expect(again.normalizer.name == read.normalizer.name && again.normalizer.addDummyPrefix == read.normalizer.addDummyPrefix)
        #expect(again.normalizer.removeExtraWhitespaces == read.normalizer.removeExtraWhitespaces)
        #expect(again.unkId == read.unkId && again.bosId == read.bosId && again.eosId == read.eosId && again.padId == read.padId)
        #expect(again.unkPiece == read.unkPiece && again.eosPiece == read.eosPiece)
    }

    /// Varint edge cases: negative ids take ten bytes and read back; long pieces need
    /// multi-byte lengths.
    @Test func negativeIdsAndLongPiecesRoundTrip() throws {
        var file = SentencePieceModelFile()
        let long = [UInt8](repeating: 0x61, count: 300)
        file.pieces = [.init(text: Array("<unk>".utf8), score: 0, type: .unknown), .init(text: long, score: -0.0, type: .normal),
                       .init(text: Array("b".utf8), score: -.greatestFiniteMagnitude, type: .userDefined)]
        file.bosId = -1
        file.eosId = Int32.min
        file.unkSurface = ""
        let back = try SentencePieceModelFile(bytes: file.serialized())
        #expect(back.bosId == -1 && back.eosId == Int32.min && back.unkSurface == "")
        #expect(back.pieces[1].text == long && back.pieces[1].score.bitPattern == (-0.0 as Float).bitPattern)
        #expect(back.pieces[2].type == .userDefined && back.pieces[2].score == -.greatestFiniteMagnitude)
    }

    @Test func unwritablePathIsAnErrorNamingIt() throws {
        let tok = try SentencePieceModels.load("botchan_en_bpe_1000.model")
        let path = "/nonexistent-folder-\(getpid())/tokenizer.model"
        let error = #expect(throws: TokenizerError.self) { try tok.save(modelFile: path) }
        if case let .file(p, _, message)? = error { #expect(p == path && message.contains("cannot write"), "\(message)") }
    }
}

/// A GGUF vocabulary written as a `.model`: loaded back (as sentencepiece runs it), it encodes as
/// the GGUF tokenizer (as llama.cpp runs it).
@Suite struct SentencePieceWriterFromGGUF {
    static let normal: [(String, Float)] = [
        ("▁", -1), ("h", -2), ("e", -2), ("l", -2), ("o", -2), ("w", -2), ("r", -2), ("d", -2), ("ö", -0.0),
        ("ll", -3), ("llo", -4), ("▁h", -5), ("▁he", -6), ("▁hello", -7), ("or", -8), ("▁w", -9),
        ("▁wor", -10), ("ld", -11), ("▁world", -12), ("he", -20), ("▁wö", -13),
    ]

    /// As llama.cpp's converter writes Gemma's: 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk> (all control),
    /// 4 <start_of_turn> (control), 5 "\n", 6 "  " and 7 "\n\n" (user-defined, spaces as spaces),
    /// 8 </s> (user-defined; llama.cpp makes it control), 9...264 <0x00>...<0xFF>, the normal pieces.
    static func vocab(addSpacePrefix: Bool) throws -> SentencePieceTokenizer {
        var tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "\n", "  ", "\n\n", "</s>"]
        var types: [Int32] = [3, 3, 3, 3, 3, 4, 4, 4, 4], scores = [Float](repeating: -1000, count: 9)
        for b in 0..<256 { tokens.append(String(format: "<0x%02X>", b)); types.append(6); scores.append(0) }
        for (t, s) in normal { tokens.append(t); types.append(1); scores.append(s) }
        return try SentencePieceTokenizer.fromGGUF(tokens: tokens, scores: scores, tokenTypes: types, bos: 2, eos: 1,
                                                   unk: 3, pad: 0, addSpacePrefix: addSpacePrefix, addBOS: true)
    }

    static func reloaded(_ tok: SentencePieceTokenizer) throws -> SentencePieceTokenizer {
        let path = SentencePieceWriterRoundTrip.temporaryPath("gguf-\(UInt32.random(in: 0...UInt32.max)).model")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try tok.save(modelFile: path)
        return try SentencePieceTokenizer(path: path)
    }

    static let texts = [
        "hello world", "hello  world", "hello   world", "hello\nhello", "hello\n\n\nworld", " hello", "  hello  ", "",
        "hé 😀 wörld", "wörld", "<start_of_turn>hello", "hello</s>", "\n", "x y\tz\r\n", "   ", "hello world ",
    ]

    /// Without a space prefix (Gemma): every text, ordinary or with special tokens allowed.
    @Test func sameIdsAsTheGGUFTokenizer() throws {
        let gguf = try Self.vocab(addSpacePrefix: false)
        let model = try Self.reloaded(gguf)
        #expect(model.algorithm == .bpe && model.vocabularySize == gguf.vocabularySize)
        #expect(model.bos == 2 && model.eos == 1 && model.unk == 3 && model.pad == 0)
        for text in Self.texts {
            let ids = gguf.encodeOrdinary(text)
            #expect(model.encodeOrdinary(text) == ids, "ids of \(text.debugDescription)")
            #expect(try model.encode(text, allowedSpecial: .all) == gguf.encode(text, allowedSpecial: .all), "special ids of \(text.debugDescription)")
            #expect(try model.decode(ids) == gguf.decode(ids), "decode of \(text.debugDescription)")
        }
        // The cases that matter are really exercised: user-defined pieces, bytes, merges.
        #expect(gguf.encodeOrdinary("hello  world") == [Self.id("he"), Self.id("llo"), 6, Self.id("w"), Self.id("or"), Self.id("ld")])
        #expect(gguf.encodeOrdinary("hé").contains(9 + 0xC3))
        #expect(try gguf.encode("<start_of_turn>hello\n\n", allowedSpecial: .all).first == 4)
        #expect(gguf.encodeOrdinary("\n\n\n").sorted() == [5, 7])
    }

    /// With a space prefix (Llama 2): the same ids wherever no user-defined piece cuts the text
    /// (llama.cpp adds the prefix again after each one; sentencepiece does not) or meets the
    /// added space (sentencepiece matches "▁▁" across it; llama.cpp matches before adding it).
    @Test func sameIdsWithASpacePrefix() throws {
        let gguf = try Self.vocab(addSpacePrefix: true)
        let model = try Self.reloaded(gguf)
        for text in ["hello world", "hé 😀 wörld", "", "world hello ", "<start_of_turn>hello world"] {
            #expect(model.encodeOrdinary(text) == gguf.encodeOrdinary(text), "ids of \(text.debugDescription)")
            #expect(try model.encode(text, allowedSpecial: .all) == gguf.encode(text, allowedSpecial: .all), "special ids of \(text.debugDescription)")
            let ids = gguf.encodeOrdinary(text)
            #expect(try model.decode(ids) == gguf.decode(ids), "decode of \(text.debugDescription)")
        }
        #expect(gguf.encodeOrdinary("hello world") == [Self.id("▁hello"), Self.id("▁world")])
    }

    /// What the file says: BPE, byte fallback, identity normalizer, spaces of user-defined pieces
    /// as ▁, the unknown id as the unknown piece, -0 as +0.
    @Test func describesTheGGUFVocabulary() throws {
        let file = try Self.vocab(addSpacePrefix: false).modelFile()
        #expect(file.modelType == .bpe && file.byteFallback && !file.treatWhitespaceAsSuffix)
        #expect(file.normalizer.name == "identity" && file.normalizer.precompiledCharsmap.isEmpty && !file.normalizer.addDummyPrefix)
        #expect(!file.normalizer.removeExtraWhitespaces && file.normalizer.escapeWhitespaces && file.denormalizer == nil)
        #expect(file.pieces[6].text == Array("▁▁".utf8) && file.pieces[6].type == .userDefined && file.pieces[5].text == [0x0A])
        #expect(file.pieces[3].type == .unknown && file.pieces[4].type == .control && file.pieces[8].type == .control)
        #expect(file.pieces[9].type == .byte && file.pieces[9 + 256].type == .normal)
        #expect(file.unkId == 3 && file.bosId == 2 && file.eosId == 1 && file.padId == 0)
        #expect(file.unkPiece == "<unk>" && file.bosPiece == "<bos>" && file.eosPiece == "<eos>" && file.padPiece == "<pad>")
        #expect(file.pieces.allSatisfy { $0.score != 0 || $0.score.sign == .plus })
        #expect(try Self.vocab(addSpacePrefix: true).modelFile().normalizer.addDummyPrefix)
    }

    /// A vocabulary sentencepiece could not load is an error naming the piece, and no file.
    @Test func repeatedPieceIsAnErrorAndNothingIsWritten() throws {
        var tokens = ["<unk>", "a", "a"]
        for b in 0..<256 { tokens.append(String(format: "<0x%02X>", b)) }
        let types: [Int32] = [2, 1, 1] + [Int32](repeating: 6, count: 256)
        let tok = try SentencePieceTokenizer.fromGGUF(tokens: tokens, scores: nil, tokenTypes: types, bos: nil, eos: nil, unk: 0, addSpacePrefix: false)
        let path = SentencePieceWriterRoundTrip.temporaryPath("repeated.model")
        let error = #expect(throws: TokenizerError.self) { try tok.save(modelFile: path) }
        if case let .file(p, _, message)? = error {
            #expect(p == path && message.contains("piece 2") && message.contains("already defined"), "\(message)")
        } else {
            Issue.record("expected a file error, got \(String(describing: error))")
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    static func id(_ piece: String) -> UInt32 { UInt32(265 + normal.firstIndex { $0.0 == piece }!) }
}
