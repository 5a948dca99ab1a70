import Foundation

/// The character-level baseline: one id per Unicode scalar seen in the training text (sorted by
/// scalar value), after id 0 which stands for any scalar not seen. Simple and lossless on its own
/// alphabet, but a text needs about four times as many tokens as with GPT-2's BPE.
public struct CharTokenizer: Codable, Sendable {
    /// The scalars of ids 1, 2, …
    public let alphabet: [UInt32]
    private let index: [UInt32: UInt32]
    public static let unknownId: UInt32 = 0

    public init(training text: String) {
        alphabet = Set(text.unicodeScalars.map(\.value)).sorted()
        index = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($0.element, UInt32($0.offset + 1)) })
    }

    public var vocabularySize: Int { alphabet.count + 1 }

    public func encode(_ text: String) -> [UInt32] { text.unicodeScalars.map { index[$0.value] ?? Self.unknownId } }

    /// Unknown ids decode to U+FFFD.
    public func decode(_ ids: [UInt32]) throws(TokenizerError) -> String {
        var s = String.UnicodeScalarView()
        for (pos, id) in ids.enumerated() {
            if id == Self.unknownId { s.append("\u{FFFD}"); continue }
            guard Int(id) <= alphabet.count else { throw .unknownId(id: Int(id), position: pos, vocabularySize: vocabularySize) }
            s.append(Unicode.Scalar(alphabet[Int(id) - 1])!)
        }
        return String(s)
    }

    enum CodingKeys: String, CodingKey { case alphabet }
    public init(from decoder: Decoder) throws {
        alphabet = try decoder.container(keyedBy: CodingKeys.self).decode([UInt32].self, forKey: .alphabet)
        index = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($0.element, UInt32($0.offset + 1)) })
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(alphabet, forKey: .alphabet)
    }
}
