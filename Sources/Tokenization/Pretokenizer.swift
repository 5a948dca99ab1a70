/// Pre-tokenization: cutting text into the pieces that BPE then encodes one by one.
///
/// Hand-written scanners that match the regular expressions exactly (no regex engine in the hot
/// path). They walk UTF-8 bytes and return piece boundaries.
///
/// GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// GPT-4 (cl100k):  '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+
/// GPT-2 with single digits (SmolLM, StarCoder; llama.cpp's pre-tokenizer "smollm"): every \p{N}
///   scalar is a piece of its own, and the text between digits is split by GPT-2's pattern as if
///   it were a whole text (so a space before a digit is a piece of its own too).
public enum SplitPattern: String, Codable, Sendable, CaseIterable {
    case gpt2, gpt4, gpt2Digits

    /// The regular expression this scanner implements (saved with trained tokenizers).
    public var regex: String {
        switch self {
        case .gpt2: return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .gpt4: return #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#
        case .gpt2Digits: return #"\p{N} then 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        }
    }

    /// Finds the pattern for a regular expression string, if it is one of ours.
    public init?(regex: String) {
        guard let p = SplitPattern.allCases.first(where: { $0.regex == regex }) else { return nil }
        self = p
    }

    /// Calls `body` with the byte range of every piece of `bytes` (valid UTF-8), in order.
    @inline(__always)
    public func split(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        guard let base = bytes.baseAddress else { return }
        let n = bytes.count
        let t = CharacterClass.table
        var i = 0
        switch self {
        case .gpt2:
            while i < n { let end = gpt2Piece(base, i, n, t); body(i..<end); i = end }
        case .gpt4:
            while i < n { let end = gpt4Piece(base, i, n, t); body(i..<end); i = end }
        case .gpt2Digits:
            while i < n {
                let (cls, len) = classAt(base, i, t)
                if cls == .number { body(i..<(i + len)); i += len; continue }
                var segmentEnd = i + len                  // the run of non-digits is split as a text of its own
                while segmentEnd < n, classAt(base, segmentEnd, t).0 != .number { segmentEnd += classAt(base, segmentEnd, t).1 }
                while i < segmentEnd { let end = gpt2Piece(base, i, segmentEnd, t); body(i..<end); i = end }
            }
        }
    }

    /// The pieces of a string, as strings (for display and tests).
    public func pieces(_ text: String) -> [String] {
        var out: [String] = []
        var copy = text
        copy.withUTF8 { buf in
            split(buf) { r in out.append(String(decoding: UnsafeBufferPointer(rebasing: buf[r]), as: UTF8.self)) }
        }
        return out
    }
}

@inline(__always)
private func classAt(_ b: UnsafePointer<UInt8>, _ i: Int, _ t: UnsafeMutablePointer<UInt8>) -> (CharacterClass, Int) {
    if b[i] < 0x80 { return (CharacterClass(rawValue: t[Int(b[i])]).unsafelyUnwrapped, 1) }
    let (s, len) = decodeScalar(b, i)
    return (CharacterClass.of(s, t), len)
}

/// End of the run of scalars of class `c` starting at `i`.
@inline(__always)
private func run(_ b: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ c: CharacterClass, _ t: UnsafeMutablePointer<UInt8>) -> Int {
    var j = i
    while j < n {
        let (cls, len) = classAt(b, j, t)
        if cls != c { break }
        j += len
    }
    return j
}

/// End of the whitespace piece starting at `i` under `\s+(?!\S)|\s+`: a run that ends the text is
/// taken whole; a run followed by other text leaves its last scalar to start the next piece,
/// unless it is a single scalar.
@inline(__always)
private func whitespacePiece(_ b: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ t: UnsafeMutablePointer<UInt8>) -> Int {
    var j = i, last = i
    while j < n {
        let (cls, len) = classAt(b, j, t)
        if cls != .whitespace { break }
        last = j
        j += len
    }
    if j == n || last == i { return j }
    return last
}

@inline(__always)
private func gpt2Piece(_ b: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ t: UnsafeMutablePointer<UInt8>) -> Int {
    let c = b[i]
    // 's 't 'm 'd 're 've 'll
    if c == 0x27, i + 1 < n {
        let c1 = b[i + 1]
        if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + 2 }
        if i + 2 < n {
            let c2 = b[i + 2]
            if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return i + 3 }
        }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    let j = (c == 0x20 && i + 1 < n) ? i + 1 : i
    let (cls, _) = classAt(b, j, t)
    if cls != .whitespace { return run(b, j, n, cls, t) }
    // \s+(?!\S) | \s+  (also a space followed by whitespace)
    return whitespacePiece(b, i, n, t)
}

@inline(__always)
private func isCRLF(_ c: UInt8) -> Bool { c == 0x0D || c == 0x0A }

@inline(__always)
private func gpt4Piece(_ b: UnsafePointer<UInt8>, _ i: Int, _ n: Int, _ t: UnsafeMutablePointer<UInt8>) -> Int {
    let c = b[i]
    // '(?i:[sdmt]|ll|ve|re)
    if c == 0x27, i + 1 < n {
        let c1 = b[i + 1] | 0x20   // ASCII lower case (only compared with letters)
        if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + 2 }
        if i + 2 < n {
            let c2 = b[i + 2] | 0x20
            if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return i + 3 }
        }
    }
    let (cls, len) = classAt(b, i, t)
    // [^\r\n\p{L}\p{N}]?+\p{L}+
    if cls == .letter { return run(b, i, n, .letter, t) }
    if cls != .number && !isCRLF(c) && i + len < n {
        let (next, _) = classAt(b, i + len, t)
        if next == .letter { return run(b, i + len, n, .letter, t) }
    }
    // \p{N}{1,3}
    if cls == .number {
        var j = i, k = 0
        while j < n && k < 3 {
            let (cl, l) = classAt(b, j, t)
            if cl != .number { break }
            j += l; k += 1
        }
        return j
    }
    // ' ?[^\s\p{L}\p{N}]++[\r\n]*'
    var j = -1
    if cls == .other { j = i } else if c == 0x20 && i + 1 < n && classAt(b, i + 1, t).0 == .other { j = i + 1 }
    if j >= 0 {
        var e = run(b, j, n, .other, t)
        while e < n && isCRLF(b[e]) { e += 1 }
        return e
    }
    // \s*[\r\n]: through the last \r or \n of the whitespace run
    var e = i, lastNewline = -1
    while e < n {
        let (cl, l) = classAt(b, e, t)
        if cl != .whitespace { break }
        if isCRLF(b[e]) { lastNewline = e }
        e += l
    }
    if lastNewline >= 0 { return lastNewline + 1 }
    // \s+(?!\S) | \s+
    return whitespacePiece(b, i, n, t)
}
