/// The Unicode classes the split patterns use: \p{L} (letter), \p{N} (number), \s (White_Space),
/// and everything else. ASCII comes from a fixed table; other scalars are classified once through
/// the standard library's Unicode properties and remembered in a lazily filled table.
public enum CharacterClass: UInt8 {
    case letter = 1, number = 2, whitespace = 3, other = 4

    /// One byte per scalar value: the class's raw value, or 0 when not yet classified. Filled for
    /// ASCII up front and for other scalars the first time they are met (racing threads only ever
    /// write the same value). Scanners fetch the pointer once per call, not per character.
    static let table: UnsafeMutablePointer<UInt8> = {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 0x110000)
        t.initialize(repeating: 0, count: 0x110000)
        for c in 0..<128 { t[c] = classify(UInt32(c)).rawValue }
        return t
    }()

    @inline(__always)
    static func of(_ scalar: UInt32, _ table: UnsafeMutablePointer<UInt8>) -> CharacterClass {
        let cached = table[Int(scalar)]
        if cached != 0 { return CharacterClass(rawValue: cached).unsafelyUnwrapped }
        let c = classify(scalar)
        table[Int(scalar)] = c.rawValue
        return c
    }

    static func classify(_ value: UInt32) -> CharacterClass {
        guard let s = Unicode.Scalar(value) else { return .other }
        let p = s.properties
        if p.isWhitespace { return .whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
}

/// Decodes the UTF-8 scalar at `i` (input is valid UTF-8): (scalar value, byte length).
@inline(__always)
func decodeScalar(_ b: UnsafePointer<UInt8>, _ i: Int) -> (UInt32, Int) {
    let c0 = UInt32(b[i])
    if c0 < 0x80 { return (c0, 1) }
    if c0 < 0xE0 { return ((c0 & 0x1F) << 6 | UInt32(b[i + 1]) & 0x3F, 2) }
    if c0 < 0xF0 { return ((c0 & 0x0F) << 12 | (UInt32(b[i + 1]) & 0x3F) << 6 | UInt32(b[i + 2]) & 0x3F, 3) }
    return ((c0 & 0x07) << 18 | (UInt32(b[i + 1]) & 0x3F) << 12 | (UInt32(b[i + 2]) & 0x3F) << 6 | UInt32(b[i + 3]) & 0x3F, 4)
}

/// Byte length of the UTF-8 sequence that starts with `lead`.
@inline(__always)
func scalarLength(_ lead: UInt8) -> Int { lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4 }
