import Foundation
import Inference
import Models
import Testing
import Tensors

@Suite struct Generation {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("gpt2-tiny-reference.json"))) as! [String: Any]
    }
    static func model() throws -> GPT { try HuggingFaceGPT2.load(folder: fixtures.appendingPathComponent("gpt2-tiny").path) }

    /// Greedy decoding with the KV cache gives transformers' `generate` output exactly.
    @Test func greedyWithCacheMatchesTransformers() throws {
        let ref = try Self.reference()
        let prompt = (ref["greedy_prompt"] as! [Int]).map(Int32.init), want = (ref["greedy_ids"] as! [Int]).map(Int32.init)
        var gen = Generator(model: try Self.model(), sampler: .greedy)
        #expect(try gen.generate(prompt: prompt, maxNewTokens: want.count) == want)
    }

    /// The cache changes the work, not the answer: logits at every step equal a full recompute.
    @Test func cachedLogitsEqualFullRecompute() throws {
        let gpt = try Self.model()
        gpt.eval()
        let ids: [Int32] = [5, 17, 42, 99, 3, 250, 7, 8, 123, 64]
        let full = try withNoGrad { try gpt.logits(ids, batch: 1, length: ids.count) }          // (1, 10, V)
        let cache = gpt.makeCache()
        let v = gpt.config.vocabularySize
        let first = try gpt.forward([SequenceInput(tokens: Array(ids[..<4]), cache: cache, logits: .all)])
        var worst = zip(first.scalars, full.scalars.prefix(4 * v)).map { abs($0 - $1) }.max()!
        for t in 4..<ids.count {
            let step = try gpt.forward([SequenceInput(tokens: [ids[t]], cache: cache)])
            worst = max(worst, zip(step.scalars, full.scalars[(t * v)..<((t + 1) * v)]).map { abs($0 - $1) }.max()!)
        }
        #expect(worst < 1e-5, "max |cached − full| = \(worst)")
        var sampled = Generator(model: gpt, sampler: Sampler(temperature: 0.8, topK: 20, seed: 3))
        let withCache = try sampled.generate(prompt: [1, 2, 3], maxNewTokens: 20)
        sampled.useCache = false
        sampled.sampler = Sampler(temperature: 0.8, topK: 20, seed: 3)     // the same seed again
        #expect(try sampled.generate(prompt: [1, 2, 3], maxNewTokens: 20) == withCache)
    }

    @Test func stopIdsEndGeneration() throws {
        let ref = try Self.reference()
        let prompt = (ref["greedy_prompt"] as! [Int]).map(Int32.init)
        var gen = Generator(model: try Self.model(), sampler: .greedy, stopIds: [247])
        #expect(try gen.generate(prompt: prompt, maxNewTokens: 16) == Array(repeating: 85, count: 9))
    }

    @Test func samplerRespectsTopKTopPAndSeed() {
        let logits: [Float] = [2.0, 1.0, 0.5, 0.0, -1.0, 3.0]
        logits.withUnsafeBufferPointer { row in
            #expect(Sampler.greedy.sample(row) == 5)
            let topK = Sampler(temperature: 1, topK: 2, seed: 1)
            #expect((0..<300).allSatisfy { _ in [5, 0].contains(topK.sample(row)) })
            // p(5) ≈ 0.63, p(0) ≈ 0.23: top-p 0.5 keeps only id 5.
            let topP = Sampler(temperature: 1, topP: 0.5, seed: 1)
            #expect((0..<100).allSatisfy { _ in topP.sample(row) == 5 })
            let a = Sampler(temperature: 1.2, seed: 9), b = Sampler(temperature: 1.2, seed: 9)
            #expect((0..<50).map { _ in a.sample(row) } == (0..<50).map { _ in b.sample(row) })
            let wide = Sampler(temperature: 1, seed: 4)
            #expect(Set((0..<2000).map { _ in wide.sample(row) }).count == 6)
        }
    }
}

@Suite struct TopK {
    /// The one-pass top-k equals a full sort (best first, lower id first on ties).
    @Test func bestKEqualsAFullSort() {
        let rng = RandomGenerator(seed: 21)
        for trial in 0..<20 {
            let n = 50 + trial * 37
            // Few distinct values so that ties are common.
            let values = (0..<n).map { _ in Float(rng.next() % 17) - 8 }
            for k in [1, 2, 5, 40, n - 1] {
                let got = values.withUnsafeBufferPointer { Sampler.best(k, of: $0) }
                let want = values.enumerated().sorted { $0.element != $1.element ? $0.element > $1.element : $0.offset < $1.offset }.prefix(k).map(\.offset)
                #expect(got == Array(want), "n \(n), k \(k)")
            }
        }
    }
}
