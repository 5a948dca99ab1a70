import Foundation
import Testing
import Tensors

/// Every differentiable op against central finite differences (GradCheck: loss summed in Double,
/// error relative for gradients above 1, absolute below).
@Suite struct FiniteDifferences {
    /// Each check draws its inputs from its own generator (tests run in parallel).
    @TaskLocal static var rng = RandomGenerator(seed: 42)
    static func r(_ shape: [Int], _ scale: Float = 1) -> Tensor { Tensor.randn(shape, std: scale, rng: rng) }
    static func pos(_ shape: [Int]) -> Tensor { Tensor.uniform(shape, 0.5, 2, rng: rng) }
    /// Values kept away from 0 (for kinks such as relu's).
    static func awayFromZero(_ shape: [Int]) -> Tensor {
        let t = r(shape)
        return t.map { $0 >= 0 ? $0 + 0.2 : $0 - 0.2 }
    }

    static let checks: [(String, () -> GradCheck.Result)] = [
        ("add", { let a = r([2, 3, 4]), b = r([3, 1]); return GradCheck.run([a, b]) { a + b } }),
        ("sub", { let a = r([2, 1, 4]), b = r([3, 1]); return GradCheck.run([a, b]) { a - b } }),
        ("mul", { let a = r([2, 3, 4]), b = r([2, 1, 4]); return GradCheck.run([a, b]) { a * b } }),
        ("div", { let a = r([2, 3, 4]), b = pos([4]); return GradCheck.run([a, b]) { a / b } }),
        ("scalar ops", { let a = r([3, 4]); return GradCheck.run([a]) { (a * 3 + 1) / 2 - a } }),
        ("matmul", { let a = r([4, 5]), b = r([5, 3]); return GradCheck.run([a, b]) { matmul(a, b) } }),
        ("matmul transposed", { let a = r([5, 4]), b = r([3, 5]); return GradCheck.run([a, b]) { matmul(a, b, transposeA: true, transposeB: true) } }),
        ("matmul batched", { let a = r([2, 3, 4, 5]), b = r([2, 3, 5, 2]); return GradCheck.run([a, b]) { matmul(a, b) } }),
        ("matmul broadcast", { let a = r([2, 1, 4, 5]), b = r([3, 5, 2]); return GradCheck.run([a, b]) { matmul(a, b) } }),
        ("linear", { let x = r([2, 3, 4]), w = r([5, 4]), b = r([5]); return GradCheck.run([x, w, b]) { linear(x, w, b) } }),
        ("sum", { let x = r([2, 3, 4]); return GradCheck.run([x]) { x.sum(axes: [0, 2]) } }),
        ("mean", { let x = r([2, 3, 4]); return GradCheck.run([x]) { x.mean(axis: 1, keepDim: true) } }),
        ("max", { let x = r([2, 3, 4]); return GradCheck.run([x], eps: 1e-3) { x.amax(axis: 1) } }),
        ("var", { let x = r([2, 3, 4]); return GradCheck.run([x]) { x.variance(axis: 2) } }),
        ("exp", { let x = r([3, 4]); return GradCheck.run([x], eps: 1e-3) { x.exp() } }),
        ("log", { let x = pos([3, 4]); return GradCheck.run([x], eps: 1e-3) { x.log() } }),
        ("sqrt", { let x = pos([3, 4]); return GradCheck.run([x], eps: 1e-3) { x.sqrt() } }),
        ("tanh", { let x = r([3, 4]); return GradCheck.run([x], eps: 1e-3) { x.tanh() } }),
        ("pow", { let x = pos([3, 4]); return GradCheck.run([x], eps: 1e-3) { x.pow(2.5) } }),
        ("softmax", { let x = r([2, 3, 5], 2); return GradCheck.run([x], eps: 1e-3) { x.softmax() } }),
        ("log_softmax", { let x = r([2, 3, 5], 2); return GradCheck.run([x], eps: 1e-3) { x.logSoftmax() } }),
        ("gelu tanh", { let x = r([3, 5], 2); return GradCheck.run([x], eps: 1e-3) { x.geluTanh() } }),
        ("gelu erf", { let x = r([3, 5], 2); return GradCheck.run([x], eps: 1e-3) { x.geluErf() } }),
        ("relu", { let x = awayFromZero([3, 5]); return GradCheck.run([x], eps: 1e-3) { x.relu() } }),
        ("silu", { let x = r([3, 5], 2); return GradCheck.run([x], eps: 1e-3) { x.silu() } }),
        ("sigmoid", { let x = r([3, 5], 2); return GradCheck.run([x], eps: 1e-3) { x.sigmoid() } }),
        ("layer norm", { let x = r([2, 3, 8]), w = r([8]), b = r([8]); return GradCheck.run([x, w, b], eps: 1e-3) { x.layerNorm(weight: w, bias: b) } }),
        ("rope halves", { let x = r([2, 3, 2, 8]); let rope = RotaryEmbedding(headSize: 8, invFreq: RotaryEmbedding.frequencies(headSize: 8, base: 100), pairing: .halves)
            return GradCheck.run([x], eps: 1e-3) { x.rope(rope, start: 5) } }),
        ("rope adjacent", { let x = r([1, 4, 3, 6]); let rope = RotaryEmbedding(headSize: 6, invFreq: [1, 0.3, 0.01], pairing: .adjacent)
            return GradCheck.run([x], eps: 1e-3) { x.rope(rope) } }),
        ("linear through a quantized weight", { let x = r([6, 64]); let w = QuantizedMatrix.quantize(r([5, 64]), as: .q4_1)
            return GradCheck.run([x], eps: 1e-2) { linear(x, w) } }),
        ("rms norm", { let x = r([2, 3, 8]), w = r([8]); return GradCheck.run([x, w], eps: 1e-3) { x.rmsNorm(weight: w) } }),
        ("cross entropy", { let x = r([5, 7], 2); return GradCheck.run([x], eps: 1e-3) { x.crossEntropy(targets: [1, -100, 6, 0, 3]) } }),
        ("attention", { let q = r([2, 2, 5, 3]), k = r([2, 2, 5, 3]), v = r([2, 2, 5, 3]); return GradCheck.run([q, k, v], eps: 1e-3) { causalAttention(q, k, v) } }),
        ("attention GQA + cache", { let q = r([1, 4, 2, 3]), k = r([1, 2, 5, 3]), v = r([1, 2, 5, 3]); return GradCheck.run([q, k, v], eps: 1e-3) { causalAttention(q, k, v) } }),
        ("attention dropout", { let q = r([1, 2, 4, 3]), k = r([1, 2, 4, 3]), v = r([1, 2, 4, 3])
            // The same seed gives the same dropout mask on every evaluation.
            return GradCheck.run([q, k, v], eps: 1e-3) { causalAttention(q, k, v, dropout: 0.3, rng: RandomGenerator(seed: 5)) } }),
        ("attention packed q/k/v", { let qkv = r([2, 5, 24])        // 2 heads + 2 kv heads of size 4, as q | k | v
            return GradCheck.run([qkv], eps: 1e-3) { causalAttention(packed: qkv, heads: 4, kvHeads: 2) } }),
        ("attention rows, GQA, window, scale", { let q = r([2 * 6, 4 * 3]), k = r([2 * 6, 2 * 3]), v = r([2 * 6, 2 * 3])
            return GradCheck.run([q, k, v], eps: 1e-3) { causalAttention(rows: q, k, v, batch: 2, heads: 4, kvHeads: 2, scale: 0.4, window: 3) } }),
        ("attention soft-cap", { let q = r([2 * 5, 2 * 3], 2), k = r([2 * 5, 2 * 3], 2), v = r([2 * 5, 2 * 3])
            return GradCheck.run([q, k, v], eps: 1e-3) { causalAttention(rows: q, k, v, batch: 2, heads: 2, kvHeads: 2, softcap: 1.5) } }),
        ("rope at given positions", { let x = r([5, 2 * 4]); let rope = RotaryEmbedding(headSize: 4, invFreq: [1, 0.1], pairing: .adjacent)
            return GradCheck.run([x], eps: 1e-3) { x.rope(rope, positions: [9, 0, 3, 3, 17]) } }),
        ("dropout", { let x = r([4, 6]); return GradCheck.run([x]) { x.dropout(0.5, rng: RandomGenerator(seed: 3)) } }),
        ("embedding", { let w = r([6, 3]); return GradCheck.run([w]) { w.gatherRows([1, 4, 1, 0], shape: [2, 2]) } }),
        ("concat", { let a = r([2, 3]), b = r([2, 2]); return GradCheck.run([a, b]) { Tensor.concat([a, b], axis: 1) } }),
        ("stack", { let a = r([2, 3]), b = r([2, 3]); return GradCheck.run([a, b]) { Tensor.stack([a, b], axis: 1) } }),
        ("slice", { let x = r([3, 5, 2]); return GradCheck.run([x]) { x.slice(axis: 1, 1..<4) } }),
        ("select", { let x = r([3, 5]); return GradCheck.run([x]) { x.select(axis: 0, 2) } }),
        ("permute", { let x = r([2, 3, 4]); return GradCheck.run([x]) { x.permuted(2, 0, 1) } }),
        ("transpose", { let x = r([2, 3, 4]); return GradCheck.run([x]) { x.transposed(0, 2) } }),
        ("reshape", { let x = r([2, 6]); return GradCheck.run([x]) { x.reshaped(3, -1) * x.reshaped(3, 4) } }),
        ("broadcast", { let x = r([3, 1]); return GradCheck.run([x]) { x.broadcast(to: [2, 3, 4]) } }),
        ("masked fill", { let x = r([2, 3]); return GradCheck.run([x]) { x.maskedFill(Tensor(shape: [3], [1, 0, 1]), -1) } }),
    ]

    @Test(arguments: checks.map(\.0))
    func gradientMatchesFiniteDifferences(_ name: String) {
        let check = Self.checks.first { $0.0 == name }!.1
        let result = Self.$rng.withValue(RandomGenerator(seed: 42)) { check() }
        #expect(result.maxError < 5e-3, "\(name): \(result)")
    }
}

/// The attention layouts against a plain computation: softmax(q·kᵀ·scale + mask)·v with the mask
/// written out element by element (causal, and a window of W keys counting the query's own).
@Suite struct AttentionLayouts {
    static func naive(_ q: [Float], _ k: [Float], _ v: [Float], t: Int, h: Int, hkv: Int, d: Int, scale: Float, window: Int?, softcap: Float? = nil) -> [Float] {
        var out = [Float](repeating: 0, count: t * h * d)
        for head in 0..<h {
            let j = head / (h / hkv)
            for i in 0..<t {
                var s = [Double](repeating: -.infinity, count: t)
                for c in 0...i where window.map({ i - c < $0 }) ?? true {
                    var dot: Double = 0
                    for e in 0..<d { dot += Double(q[(i * h + head) * d + e]) * Double(k[(c * hkv + j) * d + e]) }
                    s[c] = dot * Double(scale)
                    if let cap = softcap { s[c] = Double(cap) * Foundation.tanh(s[c] / Double(cap)) }
                }
                let m = s.max()!, z = s.map { exp($0 - m) }.reduce(0, +)
                for e in 0..<d {
                    var acc: Double = 0
                    for c in 0..<t where s[c] > -.infinity { acc += exp(s[c] - m) / z * Double(v[(c * hkv + j) * d + e]) }
                    out[(i * h + head) * d + e] = Float(acc)
                }
            }
        }
        return out
    }

    @Test(arguments: [nil, 1, 4, 100] as [Int?])
    func rowsLayoutAndCachedSpansEqualThePlainComputation(_ window: Int?) {
        let softcap: Float? = window == 4 ? 0.8 : nil           // one case with a soft-cap
        let rng = RandomGenerator(seed: 3)
        let (t, h, hkv, d) = (70, 4, 2, 8)            // more rows than one 64-row block
        let q = Tensor.randn([t, h * d], rng: rng), k = Tensor.randn([t, hkv * d], rng: rng), v = Tensor.randn([t, hkv * d], rng: rng)
        let want = Self.naive(q.scalars, k.scalars, v.scalars, t: t, h: h, hkv: hkv, d: d, scale: 0.3, window: window, softcap: softcap)
        let rows = causalAttention(rows: q, k, v, batch: 1, heads: h, kvHeads: hkv, scale: 0.3, window: window, softcap: softcap).scalars
        #expect(zip(rows, want).map { abs($0 - $1) }.max()! < 1e-5)
        // The same queries as two cached spans over the same keys: the last 3 rows, then the
        // 5 rows before them (keys up to each span's end).
        let spans = [CachedAttentionSpan(row: t - 3, queries: 3, keys: UnsafePointer(k.data), values: UnsafePointer(v.data), length: t),
                     CachedAttentionSpan(row: t - 8, queries: 5, keys: UnsafePointer(k.data), values: UnsafePointer(v.data), length: t - 3)]
        let cached = cachedAttention(q: q, spans: spans, heads: h, kvHeads: hkv, scale: 0.3, window: window, softcap: softcap)
        let from = (t - 8) * h * d
        #expect(zip(cached.scalars[from...], want[from...]).map { abs($0 - $1) }.max()! < 1e-5)
    }
}
