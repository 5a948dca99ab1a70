import Foundation
import Models
import Tensors
import Testing

/// `DecoderModel.record` (what `llm explain` shows) against transformers' own view of the same
/// forward pass: output_attentions and output_hidden_states on the tiny GPT-2, Llama and Gemma 3
/// fixtures (Tests/Fixtures/explain-reference.json, from scripts/fixtures/make_explain_fixtures.py).
@Suite struct ForwardRecordingTests {
    static let reference = try! JSONSerialization.jsonObject(
        with: Data(contentsOf: GPTParity.fixtures.appendingPathComponent("explain-reference.json"))) as! [String: Any]

    static func flat(_ x: Any) -> [Float] {
        if let n = x as? NSNumber { return [n.floatValue] }
        return (x as! [Any]).flatMap(flat)
    }

    static func maxDifference(_ t: Tensor, _ expected: Any) -> Float {
        let want = flat(expected)
        precondition(want.count == t.count, "fixture has \(want.count) values, the model gave \(t.count)")
        return zip(t.scalars, want).map { abs($0 - $1) }.max()!
    }

    @Test(arguments: ["gpt2-tiny", "llama-tiny", "gemma3-tiny"])
    func matchesTransformers(_ name: String) throws {
        let model = try ModelFolder.load(GPTParity.fixtures.appendingPathComponent(name).path)
        let want = Self.reference[name] as! [String: Any]
        let ids = (want["ids"] as! [Int]).map(Int32.init)
        let r = try model.record(ids)
        let (attentions, hidden) = (want["attentions"] as! [Any], want["hidden_states"] as! [Any])
        #expect(r.attentions.count == attentions.count && r.hiddenStates.count == hidden.count)
        for (l, a) in r.attentions.enumerated() {
            let d = Self.maxDifference(a, attentions[l])
            #expect(d <= 1e-5, "\(name) layer \(l): max |Δ attention| \(d)")
        }
        for (l, h) in r.hiddenStates.enumerated() {
            let d = Self.maxDifference(h, hidden[l])
            #expect(d <= 1e-5 * max(1, Self.flat(hidden[l]).map(abs).max()!), "\(name) hidden state \(l): max |Δ| \(d)")
        }
    }

    /// Every attention row is a distribution over the keys the query may see: sums to 1, zero
    /// above the diagonal and, in sliding-window layers, before the window.
    @Test(arguments: ["gpt2-tiny", "llama-tiny", "gemma3-tiny"])
    func attentionRowsAreDistributions(_ name: String) throws {
        let model = try ModelFolder.load(GPTParity.fixtures.appendingPathComponent(name).path)
        let ids = (0..<20).map { Int32(($0 * 37 + 11) % 300) }
        let r = try model.record(ids)
        let t = ids.count
        var windowed = 0
        for (l, a) in r.attentions.enumerated() {
            let window = model.spec.window(ofLayer: l)
            if window != nil { windowed += 1 }
            for h in 0..<model.spec.heads {
                for q in 0..<t {
                    let row = a.data + (h * t + q) * t
                    let first = window.map { max(0, q + 1 - $0) } ?? 0
                    var sum: Float = 0
                    for k in 0..<t {
                        if k > q || k < first { #expect(row[k] == 0, "\(name) layer \(l) head \(h): p[\(q), \(k)] = \(row[k])") }
                        sum += row[k]
                    }
                    #expect(abs(sum - 1) <= 1e-5, "\(name) layer \(l) head \(h) row \(q) sums to \(sum)")
                }
            }
        }
        #expect(name != "gemma3-tiny" || windowed == 3)
    }

    /// The recorded logits are the plain forward pass's, and the logit lens at the last layer is
    /// the model's own top token and probability.
    @Test(arguments: ["gpt2-tiny", "llama-tiny", "gemma3-tiny"])
    func logitLensEndsAtTheModelsLogits(_ name: String) throws {
        let model = try ModelFolder.load(GPTParity.fixtures.appendingPathComponent(name).path)
        let ids: [Int32] = [5, 77, 12, 299, 41, 9, 160, 2, 88]
        let r = try model.record(ids)
        let plain = try withNoGrad { try model.logits(ids, batch: 1, length: ids.count) }     // (1, T, V)
        #expect(r.logits.scalars == plain.scalars)
        let lens = model.logitLens(r)
        #expect(lens.top.count == model.spec.layers && lens.top.allSatisfy { $0.count == ids.count })
        let v = model.vocabularySize
        for t in 0..<ids.count {
            let row = Array(plain.scalars[(t * v)..<((t + 1) * v)])
            let best = row.indices.max { row[$0] < row[$1] }!
            let m = row[best]
            let p = 1 / row.reduce(0.0) { $0 + exp(Double($1 - m)) }
            #expect(lens.top[model.spec.layers - 1][t] == Int32(best))
            #expect(abs(Double(lens.probability[model.spec.layers - 1][t]) - p) <= 1e-6)
        }
        // The stream the lens reads after an earlier layer is what running only the layers up to
        // it gives.
        let early = try withNoGrad { () -> Tensor in
            let cut = model.spec.layers - 1
            let x = model.embedded(ids, batch: 1, length: ids.count)
            return (0..<cut).reduce(x) { x, i in model.layers[i](x) }
        }
        #expect(r.residuals[model.spec.layers - 1].scalars == early.scalars)
    }

    @Test func refusesBadInput() throws {
        let model = try ModelFolder.load(GPTParity.fixtures.appendingPathComponent("llama-tiny").path)
        #expect(throws: ModelError.self) { try model.record([]) }
        #expect(throws: ModelError.self) { try model.record([1, 320]) }
        #expect(throws: ModelError.self) { try model.record([Int32](repeating: 1, count: model.contextLength + 1)) }
    }
}
