import Foundation

/// A SentencePiece `.model` file: a serialized `ModelProto` (protocol buffers, proto2), read by
/// our own small decoder. Only the fields that encoding and decoding need are kept:
///
///   ModelProto       1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec  5 denormalizer_spec
///   SentencePiece    1 piece (string)  2 score (float)  3 type (1 normal, 2 unknown, 3 control,
///                    4 user-defined, 5 unused, 6 byte)
///   TrainerSpec      3 model_type (1 unigram, 2 BPE, 3 word, 4 char)  24 treat_whitespace_as_suffix
///                    35 byte_fallback  40..43 unk/bos/eos/pad ids  44 unk_surface  45..48 unk/bos/eos/pad pieces
///   NormalizerSpec   1 name  2 precompiled_charsmap (bytes)  3 add_dummy_prefix  4 remove_extra_whitespaces
///                    5 escape_whitespaces
///
/// Every other field is skipped by its wire type. Every length is checked against the bytes left,
/// so a truncated or corrupt file is an error naming the byte offset, never a crash.
public struct SentencePieceModelFile: Sendable {
    public enum PieceType: UInt8, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public struct Piece: Sendable {
        public var text: [UInt8] = []
        public var score: Float = 0
        public var type: PieceType = .normal

        public init(text: [UInt8] = [], score: Float = 0, type: PieceType = .normal) {
            self.text = text
            self.score = score
            self.type = type
        }
    }

    public enum ModelType: Int, Sendable { case unigram = 1, bpe = 2, word = 3, char = 4 }

    public struct NormalizerSpec: Sendable {
        public var name = ""
        public var precompiledCharsmap: [UInt8] = []
        public var addDummyPrefix = true
        public var removeExtraWhitespaces = true
        public var escapeWhitespaces = true
    }

    public var pieces: [Piece] = []
    public var modelType: ModelType = .unigram
    public var byteFallback = false
    public var treatWhitespaceAsSuffix = false
    public var unkId: Int32 = 0, bosId: Int32 = 1, eosId: Int32 = 2, padId: Int32 = -1
    public var unkPiece = "<unk>", bosPiece = "<s>", eosPiece = "</s>", padPiece = "<pad>"
    /// What an unknown piece decodes to (U+2047 between spaces unless the file says otherwise).
    public var unkSurface = " \u{2047} "
    public var normalizer = NormalizerSpec()
    /// Present only when the file has a denormalizer with rules (applied to decoded text).
    public var denormalizer: NormalizerSpec?

    public init() {}

    /// The same file without its pieces: the trainer, normalizer and denormalizer settings.
    var settingsOnly: SentencePieceModelFile {
        var settings = self
        settings.pieces = []
        return settings
    }

    public init(path: String) throws(TokenizerError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(path: path, line: nil, message: "cannot read the file")
        }
        do throws(ProtoError) { try self.init(bytes: [UInt8](data)) } catch {
            switch error {
            case let .malformed(offset, message):
                throw .file(path: path, line: nil, message: "not a valid SentencePiece model: \(message) at byte \(offset)")
            case let .invalid(message):
                throw .file(path: path, line: nil, message: message)
            }
        }
    }

    /// Parses the serialized ModelProto.
    public init(bytes: [UInt8]) throws(ProtoError) {
        var reader = ProtoReader(bytes, 0..<bytes.count)
        var sawPiece = false
        while let (field, wire) = try reader.nextField() {
            switch (field, wire) {
            case (1, 2):
                pieces.append(try Self.piece(reader.submessage()))
                sawPiece = true
            case (2, 2): try readTrainerSpec(reader.submessage())
            case (3, 2): normalizer = try Self.normalizerSpec(reader.submessage())
            case (5, 2):
                let spec = try Self.normalizerSpec(reader.submessage())
                denormalizer = spec.precompiledCharsmap.isEmpty ? nil : spec
            default: try reader.skip(wire)
            }
        }
        guard sawPiece else { throw .invalid("not a valid SentencePiece model: no pieces") }
    }

    private static func piece(_ r: ProtoReader) throws(ProtoError) -> Piece {
        var r = r, p = Piece()
        while let (field, wire) = try r.nextField() {
            switch (field, wire) {
            case (1, 2): p.text = try r.bytes()
            case (2, 5): p.score = Float(bitPattern: try r.fixed32())
            case (3, 0):
                let at = r.offset, v = try r.varint()
                guard let t = PieceType(rawValue: UInt8(truncatingIfNeeded: v)), v <= 6 else {
                    throw .malformed(at, "piece type \(v) is not one of 1...6")
                }
                p.type = t
            default: try r.skip(wire)
            }
        }
        return p
    }

    private mutating func readTrainerSpec(_ r: ProtoReader) throws(ProtoError) {
        var r = r
        while let (field, wire) = try r.nextField() {
            switch (field, wire) {
            case (3, 0):
                let at = r.offset, v = try r.varint()
                guard v <= 4, let t = ModelType(rawValue: Int(v)) else { throw .malformed(at, "model_type \(v) is not one of 1...4") }
                modelType = t
            case (24, 0): treatWhitespaceAsSuffix = try r.varint() != 0
            case (35, 0): byteFallback = try r.varint() != 0
            case (40, 0): unkId = Int32(truncatingIfNeeded: try r.varint())
            case (41, 0): bosId = Int32(truncatingIfNeeded: try r.varint())
            case (42, 0): eosId = Int32(truncatingIfNeeded: try r.varint())
            case (43, 0): padId = Int32(truncatingIfNeeded: try r.varint())
            case (44, 2): unkSurface = try r.string()
            case (45, 2): unkPiece = try r.string()
            case (46, 2): bosPiece = try r.string()
            case (47, 2): eosPiece = try r.string()
            case (48, 2): padPiece = try r.string()
            default: try r.skip(wire)
            }
        }
    }

    private static func normalizerSpec(_ r: ProtoReader) throws(ProtoError) -> NormalizerSpec {
        var r = r, s = NormalizerSpec()
        while let (field, wire) = try r.nextField() {
            switch (field, wire) {
            case (1, 2): s.name = try r.string()
            case (2, 2): s.precompiledCharsmap = try r.bytes()
            case (3, 0): s.addDummyPrefix = try r.varint() != 0
            case (4, 0): s.removeExtraWhitespaces = try r.varint() != 0
            case (5, 0): s.escapeWhitespaces = try r.varint() != 0
            default: try r.skip(wire)
            }
        }
        return s
    }
}

/// Why a protocol-buffer message could not be read.
public enum ProtoError: Error, Equatable {
    /// The bytes are not a well-formed message: what was wrong and the byte offset where.
    case malformed(Int, String)
    /// Well-formed, but not what a SentencePiece model must hold.
    case invalid(String)
}

/// Reads the fields of one message within `range` of the buffer, left to right.
struct ProtoReader {
    let buffer: [UInt8]
    private(set) var offset: Int
    let end: Int

    init(_ buffer: [UInt8], _ range: Range<Int>) {
        self.buffer = buffer
        offset = range.lowerBound
        end = range.upperBound
    }

    /// The next (field number, wire type), or nil at the end of the message.
    mutating func nextField() throws(ProtoError) -> (Int, Int)? {
        guard offset < end else { return nil }
        let at = offset
        let key = try varint()
        let field = key >> 3, wire = Int(key & 7)
        guard field >= 1, field <= (1 << 29) - 1 else { throw .malformed(at, "field number \(field) is out of range") }
        return (Int(field), wire)
    }

    mutating func varint() throws(ProtoError) -> UInt64 {
        let start = offset
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard offset < end else { throw .malformed(start, "a varint runs past the end of its message") }
            let b = buffer[offset]
            offset += 1
            if shift == 63 && b > 1 { throw .malformed(start, "a varint is longer than 64 bits") }
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
            if shift > 63 { throw .malformed(start, "a varint is longer than 10 bytes") }
        }
    }

    mutating func fixed32() throws(ProtoError) -> UInt32 {
        guard end - offset >= 4 else { throw .malformed(offset, "a 32-bit field runs past the end of its message") }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(buffer[offset + k]) << (8 * UInt32(k)) }
        offset += 4
        return v
    }

    /// A length-delimited field's byte range.
    mutating func lengthDelimited() throws(ProtoError) -> Range<Int> {
        let at = offset
        let n = try varint()
        guard n <= UInt64(end - offset) else {
            throw .malformed(at, "a field of \(n) bytes is longer than the \(end - offset) bytes left in its message")
        }
        let r = offset..<(offset + Int(n))
        offset = r.upperBound
        return r
    }

    mutating func bytes() throws(ProtoError) -> [UInt8] { Array(buffer[try lengthDelimited()]) }

    mutating func string() throws(ProtoError) -> String {
        let at = offset
        let r = try lengthDelimited()
        guard let s = String(validating: buffer[r], as: UTF8.self) else { throw .malformed(at, "a string field is not valid UTF-8") }
        return s
    }

    mutating func submessage() throws(ProtoError) -> ProtoReader { ProtoReader(buffer, try lengthDelimited()) }

    /// Skips a field's value by its wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    mutating func skip(_ wire: Int) throws(ProtoError) {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard end - offset >= 8 else { throw .malformed(offset, "a 64-bit field runs past the end of its message") }
            offset += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw .malformed(offset, "wire type \(wire) is not supported (groups or corrupt data)")
        }
    }
}
