import Foundation

/// A SentencePiece tokenizer: BPE or Unigram over `▁`-spelled pieces with scores, byte fallback
/// to `<0xNN>` pieces, and unknown, control and user-defined pieces. Two sources, two exact
/// behaviours:
///
/// - a `.model` file (`init(path:)`): encodes and decodes exactly as the `sentencepiece` library
///   (normalizer with its charsmap, BPE or Unigram, byte fallback, consecutive unknown characters
///   merged into one unknown piece);
/// - a GGUF vocabulary of type "llama" (`fromGGUF`): exactly as llama.cpp's SPM tokenizer (no
///   normalizer, spaces written `▁`, an optional space in front, score-ordered merges into any
///   token, bytes of unknown characters as `<0xNN>` tokens, user-defined tokens cut out first).
///
/// `specialTokens` are the control (and unknown) pieces: `encode(text, allowedSpecial:)` turns
/// their text into their id, and each stretch of text between them is encoded on its own (so a
/// dummy prefix / space prefix comes back after each one, as in llama.cpp). BOS is never added
/// by `encode`: callers prepend `bos` when `addBOS` says so.
public final class SentencePieceTokenizer: @unchecked Sendable {
    public enum Algorithm: Sendable { case unigram, bpe, llamaSPM }
    public typealias PieceType = SentencePieceModelFile.PieceType

    public let algorithm: Algorithm
    public let bos: UInt32?
    public let eos: UInt32?
    public let unk: UInt32?
    public let pad: UInt32?
    /// Whether the model expects BOS first (GGUF metadata; for a `.model` file, whenever it has a BOS piece).
    public let addBOS: Bool
    /// Control and unknown pieces, by id order.
    public let specialTokens: [(text: String, id: UInt32)]

    // The vocabulary.
    private let arena: [UInt8]
    private let offsets: [Int]
    private let types: [PieceType]
    private let scores: [Float]
    /// Piece id of each byte's `<0xNN>` piece (-1 when absent).
    private let byteIds: [Int32]
    /// For byte pieces, the byte they stand for.
    private let byteValue: [UInt8]
    private let specialIds: [String: UInt32]

    // Encoding.
    private let normalizer: SentencePieceNormalizer?
    private let bpe: ScoredBPE?
    private let unigram: UnigramViterbi?
    private let byteFallback: Bool
    private let addSpacePrefix: Bool
    /// Special and (GGUF) user-defined pieces, for cutting text before segmentation.
    private let specialTrie: PieceTrie?
    /// Whether user-defined tokens are cut out even from ordinary text (GGUF, as llama.cpp does).
    private let cutsUserDefined: Bool
    /// BPE may run word by word (and cache words) when no piece spans the start of a word: a `▁`
    /// after a character whose last byte is not marked here.
    private let wordSplit: [Bool]?
    private let scratch = ScratchPool()

    // Decoding.
    private let addDummyPrefix: Bool
    private let removeExtraWhitespaces: Bool
    private let unkSurface: [UInt8]
    private let denormalizer: SentencePieceNormalizer?

    /// For a tokenizer read from a `.model`: the file's settings (everything but its pieces),
    /// so that `modelFile()` can describe it as it was read.
    let fileSettings: SentencePieceModelFile?

    public var vocabularySize: Int { types.count }

    // MARK: Construction

    /// Loads a `.model` file.
    public convenience init(path: String) throws(TokenizerError) {
        let model = try SentencePieceModelFile(path: path)
        do { try self.init(model: model) } catch let .invalidVocabulary(m) {
            throw .file(path: path, line: nil, message: m)
        }
    }

    /// From a parsed model; checks what sentencepiece checks (pieces non-empty and unique, one
    /// unknown piece, 256 byte pieces with byte fallback, finite Unigram scores).
    public convenience init(model: SentencePieceModelFile) throws(TokenizerError) {
        func bad(_ m: String) -> TokenizerError { .invalidVocabulary(m) }
        let algorithm: Algorithm
        switch model.modelType {
        case .unigram: algorithm = .unigram
        case .bpe: algorithm = .bpe
        case .word, .char: throw bad("model_type \(model.modelType) is not supported (only unigram and BPE)")
        }
        var seen = Set<[UInt8]>()
        var unk: Int32 = -1
        for (i, p) in model.pieces.enumerated() {
            if p.text.isEmpty { throw bad("piece \(i) is empty") }
            if p.text == [0] && p.type == .unused { continue }
            if p.text.contains(0) { throw bad("piece \(i) contains a NUL byte") }
            if p.text.count >= 8000 { throw bad("piece \(i) is \(p.text.count) bytes long (at most 7999)") }
            if !seen.insert(p.text).inserted { throw bad("piece \(i) \(readableBytes(p.text)) is already defined") }
            if p.type == .unknown {
                if unk >= 0 { throw bad("piece \(i) is a second unknown piece (the first is \(unk))") }
                unk = Int32(i)
            }
            if p.type == .byte {
                if !model.byteFallback { throw bad("byte piece \(i) \(readableBytes(p.text)) although byte_fallback is false") }
                if bytePieceValue(p.text) == nil { throw bad("byte piece \(i) \(readableBytes(p.text)) is not <0xNN>") }
            }
            if algorithm == .unigram && !p.score.isFinite { throw bad("piece \(i) has score \(p.score) (must be finite)") }
        }
        if unk < 0 && !model.byteFallback { throw bad("no unknown piece") }
        // BOS, EOS and PAD are the control pieces spelled as the trainer spec names them.
        func control(_ name: String) -> UInt32? {
            let text = Array(name.utf8)
            guard let i = model.pieces.firstIndex(where: { $0.text == text }), model.pieces[i].type == .control else { return nil }
            return UInt32(i)
        }
        let bos = control(model.bosPiece)
        try self.init(algorithm: algorithm, pieces: model.pieces, unk: unk, bos: bos, eos: control(model.eosPiece),
                      pad: control(model.padPiece), addBOS: bos != nil, byteFallback: model.byteFallback,
                      normalizerSpec: model.normalizer, treatWhitespaceAsSuffix: model.treatWhitespaceAsSuffix,
                      denormalizerSpec: model.denormalizer, unkSurface: Array(model.unkSurface.utf8), addSpacePrefix: false,
                      fileSettings: model.settingsOnly)
    }

    /// From a GGUF vocabulary of type "llama" (tokenizer.ggml.tokens, .scores, .token_type with
    /// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), to behave as llama.cpp.
    public static func fromGGUF(tokens: [String], scores: [Float]?, tokenTypes: [Int32]?, bos: UInt32?, eos: UInt32?,
                                unk: UInt32?, pad: UInt32? = nil, addSpacePrefix: Bool, addBOS: Bool = true) throws(TokenizerError) -> SentencePieceTokenizer {
        func bad(_ m: String) -> TokenizerError { .file(path: "GGUF tokenizer", line: nil, message: m) }
        guard !tokens.isEmpty else { throw bad("tokenizer.ggml.tokens is empty") }
        if let scores, scores.count != tokens.count { throw bad("tokenizer.ggml.scores has \(scores.count) entries for \(tokens.count) tokens") }
        if let tokenTypes, tokenTypes.count != tokens.count { throw bad("tokenizer.ggml.token_type has \(tokenTypes.count) entries for \(tokens.count) tokens") }
        for (name, id) in [("bos", bos), ("eos", eos), ("unknown", unk), ("padding", pad)] {
            if let id, Int(id) >= tokens.count { throw bad("tokenizer.ggml.\(name)_token_id \(id) is outside the \(tokens.count) tokens") }
        }
        var pieces: [SentencePieceModelFile.Piece] = []
        pieces.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            let raw = tokenTypes?[i] ?? 1
            // Type 0 (undefined) behaves in llama.cpp as unused does: merged into, never decoded.
            guard raw >= 0, raw <= 6, var type = raw == 0 ? .unused : PieceType(rawValue: UInt8(raw)) else {
                throw bad("token \(i) \(t.debugDescription) has token type \(raw) (known: 0...6)")
            }
            if llamaCppControlTexts.contains(t) { type = .control }
            pieces.append(.init(text: Array(t.utf8), score: scores?[i] ?? 0, type: type))
        }
        return try SentencePieceTokenizer(algorithm: .llamaSPM, pieces: pieces, unk: unk.map { Int32($0) } ?? -1, bos: bos, eos: eos,
                                          pad: pad, addBOS: addBOS, byteFallback: true, normalizerSpec: nil,
                                          treatWhitespaceAsSuffix: false, denormalizerSpec: nil, unkSurface: [],
                                          addSpacePrefix: addSpacePrefix, fileSettings: nil)
    }

    private init(algorithm: Algorithm, pieces: [SentencePieceModelFile.Piece], unk: Int32, bos: UInt32?, eos: UInt32?,
                 pad: UInt32?, addBOS: Bool, byteFallback: Bool, normalizerSpec: SentencePieceModelFile.NormalizerSpec?,
                 treatWhitespaceAsSuffix: Bool, denormalizerSpec: SentencePieceModelFile.NormalizerSpec?,
                 unkSurface: [UInt8], addSpacePrefix: Bool, fileSettings: SentencePieceModelFile?) throws(TokenizerError) {
        self.algorithm = algorithm
        self.fileSettings = fileSettings
        let llama = algorithm == .llamaSPM
        var arena: [UInt8] = [], offsets = [0]
        for p in pieces { arena += p.text; offsets.append(arena.count) }
        self.arena = arena
        self.offsets = offsets
        types = pieces.map(\.type)
        scores = pieces.map(\.score)
        self.unk = unk >= 0 ? UInt32(unk) : nil
        self.byteFallback = byteFallback
        self.addSpacePrefix = addSpacePrefix
        self.unkSurface = unkSurface

        // Byte pieces (llama.cpp falls back to a token spelled as the raw byte, then to unknown).
        var byteIds = [Int32](repeating: -1, count: 256)
        var byteValue = [UInt8](repeating: 0, count: pieces.count)
        var rawByteIds = [Int32](repeating: -1, count: 256)
        for (i, p) in pieces.enumerated() where p.text.count == 6 || p.text.count == 1 {
            if let b = bytePieceValue(p.text) {
                if p.type == .byte { byteValue[i] = b }
                if byteIds[Int(b)] < 0 || llama { byteIds[Int(b)] = Int32(i) }
            } else if p.text.count == 1 {
                rawByteIds[Int(p.text[0])] = Int32(i)
            }
        }
        if llama {
            for b in 0..<256 where byteIds[b] < 0 { byteIds[b] = rawByteIds[b] >= 0 ? rawByteIds[b] : unk }
        }
        if byteFallback && !llama, let missing = byteIds.firstIndex(of: -1) {
            let hex = String(missing, radix: 16, uppercase: true)
            throw .invalidVocabulary("byte_fallback is on but there is no piece <0x\(missing < 16 ? "0" : "")\(hex)>")
        }
        self.byteIds = byteIds
        self.byteValue = byteValue

        // Special tokens: control and unknown pieces.
        var specials: [(String, UInt32)] = []
        var specialIds: [String: UInt32] = [:]
        for (i, p) in pieces.enumerated() where p.type == .control || p.type == .unknown {
            let text = String(decoding: p.text, as: UTF8.self)
            specials.append((text, UInt32(i)))
            if specialIds[text] == nil || llama { specialIds[text] = UInt32(i) }
        }
        specialTokens = specials
        self.specialIds = specialIds
        let cutOut = pieces.enumerated().filter { $0.element.type == .control || $0.element.type == .unknown || (llama && $0.element.type == .userDefined) }
        cutsUserDefined = llama && pieces.contains { $0.type == .userDefined }
        specialTrie = cutOut.isEmpty ? nil : PieceTrie(cutOut.map { ($0.element.text, Int32($0.offset)) })

        self.bos = bos
        self.eos = eos
        self.pad = pad
        self.addBOS = addBOS

        // The segmenter. sentencepiece's trie holds every piece but a NUL piece; llama.cpp's every token.
        let entries = pieces.enumerated().compactMap { (i, p) -> ([UInt8], Int32)? in p.text == [0] && p.type == .unused ? nil : (p.text, Int32(i)) }
        let userDefined = pieces.enumerated().filter { $0.element.type == .userDefined }
        let userTrie = userDefined.isEmpty || llama ? nil : PieceTrie(userDefined.map { ($0.element.text, Int32($0.offset)) })
        switch algorithm {
        case .unigram:
            let inTrie = entries.filter { [.normal, .userDefined, .unused].contains(pieces[Int($0.1)].type) }
            let trie = PieceTrie(inTrie.map { ($0.0, pieces[Int($0.1)].type == .unused ? -1 : $0.1) })
            let minScore = pieces.filter { $0.type == .normal }.map(\.score).min() ?? Float.greatestFiniteMagnitude
            unigram = UnigramViterbi(
                trie: trie,
                nodeScore: ContiguousArray(pieces.map { $0.type == .userDefined ? Float(0.1 * Double($0.text.count - 1)) : $0.score }),
                unknownScore: minScore - 10, unk: unk)
            bpe = nil
            wordSplit = nil
        case .bpe, .llamaSPM:
            let trie = PieceTrie(entries)
            let hasUnused = !llama && pieces.contains { $0.type == .unused }
            bpe = ScoredBPE(trie: trie,
                            mergeable: pieces.map { llama || [.normal, .userDefined, .unused].contains($0.type) },
                            priority: pieces.map { ScoredBPE.priority($0.score, signedZero: !llama) },
                            frozen: userTrie, unused: hasUnused ? pieces.map { $0.type == .unused } : nil)
            unigram = nil
            // A piece holding "X▁" (X not ▁) could span the start of a word after X.
            var marks = [Bool](repeating: false, count: 256)
            for p in pieces where p.text.count >= 4 {
                let t = p.text
                for k in 1..<(t.count - 2) where t[k] == 0xE2 && t[k + 1] == 0x96 && t[k + 2] == 0x81 {
                    let afterSpace = k >= 3 && t[k - 3] == 0xE2 && t[k - 2] == 0x96 && t[k - 1] == 0x81
                    if !afterSpace { marks[Int(t[k - 1])] = true }
                }
            }
            wordSplit = hasUnused ? nil : marks
        }

        // Normalization (none for GGUF: llama.cpp only writes spaces as ▁).
        if let normalizerSpec {
            normalizer = try SentencePieceNormalizer(spec: normalizerSpec, treatWhitespaceAsSuffix: treatWhitespaceAsSuffix, userDefined: userTrie)
            addDummyPrefix = normalizerSpec.addDummyPrefix
            removeExtraWhitespaces = normalizerSpec.removeExtraWhitespaces
        } else {
            normalizer = nil
            addDummyPrefix = false
            removeExtraWhitespaces = false
        }
        denormalizer = try denormalizerSpec.map { (spec) throws(TokenizerError) in
            try SentencePieceNormalizer(spec: spec, treatWhitespaceAsSuffix: false, userDefined: nil)
        }
    }

    // MARK: Pieces

    /// The piece's bytes as the vocabulary spells them.
    @inline(__always)
    private func pieceBytes(_ id: Int) -> ArraySlice<UInt8> { arena[offsets[id]..<offsets[id + 1]] }

    public func pieceType(_ id: UInt32) -> PieceType? { Int(id) < types.count ? types[Int(id)] : nil }

    public func score(_ id: UInt32) -> Float? { Int(id) < scores.count ? scores[Int(id)] : nil }

    public func specialTokenId(_ text: String) -> UInt32? { specialIds[text] }

    /// The id of a piece spelled exactly so (`▁the`, `<0x0A>`, `<start_of_turn>`).
    public func pieceId(_ piece: String) -> UInt32? {
        let bytes = Array(piece.utf8)
        for id in 0..<types.count where pieceBytes(id).elementsEqual(bytes) { return UInt32(id) }
        return nil
    }

    /// Every piece as the vocabulary holds it (text, score, type), by id.
    var vocabularyPieces: [SentencePieceModelFile.Piece] {
        (0..<types.count).map { .init(text: Array(pieceBytes($0)), score: scores[$0], type: types[$0]) }
    }

    /// Whether a space goes in front of the text (GGUF tokenizer.ggml.add_space_prefix).
    var addsSpacePrefix: Bool { addSpacePrefix }
}

/// Texts that llama.cpp makes control tokens whatever their GGUF type (end-of-turn, end-of-text
/// and fill-in-the-middle markers it recognizes by name), so they are special tokens here too:
/// cut out only when allowed, decoded as nothing. Gemma 3's user-defined `</s>` is one.
let llamaCppControlTexts: Set<String> = [
    "</s>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<eos>", "<end_of_turn>", "<end_of_utterance>", "<turn|>",
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<|end_of_text|>", "<|return|>",
    "<|call|>", "<|calls|>", "<|flush|>", "<|tool_response>", "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>", "[e~[",
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\u{FF5C}fim\u{2581}begin\u{FF5C}>", "<PRE>", "\u{2581}<PRE>", "<|code_prefix|>", "<|prefix|>",
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\u{FF5C}fim\u{2581}hole\u{FF5C}>", "<SUF>", "\u{2581}<SUF>", "<|code_suffix|>", "<|suffix|>",
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\u{FF5C}fim\u{2581}end\u{FF5C}>", "<MID>", "\u{2581}<MID>", "<|code_middle|>", "<|middle|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
]

/// The byte of a `<0xNN>` piece (two upper-case hex digits, as sentencepiece writes them).
func bytePieceValue<C: Collection>(_ text: C) -> UInt8? where C.Element == UInt8 {
    let t = Array(text)
    guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
    guard let hi = hex(t[3]), let lo = hex(t[4]) else { return nil }
    return hi << 4 | lo
}

// MARK: - Encoding

extension SentencePieceTokenizer: TextTokenizer {
    /// Encodes text with special tokens as plain text (user-defined pieces are still pieces).
    public func encodeOrdinary(_ text: String) -> [UInt32] {
        var text = text
        var out: [UInt32] = []
        out.reserveCapacity(text.utf8.count / 3)
        let s = scratch.take()
        defer { scratch.give(s) }
        var pieces: [[UInt8]]? = nil
        text.withUTF8 { encode($0, allowed: .none, into: &out, pieces: &pieces, s) }
        return out
    }

    /// Encodes text, turning the text of allowed special tokens into their ids; text spelling a
    /// special token in `disallowedSpecial` (and not allowed) is an error naming it and its offset.
    public func encode(_ text: String, allowedSpecial: SpecialTokenPolicy = .none,
                       disallowedSpecial: SpecialTokenPolicy = .all) throws(TokenizerError) -> [UInt32] {
        var text = text
        var out: [UInt32] = []
        var failure: TokenizerError? = nil
        let s = scratch.take()
        defer { scratch.give(s) }
        text.withUTF8 { buf in
            if let specialTrie, let base = buf.baseAddress {
                var i = 0
                while i < buf.count {
                    if let (length, id) = specialTrie.longestMatch(base + i, buf.count - i), types[Int(id)] != .userDefined {
                        let token = String(decoding: pieceBytes(Int(id)), as: UTF8.self)
                        if !allowedSpecial.contains(token) && disallowedSpecial.contains(token) {
                            failure = .disallowedSpecial(token: token, offset: i)
                            return
                        }
                        i += length
                    } else {
                        i += 1
                    }
                }
            }
            var pieces: [[UInt8]]? = nil
            encode(buf, allowed: allowedSpecial, into: &out, pieces: &pieces, s)
        }
        if let failure { throw failure }
        return out
    }

    /// The pieces of ordinary text as sentencepiece's `encode(out_type=str)` gives them (a run of
    /// unknown characters is one piece spelled as those characters).
    public func encodeAsPieces(_ text: String) -> [String] {
        var text = text
        var out: [UInt32] = []
        var pieces: [[UInt8]]? = []
        let s = scratch.take()
        defer { scratch.give(s) }
        text.withUTF8 { encode($0, allowed: .none, into: &out, pieces: &pieces, s) }
        return (pieces ?? []).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Cuts the text at special tokens (allowed control pieces; for GGUF also every user-defined
    /// token) and encodes each stretch between them.
    private func encode(_ buf: UnsafeBufferPointer<UInt8>, allowed: SpecialTokenPolicy, into out: inout [UInt32],
                        pieces: inout [[UInt8]]?, _ s: Scratch) {
        guard let base = buf.baseAddress, !buf.isEmpty else { return }
        let cuts = specialCuts(buf, allowed: allowed)
        var at = 0
        var afterSpecial = true
        for (start, length, id) in cuts {
            if start > at {
                encodeText(UnsafeBufferPointer(start: base + at, count: start - at), afterSpecial: afterSpecial, into: &out, pieces: &pieces, s)
            }
            out.append(UInt32(id))
            pieces?.append(Array(pieceBytes(Int(id))))
            afterSpecial = true
            at = start + length
        }
        if at < buf.count {
            encodeText(UnsafeBufferPointer(start: base + at, count: buf.count - at), afterSpecial: afterSpecial, into: &out, pieces: &pieces, s)
        }
    }

    /// Where special tokens cut the text, as llama.cpp partitions it: the longest tokens first,
    /// each at its leftmost occurrences that do not overlap text already cut out.
    private func specialCuts(_ buf: UnsafeBufferPointer<UInt8>, allowed: SpecialTokenPolicy) -> [(Int, Int, Int32)] {
        guard let specialTrie, let base = buf.baseAddress else { return [] }
        if case .none = allowed, !cutsUserDefined { return [] }
        var found: [(start: Int, length: Int, id: Int32)] = []
        var allowedCache: [Int32: Bool] = [:]
        func include(_ id: Int32) -> Bool {
            if types[Int(id)] == .userDefined { return true }
            if let known = allowedCache[id] { return known }
            let ok = allowed.contains(String(decoding: pieceBytes(Int(id)), as: UTF8.self))
            allowedCache[id] = ok
            return ok
        }
        let n = buf.count
        for i in 0..<n {
            var node: Int32 = 0
            var k = i
            while k < n {
                node = specialTrie.child(node, base[k])
                if node < 0 { break }
                k += 1
                let v = specialTrie.value(node)
                if v >= 0 && include(v) { found.append((i, k - i, v)) }
            }
        }
        if found.isEmpty { return [] }
        // Longest first; among equals, token by token (by id), each left to right.
        found.sort { a, b in
            a.length != b.length ? a.length > b.length : a.id != b.id ? a.id < b.id : a.start < b.start
        }
        var taken = [Bool](repeating: false, count: n)
        var cuts: [(Int, Int, Int32)] = []
        for f in found where !taken[f.start..<(f.start + f.length)].contains(true) {
            for j in f.start..<(f.start + f.length) { taken[j] = true }
            cuts.append((f.start, f.length, f.id))
        }
        return cuts.sorted { $0.0 < $1.0 }
    }

    /// Normalizes one stretch of text, segments it, and appends its ids (and pieces).
    private func encodeText(_ text: UnsafeBufferPointer<UInt8>, afterSpecial: Bool, into out: inout [UInt32],
                            pieces: inout [[UInt8]]?, _ s: Scratch) {
        let norm = s.normalized
        if let normalizer {
            normalizer.normalize(text, into: norm)
        } else {
            norm.removeAll()
            norm.reserve(3 * text.count + 3)
            if addSpacePrefix && afterSpecial { norm.appendUnchecked([0xE2, 0x96, 0x81]) }
            for b in text {
                if b == 0x20 { norm.appendUnchecked(0xE2); norm.appendUnchecked(0x96); norm.appendUnchecked(0x81) } else { norm.appendUnchecked(b) }
            }
        }
        guard norm.count > 0 else { return }
        let p = UnsafePointer(norm.base), n = norm.count
        s.raw.removeAll(keepingCapacity: true)
        if let unigram {
            unigram.encode(p, n, into: &s.raw, scratch: s.unigram)
        } else if let bpe {
            segmentWords(p, n, bpe, s)
        }
        emit(p, into: &out, pieces: &pieces, s)
    }

    /// BPE word by word with a cache when no piece spans a word start, else over the whole text.
    private func segmentWords(_ p: UnsafePointer<UInt8>, _ n: Int, _ bpe: ScoredBPE, _ s: Scratch) {
        guard let marks = wordSplit else { bpe.encode(p, n, into: &s.raw, scratch: s.bpe); return }
        var start = 0
        var i = 1
        func word(_ a: Int, _ b: Int) {
            let len = b - a
            if len > 64 { bpe.encode(p + a, len, into: &s.raw, scratch: s.bpe); return }
            let h = BytesMap.hash(p + a, len)
            if let v = s.cache.get(p + a, len, hash: h) {
                let from = Int(v >> 32), count = Int(v & 0xFFFF_FFFF)
                s.raw.append(contentsOf: s.cached[from..<(from + count)])
                return
            }
            let before = s.raw.count
            bpe.encode(p + a, len, into: &s.raw, scratch: s.bpe)
            if s.cache.count >= 1 << 18 { s.cache = BytesMap(capacity: 1 << 12); s.cached = [] }
            s.cache.set(p + a, len, UInt64(s.cached.count) << 32 | UInt64(s.raw.count - before), hash: h)
            s.cached.append(contentsOf: s.raw[before...])
        }
        while i + 2 < n {
            if p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81 {
                let afterSpace = i >= 3 && p[i - 3] == 0xE2 && p[i - 2] == 0x96 && p[i - 1] == 0x81
                if !afterSpace && !marks[Int(p[i - 1])] {
                    word(start, i)
                    start = i
                }
                i += 3
            } else {
                i += 1
            }
        }
        word(start, n)
    }

    /// Turns segmented pieces into ids: unknown pieces become byte pieces with byte fallback, and
    /// (sentencepiece) a run of unknown pieces becomes one.
    private func emit(_ p: UnsafePointer<UInt8>, into out: inout [UInt32], pieces: inout [[UInt8]]?, _ s: Scratch) {
        let llama = algorithm == .llamaSPM
        let unkId = unk.map { Int32($0) } ?? -1
        var offset = 0
        var previousUnknown = false
        for e in s.raw {
            let id = Int32(bitPattern: UInt32(e >> 32)), n = Int(e & 0xFFFF_FFFF)
            defer { offset += n }
            if llama {
                if id >= 0 { out.append(UInt32(id)); pieces?.append(Array(pieceBytes(Int(id)))); continue }
                for k in 0..<n where byteIds[Int(p[offset + k])] >= 0 {
                    let b = byteIds[Int(p[offset + k])]
                    out.append(UInt32(b))
                    pieces?.append(Array(pieceBytes(Int(b))))
                }
                continue
            }
            if id >= 0 && types[Int(id)] == .control {
                out.append(UInt32(id)); pieces?.append(Array(pieceBytes(Int(id))))
                previousUnknown = false
                continue
            }
            let isUnknown = id < 0 || id == unkId || types[Int(id)] == .unknown
            if isUnknown && byteFallback {
                for k in 0..<n {
                    let b = byteIds[Int(p[offset + k])]
                    out.append(UInt32(b))
                    pieces?.append(Array(pieceBytes(Int(b))))
                }
            } else if !previousUnknown || !isUnknown {
                out.append(UInt32(isUnknown ? unkId : id))
                pieces?.append(Array(UnsafeBufferPointer(start: p + offset, count: n)))
            } else if pieces != nil {
                pieces![pieces!.count - 1] += UnsafeBufferPointer(start: p + offset, count: n)
            }
            previousUnknown = isUnknown
        }
    }

    // MARK: Decoding

    /// The bytes one token stands for on its own: `▁` as a space, a byte piece as its byte,
    /// control pieces as nothing, the unknown piece as its surface (" ⁇ "; nothing for GGUF).
    public func tokenBytes(_ id: UInt32) -> [UInt8]? {
        guard Int(id) < types.count else { return nil }
        let i = Int(id)
        switch types[i] {
        case .byte: return [byteValue[i]]
        case .control: return []
        case .unknown: return algorithm == .llamaSPM ? [] : unkSurface
        case .userDefined where algorithm == .llamaSPM: return Array(pieceBytes(i))
        case .unused where algorithm == .llamaSPM: return []
        default: return unescapeSpaces(pieceBytes(i))
        }
    }

    /// Decoded bytes, as sentencepiece's decode (`.model`) or llama.cpp's detokenize (GGUF) gives them.
    public func decodeBytes(_ ids: [UInt32]) throws(TokenizerError) -> [UInt8] {
        for (position, id) in ids.enumerated() where Int(id) >= types.count {
            throw .unknownId(id: Int(id), position: position, vocabularySize: types.count)
        }
        if algorithm == .llamaSPM {
            var out: [UInt8] = []
            for (k, id) in ids.enumerated() {
                var b = tokenBytes(id)!
                if k == 0 && addSpacePrefix && b.first == 0x20 { b.removeFirst() }
                out += b
            }
            return out
        }
        var out: [UInt8] = []
        var bytes: [UInt8] = []
        func flushBytes() {
            bytes.withUnsafeBufferPointer { q in
                var k = 0
                while k < q.count {
                    let len = validUTF8Length(q.baseAddress! + k, q.count - k)
                    if len == 0 { out += [0xEF, 0xBF, 0xBD]; k += 1 } else { out += q[k..<(k + len)]; k += len }
                }
            }
            bytes.removeAll()
        }
        var atStart = true
        for id in ids.map({ Int($0) }) {
            if types[id] == .byte { bytes.append(byteValue[id]); continue }
            flushBytes()
            if !out.isEmpty { atStart = false }
            if types[id] == .control { continue }
            var piece = pieceBytes(id)
            var strippedSpace = false
            if atStart && (addDummyPrefix || removeExtraWhitespaces) && piece.starts(with: [0xE2, 0x96, 0x81]) {
                piece = piece.dropFirst(3)
                strippedSpace = !removeExtraWhitespaces
            }
            if types[id] == .unknown || Int32(id) == (unk.map { Int32($0) } ?? -1) {
                out += unkSurface
            } else {
                out += unescapeSpaces(piece)
            }
            if strippedSpace || !out.isEmpty { atStart = false }
        }
        flushBytes()
        if let denormalizer {
            let text = ByteBuffer()
            out.withUnsafeBufferPointer { denormalizer.normalize($0, into: text) }
            return Array(text.buffer)
        }
        return out
    }

    /// The piece as the vocabulary spells it (`▁` for a space, `<0x0A>` for a byte piece).
    public func piece(_ id: UInt32) -> String? {
        guard Int(id) < types.count else { return nil }
        return String(decoding: pieceBytes(Int(id)), as: UTF8.self)
    }
}

/// `▁` (E2 96 81) → space.
private func unescapeSpaces<C: Collection>(_ piece: C) -> [UInt8] where C.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(piece.count)
    var i = piece.startIndex
    while i != piece.endIndex {
        let b = piece[i]
        if b == 0xE2 {
            let j = piece.index(after: i)
            if j != piece.endIndex, piece[j] == 0x96 {
                let k = piece.index(after: j)
                if k != piece.endIndex, piece[k] == 0x81 {
                    out.append(0x20)
                    i = piece.index(after: k)
                    continue
                }
            }
        }
        out.append(b)
        i = piece.index(after: i)
    }
    return out
}

/// Per-call buffers (normalized text, segmented pieces, BPE and Viterbi arrays, the word cache).
final class SentencePieceScratch {
    let normalized = ByteBuffer()
    var raw: [UInt64] = []
    let bpe = BPEScratch()
    let unigram = UnigramScratch()
    var cache = BytesMap(capacity: 1 << 12)
    var cached: [UInt64] = []
}

private typealias Scratch = SentencePieceScratch

/// Scratch buffers handed to concurrent callers one each.
private final class ScratchPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [Scratch] = []
    func take() -> Scratch { lock.lock(); defer { lock.unlock() }; return free.popLast() ?? Scratch() }
    func give(_ s: Scratch) { lock.lock(); free.append(s); lock.unlock() }
}
