import Foundation
import Inference
import Models
import NN
import Testing
import Tensors

/// The runtime's promises: a ragged batch gives every sequence the logits it would get alone, a
/// sequence can leave a running batch without disturbing the others, sliding-window caches equal
/// full ones, and bad requests are errors, not traps.
@Suite struct RaggedBatches {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func gpt() throws -> GPT { try HuggingFaceGPT2.load(folder: fixtures.appendingPathComponent("gpt2-tiny").path) }
    static func llama() throws -> Llama { try HuggingFaceLlama.load(folder: fixtures.appendingPathComponent("llama-tiny").path) }

    /// The tiny Llama's weights with every layer attending to the last `window` positions only.
    static func windowedLlama(_ window: Int = 6) throws -> Llama {
        let m = try llama()
        var config = m.config
        config.slidingWindow = window
        let spec = config.decoder()
        let layers = (0..<spec.layers).map { i in
            DecoderLayer(spec, index: i, rng: m.rng, linear: { role, _, _ in m.layers[i].projection(role)! },
                         norm: { role, _ in m.layers[i].normalization(role)! })
        }
        return Llama(config: config, spec: spec, embedTokens: m.embedTokens, layers: layers, norm: m.norm, lmHead: m.lmHead)
    }

    /// Every optional part at once, random weights: QK-norm, sandwich norms, GeGLU, scaled
    /// embeddings, score and logit soft-caps, local (window 5, own RoPE base) and global layers.
    static func allParts() -> DecoderModel {
        var spec = DecoderConfig(vocabularySize: 300, contextLength: 64, embedding: 32, layers: 3, heads: 4, kvHeads: 2, headSize: 8,
                                 hidden: 48, norm: .rmsNorm, normEpsilon: 1e-6, positions: .rotary, activation: .geGLU, bias: false,
                                 tiedEmbeddings: true)
        spec.qkNorm = true; spec.sandwichNorms = true; spec.embeddingScale = Float(32).squareRoot()
        spec.attentionSoftcap = 20; spec.finalLogitSoftcap = 15; spec.attentionScale = 0.3
        spec.ropeFrequencies = RotaryEmbedding.frequencies(headSize: 8, base: 1_000_000)
        spec.localRopeFrequencies = RotaryEmbedding.frequencies(headSize: 8, base: 10_000)
        spec.layerKinds = [.local, .global, .local]; spec.slidingWindow = 5
        let rng = RandomGenerator(seed: 11)
        let layers = (0..<3).map { i in
            DecoderLayer(spec, index: i, rng: rng, linear: { _, rows, cols in Linear(weight: Tensor.randn([rows, cols], std: 0.2, rng: rng)) },
                         norm: { _, size in RMSNorm(weight: Tensor.uniform([size], 0.5, 1.5, rng: rng), eps: 1e-6) })
        }
        return DecoderModel(spec: spec, embedTokens: Embedding(300, 32, std: 0.5, rng: rng), embedPositions: nil, layers: layers,
                            norm: RMSNorm(32), lmHead: nil, rng: rng)
    }

    static func model(_ name: String) throws -> DecoderModel {
        let m: DecoderModel = try name == "gpt" ? gpt() : name == "llama" ? llama() : name == "all-parts" ? allParts() : windowedLlama()
        m.eval()
        return m
    }

    static func maxDiff(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// Three sequences at different positions and lengths, fed in two ragged steps, against each
    /// fed alone (same chunks) and against one full, uncached pass over its whole text.
    @Test(arguments: ["gpt", "llama", "llama-window", "all-parts"])
    func raggedBatchEqualsEachSequenceAlone(_ name: String) throws {
        let m = try Self.model(name)
        let v = m.vocabularySize
        let texts: [[Int32]] = [(0..<12).map { Int32($0 * 7 % 250 + 3) }, (0..<4).map { Int32($0 * 13 % 250 + 1) }, (0..<16).map { Int32($0 * 29 % 250 + 2) }]
        // Where each sequence stands before the batch (already cached), and its chunk in each step.
        let before = [7, 0, 3]
        let steps: [[(count: Int, logits: SequenceInput.Logits)]] = [[(4, .all), (1, .last), (6, .all)], [(1, .last), (3, .all), (7, .all)]]
        for slidingWindows in name == "llama-window" || name == "all-parts" ? [true, false] : [true] {
            let batched = texts.map { _ in m.makeCache(capacity: nil, slidingWindows: slidingWindows) }
            let alone = texts.map { _ in m.makeCache(capacity: nil, slidingWindows: slidingWindows) }
            for i in 0..<3 where before[i] > 0 {
                for c in [batched[i], alone[i]] { _ = try m.forward([SequenceInput(tokens: Array(texts[i][..<before[i]]), cache: c, logits: .none)]) }
            }
            var position = before
            for step in steps {
                let inputs = (0..<3).map { i in
                    SequenceInput(tokens: Array(texts[i][position[i]..<(position[i] + step[i].count)]), cache: batched[i], logits: step[i].logits)
                }
                let out = try m.forward(inputs).scalars                                    // (rows, V)
                var row = 0
                for i in 0..<3 {
                    let single = try m.forward([SequenceInput(tokens: inputs[i].tokens, cache: alone[i], logits: step[i].logits)]).scalars
                    let rows = single.count / v
                    let d = Self.maxDiff(out[(row * v)..<((row + rows) * v)], single[...])
                    #expect(d <= 1e-5, "\(name) sequence \(i): batched vs alone max |Δ| \(d)")
                    // Against the whole text so far in one uncached pass (the training path).
                    let end = position[i] + step[i].count
                    let full = try m.logits(Array(texts[i][..<end]), batch: 1, length: end).scalars
                    let firstRow = step[i].logits == .all ? position[i] : end - 1
                    let dFull = Self.maxDiff(out[(row * v)..<((row + rows) * v)], full[(firstRow * v)..<(end * v)])
                    #expect(dFull <= 1e-4, "\(name) sequence \(i): cached vs full pass max |Δ| \(dFull)")
                    row += rows
                    position[i] = end
                }
                #expect(zip(batched, alone).allSatisfy { $0.length == $1.length })
            }
        }
    }

    /// In llama.cpp's arithmetic (GGUF models) a sequence with fewer than 64 queries in a pass
    /// takes the F16 few-query kernel and one with more the Float32 one; a batch that mixes them
    /// (a long prompt beside decoding steps) gives each the logits it gets alone.
    @Test func halfPrecisionBatchMixingFewAndManyQueriesEqualsEachAlone() throws {
        let m = try Self.model("llama")
        m.halfPrecisionAttention = true
        let v = m.vocabularySize
        let long = (0..<70).map { Int32($0 * 17 % 250 + 4) }, short = (0..<6).map { Int32($0 * 5 % 250 + 9) }
        let batched = [m.makeCache(capacity: nil), m.makeCache(capacity: nil)], alone = [m.makeCache(capacity: nil), m.makeCache(capacity: nil)]
        for c in [batched[1], alone[1]] { _ = try m.forward([SequenceInput(tokens: Array(short[..<5]), cache: c, logits: .none)]) }
        let out = try m.forward([SequenceInput(tokens: long, cache: batched[0], logits: .all),
                                 SequenceInput(tokens: [short[5]], cache: batched[1], logits: .last)]).scalars     // (71, V)
        let first = try m.forward([SequenceInput(tokens: long, cache: alone[0], logits: .all)]).scalars
        let second = try m.forward([SequenceInput(tokens: [short[5]], cache: alone[1], logits: .last)]).scalars
        #expect(Self.maxDiff(out[..<(70 * v)], first[...]) <= 1e-5)
        #expect(Self.maxDiff(out[(70 * v)...], second[...]) <= 1e-5)
        // The F16 kernel did run for the short one: its answer differs from Float32 attention's.
        m.halfPrecisionAttention = false
        let plain = [m.makeCache(capacity: nil)]
        _ = try m.forward([SequenceInput(tokens: Array(short[..<5]), cache: plain[0], logits: .none)])
        let float = try m.forward([SequenceInput(tokens: [short[5]], cache: plain[0], logits: .last)]).scalars
        #expect(Self.maxDiff(float[...], second[...]) > 0)
    }

    /// The window changes the answer (so the checks above see it) and the sliding-window cache
    /// stays bounded however long the sequence grows, equal to the full cache all along.
    @Test func slidingWindowCacheIsBoundedAndExact() throws {
        let windowed = try Self.model("llama-window"), plain = try Self.model("llama")
        let ids = (0..<40).map { Int32($0 * 11 % 300 + 5) }
        let a = try windowed.logits(ids, batch: 1, length: ids.count).scalars, b = try plain.logits(ids, batch: 1, length: ids.count).scalars
        #expect(Self.maxDiff(a[...], b[...]) > 0.01)
        let sliding = windowed.makeCache(capacity: nil, slidingWindows: true), full = windowed.makeCache(capacity: nil, slidingWindows: false)
        var worst: Float = 0, largest = 0
        for (t, id) in ids.enumerated() {
            let s = try windowed.forward([SequenceInput(tokens: [id], cache: sliding)]).scalars
            let f = try windowed.forward([SequenceInput(tokens: [id], cache: full)]).scalars
            worst = max(worst, Self.maxDiff(s[...], f[...]), Self.maxDiff(s[...], a[(t * 320)..<((t + 1) * 320)]))
            largest = max(largest, sliding.layers.map(\.stored).max()!)
        }
        #expect(worst <= 1e-4, "sliding vs full cache max |Δ| \(worst)")
        #expect(largest <= 6 && sliding.length == 40 && full.length == 40)
        #expect(sliding.bytes < full.bytes)
        // Rewinding past what the window dropped is refused; within it, allowed.
        #expect(throws: ModelError.self) { try sliding.truncate(to: 20) }
        #expect(throws: ModelError.self) { try sliding.truncate(to: 38) }   // position 38 would need position 33, dropped
        try sliding.truncate(to: 39)
        #expect(sliding.length == 39)
        // Starting over is always possible, and the cache works as new.
        sliding.reset()
        #expect(sliding.length == 0 && sliding.layers.allSatisfy { $0.length == 0 && $0.stored == 0 })
        let again = try windowed.forward([SequenceInput(tokens: Array(ids[..<10]), cache: sliding, logits: .all)]).scalars
        #expect(Self.maxDiff(again[...], a[..<(10 * 320)]) <= 1e-4)
    }

    /// A sequence removed between steps leaves the others' tokens exactly as they are alone.
    @Test func removingASequenceLeavesTheOthersUnchanged() throws {
        let m = try Self.model("llama")
        let prompts: [[Int32]] = [[5, 9, 200, 17], [33], [250, 251, 7, 7, 7, 7, 90, 3, 1]]
        var expected: [[Int32]] = []
        for p in prompts {
            var g = Generator(model: m, sampler: .greedy)
            expected.append(try g.generate(prompt: p, maxNewTokens: 12))
        }
        let engine = BatchGenerator(model: m, prefillChunk: 4)              // the long prompt takes three steps
        let ids = try prompts.map { try engine.add(.init(prompt: $0, maxNewTokens: 12)) }
        var got: [Int: [Int32]] = [:]
        var steps = 0
        while engine.active > 0 {
            for e in try engine.step() { if let t = e.token { got[e.id, default: []].append(t) } }
            steps += 1
            if steps == 5 { engine.remove(ids[1]) }                         // the middle one leaves mid-generation
        }
        #expect(got[ids[0]] == expected[0])
        #expect(got[ids[2]] == expected[2])
        let partial = got[ids[1]] ?? []
        #expect(partial == Array(expected[1].prefix(partial.count)) && partial.count == 5)
    }

    /// Bad requests are errors with the sizes in them, and leave the cache usable.
    @Test func badRequestsAreErrorsNotTraps() throws {
        let m = try Self.model("gpt")
        let cache = m.makeCache(capacity: 8)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        #expect(message { _ = try m.forward([SequenceInput(tokens: Array(repeating: 1, count: 9), cache: cache)]) }.contains("0 cached + 9 new positions exceed the 8"))
        #expect(cache.length == 0)
        #expect(message { _ = try m.forward([SequenceInput(tokens: [1, 5000], cache: cache)]) }.contains("id 5000 at position 1 is outside the vocabulary"))
        #expect(message { _ = try m.forward([SequenceInput(tokens: [1], cache: cache), SequenceInput(tokens: [2], cache: cache)]) }.contains("share one cache"))
        #expect(message { _ = try m.forward([SequenceInput(tokens: [], cache: cache)]) }.contains("has no tokens"))
        #expect(message { _ = try m.forward([]) }.contains("empty batch"))
        #expect(message { _ = try m.logits(Array(repeating: 1, count: m.contextLength + 1), batch: 1, length: m.contextLength + 1) }.contains("exceed the context"))
        #expect(message { _ = try m.logits([1, 2, 3], batch: 2, length: 2) }.contains("do not make a batch of 2 × 2"))
        #expect(message { _ = try m.loss([1, 2], targets: [2, 9999], batch: 1, length: 2) }.contains("target 9999 at position 1"))
        _ = try m.forward([SequenceInput(tokens: Array(repeating: 1, count: 8), cache: cache)])
        #expect(cache.length == 8)
        #expect(message { _ = try m.forward([SequenceInput(tokens: [1], cache: cache)]) }.contains("8 cached + 1 new positions exceed the 8"))
        var g = Generator(model: m, sampler: .greedy)
        #expect(message { _ = try g.generate(prompt: Array(repeating: 1, count: m.contextLength + 1), maxNewTokens: 1) }.contains("exceed"))
        // Generation stops at the end of the context instead of overflowing it.
        let short = m.makeCache(capacity: 6)
        #expect(try g.generate(prompt: [1, 2, 3], maxNewTokens: 50, cache: short).count == 4)
        #expect(short.length == 6)
        let engine = BatchGenerator(model: m)
        #expect(message { try engine.add(.init(prompt: [], maxNewTokens: 1)) }.contains("empty prompt"))
        #expect(message { try engine.add(.init(prompt: [70000], maxNewTokens: 1)) }.contains("id 70000 at position 0"))
        #expect(engine.active == 0)
    }
}

@Suite struct TextStreaming {
    /// Text comes out as soon as it cannot be the start of a stop string, and ends before one.
    @Test func stopStringsAreHeldBackThenCut() throws {
        let tok = try loadGPT2()
        let ids = try tok.encode("Hello world. The end is near.").map { Int32($0) }
        var stream = TextStream(tokenizer: tok, stops: ["end is"])
        var out = ""
        for id in ids where !stream.stopped { out += stream.push(id) }
        out += stream.finish()
        #expect(out == "Hello world. The ")
        #expect(stream.stopped && stream.stoppedBy == "end is")
        var plain = TextStream(tokenizer: tok)
        var all = ""
        for id in ids { all += plain.push(id) }
        #expect(all + plain.finish() == "Hello world. The end is near.")
    }
}
