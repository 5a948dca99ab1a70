import Foundation
import Testing
import Tokenization

@Suite struct TokenizerBehaviour {
    @Test func disallowedSpecialTokenIsAnErrorNamingItAndItsOffset() throws {
        let gpt2 = try GPT2.require()
        #expect(throws: TokenizerError.disallowedSpecial(token: "<|endoftext|>", offset: 6)) {
            try gpt2.encode("hello <|endoftext|>")
        }
        #expect(try gpt2.encode("hello <|endoftext|>", allowedSpecial: .all) == [31373, 220, 50256])
        #expect(try gpt2.encode("a<|endoftext|>", disallowedSpecial: .none) == gpt2.encodeOrdinary("a<|endoftext|>"))
        #expect(gpt2.encodeOrdinary("<|endoftext|>").count > 1)
        #expect(try gpt2.encode("x", allowedSpecial: .only(["<|endoftext|>"])) == [87])
    }

    @Test func unknownIdIsAnErrorNamingItAndItsPosition() throws {
        let gpt2 = try GPT2.require()
        #expect(throws: TokenizerError.unknownId(id: 60000, position: 1, vocabularySize: 50257)) {
            try gpt2.decode([31373, 60000])
        }
    }

    /// "é" precomposed and "e" + U+0301 are equal Swift Strings but different bytes and tokens.
    @Test func canonicallyEquivalentTextGetsDifferentTokens() throws {
        let gpt2 = try GPT2.require()
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        #expect(nfc == nfd)
        #expect(gpt2.encodeOrdinary(nfc) != gpt2.encodeOrdinary(nfd))
        #expect(try gpt2.decodeBytes(gpt2.encodeOrdinary(nfd)) == Array(nfd.utf8))
    }

    @Test func streamingDecoderHoldsBackIncompleteCharacters() throws {
        let gpt2 = try GPT2.require()
        let text = "naïve 👩‍👩‍👧 日本語 ok"
        let ids = gpt2.encodeOrdinary(text)
        var decoder = StreamingDecoder(gpt2)
        var pieces: [String] = []
        for id in ids { pieces.append(try decoder.push(id)) }
        pieces.append(decoder.finish())
        #expect(pieces.joined() == text)
        #expect(!pieces.contains { $0.contains("\u{FFFD}") })
    }

    @Test func batchEncodingEqualsOneByOne() throws {
        let gpt2 = try GPT2.require()
        let texts = (0..<50).map { "document \($0): " + String(repeating: "word\($0 % 7) ", count: $0) }
        #expect(gpt2.encodeOrdinaryBatch(texts, threads: 2) == texts.map { gpt2.encodeOrdinary($0) })
    }

    /// A long text cut at piece boundaries and encoded on several threads gives the same ids.
    @Test func parallelEncodingOfOneLongTextEqualsSequential() throws {
        let gpt2 = try GPT2.require()
        var text = String(repeating: sampleText + "\n\n  \t", count: 300)
        #expect(text.utf8.count > 1 << 17)
        let sequential = gpt2.encodeOrdinary(text)
        let parallel = text.withUTF8 { gpt2.encodeOrdinaryParallel(utf8: $0, threads: 3) }
        #expect(parallel == sequential)
    }

    /// Random Unicode strings (emoji ZWJ sequences, combining marks, CJK, RTL, controls) round-trip
    /// exactly through GPT-2 and through a trained tokenizer.
    @Test func randomUnicodeRoundTrips() throws {
        let gpt2 = try GPT2.require()
        let trained = try BPETrainer(vocabularySize: 400, pattern: .gpt4).train([Array(sampleText.utf8)])
        var rng = SystemRandomNumberGenerator()
        let pools: [[UInt32]] = [
            Array(0x20...0x7E), [0x0, 0x1, 0x7, 0x9, 0xA, 0xB, 0xC, 0xD, 0x1B, 0x7F, 0x85, 0xA0, 0x2028, 0x200B, 0x3000],
            Array(0x300...0x36F), Array(0x4E00...0x4E80), Array(0x5D0...0x5EA), Array(0x627...0x64A),
            [0x1F469, 0x200D, 0x1F467, 0x1F3FD, 0xFE0F, 0x1F1FA, 0x1F1F8, 0x20E3], Array(0x900...0x97F), Array(0xE01...0xE5B),
        ]
        for _ in 0..<300 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                let pool = pools.randomElement(using: &rng)!
                s.append(Unicode.Scalar(pool.randomElement(using: &rng)!)!)
            }
            let text = String(s)
            #expect(try gpt2.decodeBytes(gpt2.encodeOrdinary(text)) == Array(text.utf8))
            #expect(try trained.decodeBytes(trained.encodeOrdinary(text)) == Array(text.utf8))
        }
    }
}

let sampleText = """
The quick brown fox jumps over the lazy dog. The dog doesn't mind; it's sleeping.
Numbers: 12345, 3.14159, 2026-11-25. Code: for i in range(10): print(i ** 2)
Émile's café serves crème brûlée. 日本語のテキスト。 שלום עולם. مرحبا بالعالم. 👩‍👩‍👧 🇺🇸
""" + String(repeating: "the theory of the thing is that these are there then. ", count: 20)
