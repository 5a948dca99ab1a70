/// SentencePiece's text normalization, applied before a model segments text:
///
/// 1. Rules from the precompiled charsmap (NFKC and the like): at each position the longest
///    prefix that is a key of the map is replaced by its normalized string; a position no key
///    matches keeps its one UTF-8 character (a byte that is not valid UTF-8 becomes U+FFFD).
///    User-defined pieces are copied unchanged.
/// 2. Whitespace: leading, trailing and repeated spaces dropped (`remove_extra_whitespaces`), a
///    space added in front (`add_dummy_prefix`; at the end with `treat_whitespace_as_suffix`),
///    and every space written as `▁` U+2581 (`escape_whitespaces`).
///
/// The charsmap blob is `<uint32 little-endian trie size><Darts double-array trie><normalized
/// strings, each ending in NUL>`; a trie value is the offset of a key's string in the second part.
struct SentencePieceNormalizer: Sendable {
    let charsmap: CharsMap?
    let addDummyPrefix: Bool
    let removeExtraWhitespaces: Bool
    let escapeWhitespaces: Bool
    let treatWhitespaceAsSuffix: Bool
    /// User-defined pieces, matched (longest first) before the charsmap and left as they are.
    let userDefined: PieceTrie?
    /// ASCII bytes that start no rule and no user-defined piece: copied (a space written as ▁).
    private let plain: [Bool]
    /// ASCII bytes whose rules all continue with a non-ASCII byte (a letter and a combining
    /// accent): copied too when followed by ASCII.
    private let plainBeforeASCII: [Bool]

    init(spec: SentencePieceModelFile.NormalizerSpec, treatWhitespaceAsSuffix: Bool, userDefined: PieceTrie?) throws(TokenizerError) {
        charsmap = spec.precompiledCharsmap.isEmpty ? nil : try CharsMap(blob: spec.precompiledCharsmap)
        addDummyPrefix = spec.addDummyPrefix
        removeExtraWhitespaces = spec.removeExtraWhitespaces
        escapeWhitespaces = spec.escapeWhitespaces
        self.treatWhitespaceAsSuffix = treatWhitespaceAsSuffix
        self.userDefined = userDefined
        var plain = [Bool](repeating: false, count: 256), plainBeforeASCII = plain
        for c in 0..<128 {
            let byte = UInt8(c)
            let noUserDefined = userDefined.map { $0.child(0, byte) < 0 } ?? true
            plain[c] = noUserDefined && charsmap?.startsKey(byte) != true
            plainBeforeASCII[c] = noUserDefined && charsmap?.onlyNonASCIIAfter(byte) != false
        }
        self.plain = plain
        self.plainBeforeASCII = plainBeforeASCII
    }

    /// The normalized bytes of `input`, written to `out` (which is cleared first).
    func normalize(_ input: UnsafeBufferPointer<UInt8>, into out: ByteBuffer) {
        out.removeAll()
        guard let base = input.baseAddress, !input.isEmpty else { return }
        let n = input.count
        var i = 0
        if removeExtraWhitespaces {                     // leading spaces (after normalization) go
            while i < n {
                let (s, len) = prefix(base + i, n - i)
                guard s.count == 1, s[0] == 0x20 else { break }
                i += len
            }
        }
        if i == n { return }
        out.reserve(n - i + (n - i) / 2 + 8)
        let space: [UInt8] = escapeWhitespaces ? [0xE2, 0x96, 0x81] : [0x20]
        if !treatWhitespaceAsSuffix && addDummyPrefix { out.append(space) }
        var previousWasSpace = removeExtraWhitespaces
        while i < n {
            let c = base[i]
            if plain[Int(c)] || (plainBeforeASCII[Int(c)] && (i + 1 == n || base[i + 1] < 0x80)) {   // ASCII as itself
                out.reserve(3)
                if c == 0x20 {
                    if !previousWasSpace { out.appendUnchecked(space) }
                    previousWasSpace = removeExtraWhitespaces
                } else {
                    out.appendUnchecked(c)
                    previousWasSpace = false
                }
                i += 1
                continue
            }
            let (s, len) = prefix(base + i, n - i)
            var k = 0
            if previousWasSpace { while k < s.count && s[k] == 0x20 { k += 1 } }
            if k < s.count {
                out.reserve(3 * (s.count - k))
                for j in k..<s.count {
                    if s[j] == 0x20 { out.appendUnchecked(space) } else { out.appendUnchecked(s[j]) }
                }
                previousWasSpace = s[s.count - 1] == 0x20
            }
            i += len
            if !removeExtraWhitespaces { previousWasSpace = false }
        }
        if removeExtraWhitespaces {
            while out.hasSuffix(space) { out.count -= space.count }
        }
        if treatWhitespaceAsSuffix && addDummyPrefix { out.append(space) }
    }

    /// The normalized form of the longest rule matching at `p` and how many input bytes it covers.
    @inline(__always)
    private func prefix(_ p: UnsafePointer<UInt8>, _ n: Int) -> (UnsafeBufferPointer<UInt8>, Int) {
        if let userDefined, let (length, _) = userDefined.longestMatch(p, n) {
            return (UnsafeBufferPointer(start: p, count: length), length)
        }
        if let charsmap, let (length, value) = charsmap.longestMatch(p, n) {
            return (charsmap.normalizedString(at: value), length)
        }
        let length = validUTF8Length(p, n)
        if length == 0 { return (Self.replacement, 1) }
        return (UnsafeBufferPointer(start: p, count: length), length)
    }

    private static let replacement: UnsafeBufferPointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 3)
        p[0] = 0xEF; p[1] = 0xBF; p[2] = 0xBD
        return UnsafeBufferPointer(start: p, count: 3)
    }()
}

/// The byte length of the valid UTF-8 character at `p` (as sentencepiece decodes it: no
/// surrogates, no overlong forms), or 0 when the bytes there are not one.
@inline(__always)
func validUTF8Length(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
    let c = p[0]
    if c < 0x80 { return 1 }
    @inline(__always) func trail(_ k: Int) -> UInt32? { p[k] & 0xC0 == 0x80 ? UInt32(p[k] & 0x3F) : nil }
    if c & 0xE0 == 0xC0, n >= 2, let a = trail(1) {
        return (UInt32(c & 0x1F) << 6 | a) >= 0x80 ? 2 : 0
    }
    if c & 0xF0 == 0xE0, n >= 3, let a = trail(1), let b = trail(2) {
        let v = UInt32(c & 0x0F) << 12 | a << 6 | b
        return v >= 0x800 && !(0xD800...0xDFFF).contains(v) ? 3 : 0
    }
    if c & 0xF8 == 0xF0, n >= 4, let a = trail(1), let b = trail(2), let d = trail(3) {
        let v = UInt32(c & 0x07) << 18 | a << 12 | b << 6 | d
        return v >= 0x10000 && v <= 0x10FFFF ? 4 : 0
    }
    return 0
}

/// The length of the UTF-8 character starting with byte `c`, from its lead byte alone (1 for a
/// stray continuation byte), as sentencepiece and llama.cpp split text into characters.
@inline(__always)
func utf8LeadLength(_ c: UInt8) -> Int {
    c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4
}

/// A precompiled charsmap: a Darts-clone double-array trie over the rule keys, and their
/// NUL-terminated replacement strings. Checked when loaded (as Darts' `validate` does), so a
/// lookup never leaves the arrays.
final class CharsMap: @unchecked Sendable {
    private let units: UnsafeMutableBufferPointer<UInt32>
    private let strings: UnsafeMutableBufferPointer<UInt8>
    /// Bytes that start at least one key (any other byte is copied without a trie walk).
    private let firstByte: [Bool]

    init(blob: [UInt8]) throws(TokenizerError) {
        func bad(_ m: String) -> TokenizerError { .invalidVocabulary("precompiled_charsmap: \(m)") }
        guard blob.count > 4 else { throw bad("\(blob.count) bytes, too short for its header") }
        let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieSize < blob.count - 4 else { throw bad("the trie (\(trieSize) bytes) is longer than the \(blob.count - 4) bytes after the header") }
        guard trieSize >= 1024, trieSize % 1024 == 0 else { throw bad("the trie size \(trieSize) is not a multiple of 1024") }
        var units = [UInt32](repeating: 0, count: trieSize / 4)
        for k in 0..<units.count {
            let o = 4 + 4 * k
            units[k] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        let strings = Array(blob[(4 + trieSize)...])
        guard strings.last == 0 else { throw bad("the normalized strings do not end in NUL") }
        // Darts' validate(): every child slot of a non-leaf unit, and every leaf value, is in range.
        let size = units.count
        guard Self.label(units[0]) == 0, !Self.hasLeaf(units[0]), Self.offset(units[0]) != 0,
              Int(Self.offset(units[0]) | 0xFF) < size else { throw bad("the trie's root is invalid") }
        for i in 1..<size {
            let u = units[i]
            if Self.label(u) <= 0xFF {
                guard Int((UInt32(i) ^ Self.offset(u)) | 0xFF) < size else { throw bad("trie unit \(i) points outside the trie") }
                if Self.hasLeaf(u) && Self.label(units[i ^ Int(Self.offset(u))]) <= 0xFF {
                    throw bad("trie unit \(i) has a leaf that is not one")
                }
            } else if Int(Self.value(u)) >= strings.count {
                throw bad("trie unit \(i) points past the normalized strings")
            }
        }
        var first = [Bool](repeating: false, count: 256)
        let root = Self.offset(units[0])
        for b in 0..<256 where Self.label(units[Int(root ^ UInt32(b))]) == UInt32(b) { first[b] = true }
        firstByte = first
        self.units = .allocate(capacity: units.count)
        _ = self.units.initialize(from: units)
        self.strings = .allocate(capacity: strings.count)
        _ = self.strings.initialize(from: strings)
    }

    deinit {
        units.deallocate()
        strings.deallocate()
    }

    /// Whether some key starts with byte `c`.
    func startsKey(_ c: UInt8) -> Bool { firstByte[Int(c)] }

    /// Whether no key is `c` alone and every key starting with `c` goes on with a byte >= 0x80.
    func onlyNonASCIIAfter(_ c: UInt8) -> Bool {
        var one = [c, 0]
        for b in 0..<128 {
            one[1] = UInt8(b)
            let matched = one.withUnsafeBufferPointer { longestMatch($0.baseAddress!, 2) }
            if matched != nil { return false }
        }
        return true
    }

    @inline(__always) static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) static func value(_ u: UInt32) -> UInt32 { u & ((1 << 31) - 1) }
    @inline(__always) static func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
    @inline(__always) static func offset(_ u: UInt32) -> UInt32 { (u >> 10) << ((u & (1 << 9)) >> 6) }

    /// The longest key that prefixes p[0..<n]: (its length, its value). Like sentencepiece, only
    /// the first 32 keys found along the way are considered.
    @inline(__always)
    func longestMatch(_ p: UnsafePointer<UInt8>, _ n: Int) -> (Int, Int)? {
        guard firstByte[Int(p[0])] else { return nil }
        let a = units
        var node = Self.offset(a[0])
        var best: (Int, Int)? = nil
        var found = 0
        for i in 0..<n {
            let c = UInt32(p[i])
            node ^= c
            let u = a[Int(node)]
            if Self.label(u) != c { break }
            node ^= Self.offset(u)
            if Self.hasLeaf(u) {
                found += 1
                if found <= 32 { best = (i + 1, Int(Self.value(a[Int(node)]))) }
            }
        }
        return best
    }

    /// The NUL-terminated string at `offset` (validated to lie inside the strings).
    @inline(__always)
    func normalizedString(at offset: Int) -> UnsafeBufferPointer<UInt8> {
        var e = offset
        while strings[e] != 0 { e += 1 }
        return UnsafeBufferPointer(start: strings.baseAddress! + offset, count: e - offset)
    }
}

/// A growable byte buffer written through a pointer (the normalized text of each call).
final class ByteBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    var count = 0
    private var capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    func removeAll() { count = 0 }

    /// Room for `extra` more bytes.
    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private func grow(_ needed: Int) {
        let bigger = max(needed, capacity * 2)
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        p.update(from: base, count: count)
        base.deallocate()
        base = p
        capacity = bigger
    }

    /// Appends a byte; room must have been reserved.
    @inline(__always)
    func appendUnchecked(_ b: UInt8) { base[count] = b; count += 1 }

    @inline(__always)
    func appendUnchecked(_ bytes: [UInt8]) { for b in bytes { base[count] = b; count += 1 } }

    func append(_ b: UInt8) { reserve(1); appendUnchecked(b) }

    func append(_ bytes: [UInt8]) { reserve(bytes.count); appendUnchecked(bytes) }

    func hasSuffix(_ bytes: [UInt8]) -> Bool {
        guard count >= bytes.count else { return false }
        for (k, b) in bytes.enumerated() where base[count - bytes.count + k] != b { return false }
        return true
    }

    var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }
}
