/// Everything that can go wrong in tokenization, each naming what was wrong and where.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case disallowedSpecial(token: String, offset: Int)
    case unknownId(id: Int, position: Int, vocabularySize: Int)
    case invalidUTF8(offset: Int)
    case invalidVocabulary(String)
    case file(path: String, line: Int?, message: String)

    public var description: String {
        switch self {
        case let .disallowedSpecial(token, offset):
            return "special token \(token) at byte offset \(offset) is not allowed here (allow it, or encode it as ordinary text)"
        case let .unknownId(id, position, size):
            return "token id \(id) at position \(position) is outside the vocabulary (0..<\(size))"
        case let .invalidUTF8(offset):
            return "invalid UTF-8 at byte offset \(offset)"
        case let .invalidVocabulary(message):
            return "invalid vocabulary: \(message)"
        case let .file(path, line, message):
            return line.map { "\(path):\($0): \(message)" } ?? "\(path): \(message)"
        }
    }
}

/// Bytes as readable text: printable ASCII as is, the rest as escapes (\n, \t, \xNN).
public func escapeBytes<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var s = ""
    for b in bytes {
        switch b {
        case 0x0A: s += "\\n"
        case 0x09: s += "\\t"
        case 0x0D: s += "\\r"
        case 0x5C: s += "\\\\"
        case 0x20..<0x7F: s.unicodeScalars.append(Unicode.Scalar(b))
        default: s += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
        }
    }
    return s
}

/// Token bytes for display: complete UTF-8 characters as themselves, control characters, stray
/// bytes and backslashes as escapes (\n, \t, \xNN), quoted so spaces show: `" naïve"`.
public func readableBytes(_ bytes: [UInt8]) -> String {
    var s = "\""
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        let len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0
        if len > 1, i + len <= bytes.count,
           let text = String(validating: bytes[i..<(i + len)], as: UTF8.self),
           let scalar = text.unicodeScalars.first, !scalar.properties.isWhitespace || scalar == " ",
           scalar.properties.generalCategory != .control, scalar.properties.generalCategory != .format {
            s += text
            i += len
            continue
        }
        s += b == 0x22 ? "\\\"" : escapeBytes([b])
        i += 1
    }
    return s + "\""
}

/// Checks UTF-8 validity; returns the offset of the first bad byte, if any.
public func firstInvalidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
    var i = 0
    let n = bytes.count
    while i < n {
        let c = bytes[i]
        if c < 0x80 { i += 1; continue }
        let len: Int, minValue: UInt32
        switch c {
        case 0xC2...0xDF: len = 2; minValue = 0x80
        case 0xE0...0xEF: len = 3; minValue = 0x800
        case 0xF0...0xF4: len = 4; minValue = 0x10000
        default: return i
        }
        guard i + len <= n else { return i }
        var v = UInt32(c) & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07)
        for k in 1..<len {
            let cc = bytes[i + k]
            guard cc & 0xC0 == 0x80 else { return i }
            v = v << 6 | UInt32(cc & 0x3F)
        }
        if v < minValue || v > 0x10FFFF || (0xD800...0xDFFF).contains(v) { return i }
        i += len
    }
    return nil
}
