/// Decodes ids one at a time for streaming output: returns the text that is complete so far and
/// holds back the bytes of a UTF-8 character that the next token will finish.
public struct StreamingDecoder {
    public let tokenizer: any TextTokenizer
    private var pending: [UInt8] = []

    public init(_ tokenizer: any TextTokenizer) { self.tokenizer = tokenizer }

    /// Adds one token; returns the newly completed text (possibly empty).
    public mutating func push(_ id: UInt32) throws(TokenizerError) -> String {
        guard let bytes = tokenizer.tokenBytes(id) else {
            throw .unknownId(id: Int(id), position: 0, vocabularySize: tokenizer.vocabularySize)
        }
        pending += bytes
        let keep = incompleteTail(pending)
        let ready = pending[..<(pending.count - keep)]
        let text = String(decoding: ready, as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Whatever is left (an unfinished character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many bytes at the end start a UTF-8 sequence that is not yet complete.
    private func incompleteTail(_ b: [UInt8]) -> Int {
        var k = 1
        while k <= min(3, b.count) {
            let c = b[b.count - k]
            if c & 0xC0 != 0x80 {                       // a lead byte (or ASCII)
                let need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1
                return need > k ? k : 0
            }
            k += 1
        }
        return 0
    }
}
