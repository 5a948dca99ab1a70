import Foundation

/// Writes a `SentencePieceModelFile` as a serialized `ModelProto`, the `.model` file that the
/// `sentencepiece` library (and our reader) loads. The fields written, by number:
///
///   ModelProto       1 pieces  2 trainer_spec  3 normalizer_spec  5 denormalizer_spec (when present)
///   SentencePiece    1 piece  2 score  3 type (left out when normal, the default)
///   TrainerSpec      3 model_type  4 vocab_size  24 treat_whitespace_as_suffix  35 byte_fallback
///                    40..43 unk/bos/eos/pad ids  44 unk_surface  45..48 unk/bos/eos/pad pieces
///   NormalizerSpec   1 name  2 precompiled_charsmap (when not empty)  3 add_dummy_prefix
///                    4 remove_extra_whitespaces  5 escape_whitespaces
///
/// Fields are written in field-number order, each one even when it holds its default, so the
/// file says the same thing whichever defaults a reader assumes.
extension SentencePieceModelFile {
    /// The serialized ModelProto.
    public func serialized() -> [UInt8] {
        var out = ProtoWriter()
        out.reserve(pieces.reduce(0) { $0 + $1.text.count + 12 } + 256 + normalizer.precompiledCharsmap.count)
        for p in pieces {
            var piece = ProtoWriter()
            piece.bytes(1, p.text)
            piece.float(2, p.score)
            if p.type != .normal { piece.varint(3, UInt64(p.type.rawValue)) }
            out.message(1, piece)
        }
        out.message(2, trainerSpec())
        out.message(3, Self.normalizerSpec(normalizer))
        if let denormalizer { out.message(5, Self.normalizerSpec(denormalizer)) }
        return out.encoded
    }

    /// Writes the serialized model to `path` (a temporary file in the same folder, then renamed).
    public func write(to path: String) throws(TokenizerError) {
        do { try atomicWrite(Data(serialized()), to: path) } catch let error as TokenizerError {
            throw error
        } catch {
            throw .file(path: path, line: nil, message: "cannot write: \(error.localizedDescription)")
        }
    }

    private func trainerSpec() -> ProtoWriter {
        var spec = ProtoWriter()
        spec.varint(3, UInt64(modelType.rawValue))
        spec.int32(4, Int32(clamping: pieces.count))
        spec.bool(24, treatWhitespaceAsSuffix)
        spec.bool(35, byteFallback)
        spec.int32(40, unkId)
        spec.int32(41, bosId)
        spec.int32(42, eosId)
        spec.int32(43, padId)
        spec.string(44, unkSurface)
        spec.string(45, unkPiece)
        spec.string(46, bosPiece)
        spec.string(47, eosPiece)
        spec.string(48, padPiece)
        return spec
    }

    private static func normalizerSpec(_ s: NormalizerSpec) -> ProtoWriter {
        var spec = ProtoWriter()
        spec.string(1, s.name)
        if !s.precompiledCharsmap.isEmpty { spec.bytes(2, s.precompiledCharsmap) }
        spec.bool(3, s.addDummyPrefix)
        spec.bool(4, s.removeExtraWhitespaces)
        spec.bool(5, s.escapeWhitespaces)
        return spec
    }
}

/// Builds one protocol-buffer message, field by field, in the wire format `ProtoReader` reads:
/// a key (field number << 3 | wire type), then a varint (0), a length and bytes (2) or four
/// little-endian bytes (5).
struct ProtoWriter {
    private(set) var encoded: [UInt8] = []

    mutating func reserve(_ n: Int) { encoded.reserveCapacity(n) }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            encoded.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        encoded.append(UInt8(v))
    }

    private mutating func key(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }

    mutating func varint(_ field: Int, _ value: UInt64) {
        key(field, 0)
        rawVarint(value)
    }

    /// An int32 field: a negative value is sign-extended to ten bytes, as protobuf writes it.
    mutating func int32(_ field: Int, _ value: Int32) { varint(field, UInt64(bitPattern: Int64(value))) }

    mutating func bool(_ field: Int, _ value: Bool) { varint(field, value ? 1 : 0) }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        let b = value.bitPattern
        for k in 0..<4 { encoded.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) }
    }

    mutating func bytes<C: Collection>(_ field: Int, _ value: C) where C.Element == UInt8 {
        key(field, 2)
        rawVarint(UInt64(value.count))
        encoded.append(contentsOf: value)
    }

    mutating func string(_ field: Int, _ value: String) { bytes(field, value.utf8) }

    mutating func message(_ field: Int, _ value: ProtoWriter) { bytes(field, value.encoded) }
}
