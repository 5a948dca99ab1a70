import Foundation
import Tokenization

/// A tokenized corpus on disk, read memory-mapped.
///
/// Layout (little-endian): 32-byte header — magic "LLMTOKS1", UInt32 bytes per token (2 or 4),
/// UInt32 vocabulary size, UInt64 token count, 8 reserved bytes — then the tokens. uint16 when the
/// vocabulary fits (GPT-2's 50257 does), else uint32.
public final class TokenFile: @unchecked Sendable {
    public static let magic = Array("LLMTOKS1".utf8)
    public let path: String
    public let count: Int
    public let vocabularySize: Int
    public let bytesPerToken: Int
    private let data: Data

    public init(path: String) throws {
        self.path = path
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw TrainingError.file(path, "cannot read")
        }
        guard d.count >= 32, Array(d[0..<8]) == Self.magic else { throw TrainingError.file(path, "not a token file (no LLMTOKS1 header)") }
        data = d
        let (width, vocab, declared) = d.withUnsafeBytes { raw in
            (Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)), Int(raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
             raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        }
        guard width == 2 || width == 4 else { throw TrainingError.file(path, "\(width) bytes per token at byte 8 (expected 2 or 4)") }
        // The declared count against the file's real size, before any arithmetic on it.
        guard declared == UInt64(d.count - 32) / UInt64(width), (d.count - 32) % width == 0 else {
            throw TrainingError.file(path, "header says \(declared) tokens of \(width) bytes at byte 16, but the file holds \(d.count - 32) bytes after the header")
        }
        let n = Int(declared)
        bytesPerToken = width; vocabularySize = vocab; count = n
    }

    /// Tokens in `range` as Int32.
    public func tokens(_ range: Range<Int>) -> [Int32] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "TokenFile: \(range) outside 0..<\(count)")
        return data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + 32
            if bytesPerToken == 2 {
                return range.map { Int32(base.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
            }
            return range.map { Int32(bitPattern: base.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
    }

    /// Writes tokens (temporary file, then rename).
    public static func write(_ tokens: [UInt32], vocabularySize: Int, to path: String) throws {
        let width = vocabularySize <= 65536 ? 2 : 4
        var out = Data(Self.magic)
        withUnsafeBytes(of: UInt32(width).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(vocabularySize).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(tokens.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(Data(count: 8))
        if width == 2 {
            var narrow = tokens.map { UInt16($0).littleEndian }
            out.append(Data(bytes: &narrow, count: narrow.count * 2))
        } else {
            var wide = tokens.map { $0.littleEndian }
            out.append(Data(bytes: &wide, count: wide.count * 4))
        }
        try atomicWrite(out, to: path)
    }
}

public enum TrainingError: Error, CustomStringConvertible {
    case file(String, String)
    case nonFinite(step: Int, what: String)
    case config(String)

    public var description: String {
        switch self {
        case let .file(path, message): return "\(path): \(message)"
        case let .nonFinite(step, what): return "step \(step): \(what) is not finite; stopped (the last checkpoint is kept)"
        case let .config(message): return message
        }
    }
}
