/// A tokenizer from the vocabulary that a GGUF model file carries in its metadata (read by the
/// GGUF reader in Models, which hands the arrays over):
///
///   tokenizer.ggml.model       "gpt2": byte-level BPE (the only kind supported here)
///   tokenizer.ggml.tokens      [string]  token strings in GPT-2's byte-to-character spelling
///   tokenizer.ggml.merges      [string]  "left right", highest priority first
///   tokenizer.ggml.token_type  [int32]   1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
///   tokenizer.ggml.pre         string    which split pattern (llama.cpp's names)
///
/// Control and user-defined tokens (ChatML's <|im_start|>, <|im_end|>, <|endoftext|>) become
/// special tokens, spelled as their text.
extension Tokenizer {
    public static func fromGGUF(model: String, tokens: [String], merges: [String], tokenTypes: [Int32]?,
                                pre: String?) throws(TokenizerError) -> Tokenizer {
        func fail(_ m: String) -> TokenizerError { .file(path: "GGUF tokenizer", line: nil, message: m) }
        guard model == "gpt2" else { throw fail("tokenizer.ggml.model \"\(model)\" is not supported (only \"gpt2\", byte-level BPE)") }
        if let tokenTypes, tokenTypes.count != tokens.count {
            throw fail("tokenizer.ggml.token_type has \(tokenTypes.count) entries for \(tokens.count) tokens")
        }
        let pattern: SplitPattern
        switch pre ?? "default" {
        case "default", "gpt2", "gpt-2", "mpt", "olmo", "jais": pattern = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva": pattern = .gpt2Digits
        case "llama3", "llama-bpe", "dbrx", "smaug-bpe": pattern = .gpt4
        case let other: throw fail("tokenizer.ggml.pre \"\(other)\" is not supported (known: gpt2, smollm, llama-bpe and their aliases)")
        }
        let decodeTable = byteLevelDecodeTable()
        var byteTokens: [[UInt8]] = []
        byteTokens.reserveCapacity(tokens.count)
        var specials: [String: UInt32] = [:]
        var ids: [String: UInt32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, s) in tokens.enumerated() {
            ids[s] = UInt32(i)
            let type = tokenTypes?[i] ?? 1
            if type == 3 || type == 4 {                        // control / user-defined: spelled as its text
                specials[s] = UInt32(i)
                byteTokens.append(Array(s.utf8))
                continue
            }
            guard let bytes = byteLevelBytes(s, decodeTable) else { throw fail("token \(i) \(s.debugDescription) is not byte-level") }
            byteTokens.append(bytes)
        }
        var pairs: [(UInt32, UInt32)] = []
        pairs.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() {
            let parts = m.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = ids[String(parts[0])], let b = ids[String(parts[1])] else {
                throw fail("merge \(i) \(m.debugDescription) does not name two known tokens")
            }
            pairs.append((a, b))
        }
        return Tokenizer(pattern: pattern, bpe: try BytePairEncoder(tokens: byteTokens, merges: pairs, allowMissingBytes: true), specialTokens: specials)
    }
}
