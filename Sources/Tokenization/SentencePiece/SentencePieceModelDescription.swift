/// A SentencePiece tokenizer described as a `.model` file, so that a model folder can carry it
/// (`tokenizer.model`, as Hugging Face's Gemma and Llama 2 folders do).
///
/// - Read from a `.model`: the file as it was read (pieces, trainer and normalizer settings).
/// - Built from a GGUF vocabulary: the sentencepiece model that encodes as llama.cpp does: BPE,
///   byte fallback, the "identity" normalizer (no charsmap, no whitespace clean-up, spaces
///   written `▁`), a dummy prefix when the GGUF adds a space prefix, the pieces with their scores
///   and types. Three things are spelled back the way sentencepiece expects them:
///   - a user-defined piece's spaces become `▁` (llama.cpp's converter wrote them as spaces,
///     since it matches them before escaping spaces; sentencepiece matches after);
///   - the piece at the unknown id becomes the unknown piece when the GGUF typed it control
///     (sentencepiece's `unk_id()` is only ever an unknown piece), and decodes to nothing, as
///     llama.cpp decodes it;
///   - a score of -0 becomes +0 (llama.cpp ranks them equal, sentencepiece would not).
///
/// What sentencepiece cannot express stays llama.cpp's alone: merges into control, byte or
/// unused pieces (sentencepiece merges only into normal and user-defined ones and splits unused
/// ones again), with a space prefix the space llama.cpp puts again after every user-defined
/// piece (sentencepiece puts one in front of the text only), and a `▁` typed in the text
/// (sentencepiece takes it for a space, llama.cpp for itself).
extension SentencePieceTokenizer {
    /// The `.model` file that describes this tokenizer.
    public func modelFile() -> SentencePieceModelFile {
        if var file = fileSettings {
            file.pieces = vocabularyPieces
            return file
        }
        return ggufModelFile()
    }

    /// Writes `modelFile()` to `path` (a temporary file, then renamed). A vocabulary that
    /// sentencepiece could not load (an empty or repeated piece, missing byte pieces) is an
    /// error naming what is wrong, and nothing is written.
    public func save(modelFile path: String) throws(TokenizerError) {
        let file = modelFile()
        if fileSettings == nil {
            do { _ = try SentencePieceTokenizer(model: file) } catch let .invalidVocabulary(message) {
                throw .file(path: path, line: nil, message: "this vocabulary cannot be written as a SentencePiece model: \(message)")
            }
        }
        try file.write(to: path)
    }

    private func ggufModelFile() -> SentencePieceModelFile {
        var pieces = vocabularyPieces
        var texts = Set(pieces.map(\.text))
        for i in pieces.indices {
            if pieces[i].score == 0 { pieces[i].score = 0 }
            if pieces[i].type == .userDefined && pieces[i].text.contains(0x20) {
                let escaped = escapeSpaces(pieces[i].text)
                if texts.insert(escaped).inserted { pieces[i].text = escaped }
            }
        }
        if let unk, pieces[Int(unk)].type == .control, !pieces.contains(where: { $0.type == .unknown }) {
            pieces[Int(unk)].type = .unknown
        }

        var file = SentencePieceModelFile()
        file.modelType = .bpe
        file.byteFallback = true
        file.treatWhitespaceAsSuffix = false
        file.normalizer.name = "identity"
        file.normalizer.precompiledCharsmap = []
        file.normalizer.addDummyPrefix = addsSpacePrefix
        file.normalizer.removeExtraWhitespaces = false
        file.normalizer.escapeWhitespaces = true
        file.denormalizer = nil
        file.unkSurface = ""
        // An absent special token is named by an empty piece, which no piece is.
        func spelled(_ id: UInt32?) -> String { id.map { String(decoding: pieces[Int($0)].text, as: UTF8.self) } ?? "" }
        func number(_ id: UInt32?) -> Int32 { id.map { Int32($0) } ?? -1 }
        file.unkId = number(unk)
        file.bosId = number(bos)
        file.eosId = number(eos)
        file.padId = number(pad)
        file.unkPiece = spelled(unk)
        file.bosPiece = spelled(bos)
        file.eosPiece = spelled(eos)
        file.padPiece = spelled(pad)
        file.pieces = pieces
        return file
    }
}

/// Space (20) → `▁` (E2 96 81).
private func escapeSpaces(_ text: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(text.count + 8)
    for b in text {
        if b == 0x20 { out += [0xE2, 0x96, 0x81] } else { out.append(b) }
    }
    return out
}
