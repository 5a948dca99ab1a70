import Foundation
import Testing
import Tokenization

/// GPT-2 ids against tiktoken (fixture from scripts/fixtures/make_tokenizer_fixtures.py).
@Suite struct TiktokenParity {
    struct Case: Sendable, CustomTestStringConvertible {
        let index: Int, text: String, ordinary: [UInt32], allSpecial: [UInt32]
        var testDescription: String { "#\(index) " + String(text.unicodeScalars.prefix(24).map { $0.escaped(asASCII: true) }.joined()) }
    }

    static let cases: [Case] = {
        guard let root = try? loadJSON("gpt2_encodings.json"), let list = root["cases"] as? [[String: Any]] else { return [] }
        return list.enumerated().map { i, c in
            Case(index: i, text: c["text"] as! String, ordinary: (c["ordinary"] as! [Int]).map(UInt32.init),
                 allSpecial: (c["all_special"] as! [Int]).map(UInt32.init))
        }
    }()

    @Test func fixtureHasHundredsOfCases() { #expect(Self.cases.count >= 200) }

    @Test(arguments: cases)
    func sameIdsAsTiktoken(_ c: Case) throws {
        let gpt2 = try GPT2.require()
        #expect(gpt2.encodeOrdinary(c.text) == c.ordinary)
        #expect(try gpt2.encode(c.text, allowedSpecial: .all) == c.allSpecial)
        #expect(try gpt2.decode(c.ordinary) == c.text)
        #expect(try gpt2.decodeBytes(c.allSpecial) == Array(c.text.utf8))
    }
}

/// Our split scanners against the Python `regex` module running the same patterns.
@Suite struct PretokenizerParity {
    static func cases(_ pattern: String) -> [(String, [String])] {
        guard let root = try? loadJSON("pretokenizer_splits.json"), let list = root[pattern] as? [[String: Any]] else { return [] }
        return list.map { ($0["text"] as! String, $0["pieces"] as! [String]) }
    }

    @Test(arguments: [SplitPattern.gpt2, .gpt4])
    func piecesMatchTheRegex(_ pattern: SplitPattern) {
        let cases = Self.cases(pattern.rawValue)
        #expect(cases.count >= 200)
        var failures = 0
        for (text, pieces) in cases {
            let ours = pattern.pieces(text)
            // Compare as bytes: Swift's String == would merge canonically equivalent text.
            if ours.map({ Array($0.utf8) }) != pieces.map({ Array($0.utf8) }) {
                failures += 1
                if failures <= 5 { Issue.record("\(pattern): \(text.debugDescription) → ours \(ours.debugDescription), regex \(pieces.debugDescription)") }
            }
        }
        #expect(failures == 0)
    }
}
