/// What every tokenizer the project runs offers to the rest of the pipeline (models, generation,
/// fine-tuning data, the CLI): text ⇄ ids and the bytes behind each id. Two kinds implement it:
/// `Tokenizer` (split pattern + byte-level BPE: GPT-2, SmolLM2, Llama 3, our own trained ones)
/// and `SentencePieceTokenizer` (Gemma, Llama 2, `.model` files: BPE or Unigram over `▁`-spelled
/// pieces with byte fallback).
public protocol TextTokenizer: AnyObject, Sendable {
    /// Ids run 0..<vocabularySize.
    var vocabularySize: Int { get }
    /// Tokens that `encode` may produce from their text when allowed (control tokens), by id order.
    var specialTokens: [(text: String, id: UInt32)] { get }
    func specialTokenId(_ text: String) -> UInt32?
    /// Everything is text: a special token's spelling becomes ordinary tokens.
    func encodeOrdinary(_ text: String) -> [UInt32]
    /// Allowed special-token text becomes its id; text spelling a disallowed one is an error.
    func encode(_ text: String, allowedSpecial: SpecialTokenPolicy, disallowedSpecial: SpecialTokenPolicy) throws(TokenizerError) -> [UInt32]
    /// The bytes one token stands for when decoded on its own (nil: not an id of this vocabulary).
    func tokenBytes(_ id: UInt32) -> [UInt8]?
    /// Concatenated bytes; an unknown id is an error naming it and its position.
    func decodeBytes(_ ids: [UInt32]) throws(TokenizerError) -> [UInt8]
    /// The token as its vocabulary spells it, for display (`▁` for a SentencePiece space).
    func piece(_ id: UInt32) -> String?
}

extension TextTokenizer {
    public func encode(_ text: String, allowedSpecial: SpecialTokenPolicy = .none) throws(TokenizerError) -> [UInt32] {
        try encode(text, allowedSpecial: allowedSpecial, disallowedSpecial: .all)
    }

    /// Decoded text; bytes that are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: [UInt32]) throws(TokenizerError) -> String {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }
}

extension Tokenizer: TextTokenizer {
    /// A special token as its text; any other token in GPT-2's byte-to-character spelling (`Ġ` for a space).
    public func piece(_ id: UInt32) -> String? {
        if let s = specialTokens.first(where: { $0.id == id }) { return s.text }
        guard Int(id) < bpe.count else { return nil }
        return bpe.tokenBytes(id).map { byteLevelSpelling[Int($0)] }.joined()
    }
}

/// Byte → its character in GPT-2's byte-level alphabet.
let byteLevelSpelling: [String] = {
    var spelled = [String](repeating: "", count: 256)
    for (scalar, byte) in byteLevelDecodeTable() { spelled[Int(byte)] = String(UnicodeScalar(scalar)!) }
    return spelled
}()
