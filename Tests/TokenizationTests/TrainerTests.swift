import Foundation
import Testing
@testable import Tokenization

/// The fast trainer against a deliberately naive one: recount every pair after every merge.
func naiveMerges(_ pieces: [(bytes: [UInt8], count: Int)], merges wanted: Int) -> [(UInt32, UInt32)] {
    var words = pieces.map { $0.bytes.map(UInt32.init) }
    var merges: [(UInt32, UInt32)] = []
    while merges.count < wanted {
        var counts: [UInt64: Int] = [:]
        for (w, word) in words.enumerated() where word.count > 1 {
            for i in 0..<(word.count - 1) { counts[UInt64(word[i]) << 32 | UInt64(word[i + 1]), default: 0] += pieces[w].count }
        }
        // Highest count; ties to the smaller (left, right).
        guard let best = counts.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }) else { break }
        let a = UInt32(best.key >> 32), b = UInt32(best.key & 0xFFFF_FFFF), new = UInt32(256 + merges.count)
        merges.append((a, b))
        for w in words.indices {
            var out: [UInt32] = [], i = 0
            let word = words[w]
            while i < word.count {
                if i + 1 < word.count && word[i] == a && word[i + 1] == b { out.append(new); i += 2 } else { out.append(word[i]); i += 1 }
            }
            words[w] = out
        }
    }
    return merges
}

@Suite struct Trainer {
    @Test(arguments: [SplitPattern.gpt2, .gpt4])
    func fastTrainerEqualsNaiveTrainer(_ pattern: SplitPattern) {
        let trainer = BPETrainer(vocabularySize: 256 + 300, pattern: pattern)
        let pieces = trainer.countPieces([Array(sampleText.utf8), Array("aaaa abab ababab aaaaaa".utf8)])
        let fast = trainer.learnMerges(pieces)
        let naive = naiveMerges(pieces, merges: 300)
        #expect(fast.count == naive.count)
        #expect(fast.map { [$0.0, $0.1] } == naive.map { [$0.0, $0.1] })
    }

    @Test func countingOnTwoThreadsEqualsOne() {
        let trainer = BPETrainer(vocabularySize: 300)
        let texts = [Array((sampleText + "\n" + sampleText).utf8), Array("another file\nwith lines\n".utf8)]
        let one = trainer.countPieces(texts, threads: 1), two = trainer.countPieces(texts, threads: 2)
        #expect(one.map(\.bytes) == two.map(\.bytes) && one.map(\.count) == two.map(\.count))
    }

    @Test func trainedTokenizerSavesAndLoads() throws {
        let tok = try BPETrainer(vocabularySize: 320, pattern: .gpt4, specialTokens: ["<|endoftext|>"]).train([Array(sampleText.utf8)])
        #expect(tok.vocabularySize == 320)
        #expect(tok.specialTokenId("<|endoftext|>") == 319)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID())").path
        try tok.save(to: dir)
        let back = try Tokenizer.load(directory: dir)
        #expect(back.pattern == .gpt4 && back.vocabularySize == 320)
        let text = sampleText + "<|endoftext|>"
        #expect(try back.encode(text, allowedSpecial: .all) == tok.encode(text, allowedSpecial: .all))
    }
}
