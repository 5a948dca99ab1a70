import Foundation

/// tiktoken's ranks file: one token per line, `base64(token bytes) rank`, ranks 0, 1, 2, …
public enum TiktokenFile {
    /// The tokens in rank order.
    public static func read(_ path: String) throws(TokenizerError) -> [[UInt8]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .file(path: path, line: nil, message: "cannot read the file")
        }
        var tokens: [[UInt8]] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.isEmpty { continue }
            let parts = line.split(separator: UInt8(ascii: " "))
            guard parts.count == 2, let b64 = String(bytes: parts[0], encoding: .ascii),
                  let bytes = Data(base64Encoded: b64), let rankText = String(bytes: parts[1], encoding: .ascii),
                  let rank = Int(rankText.trimmingCharacters(in: .whitespaces)) else {
                throw .file(path: path, line: lineNumber, message: "expected 'base64-token rank'")
            }
            guard rank == tokens.count else {
                throw .file(path: path, line: lineNumber, message: "rank \(rank) where \(tokens.count) was expected (ranks must run 0, 1, 2, …)")
            }
            tokens.append(Array(bytes))
        }
        return tokens
    }

    /// Writes tokens in rank order (temporary file, then rename).
    public static func write(_ tokens: [[UInt8]], to path: String) throws {
        var text = ""
        for (rank, t) in tokens.enumerated() { text += Data(t).base64EncodedString() + " \(rank)\n" }
        try atomicWrite(Data(text.utf8), to: path)
    }
}

/// Writes data to a temporary file in the same folder and renames it into place.
public func atomicWrite(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    try data.write(to: tmp)
    guard rename(tmp.path, path) == 0 else {     // POSIX rename: atomic, replaces an existing file
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw TokenizerError.file(path: path, line: nil, message: "cannot write: \(reason)")
    }
}

extension Tokenizer {
    /// GPT-2's tokenizer from tiktoken's `gpt2.tiktoken` ranks file.
    public static func gpt2(ranksFile path: String) throws(TokenizerError) -> Tokenizer {
        let tokens = try TiktokenFile.read(path)
        guard tokens.count == 50256 else {
            throw .file(path: path, line: nil, message: "\(tokens.count) tokens; GPT-2 has 50256 (+ <|endoftext|>)")
        }
        return Tokenizer(pattern: .gpt2, bpe: try BytePairEncoder(tokens: tokens), specialTokens: ["<|endoftext|>": 50256])
    }
}
