import Foundation
import Testing
@testable import Tensors

/// llama.cpp's arithmetic for GGUF models where it rounds to F16 (its GELU table, its attention
/// kernel for few queries), against a plain scalar transcription of ggml's loops (F16 scalars,
/// one element at a time) and against the exact Float32 operations they approximate.
@Suite struct HalfPrecisionArithmetic {
    /// GELU through the table equals GELU(tanh) in Float32 of the input rounded to F16, rounded to
    /// F16, for every input; 0 at or below −10, the input at or above 10; within ~1e-3 of the
    /// Float32 GELU (relative, or absolute near 0).
    @Test func geluTableIsTheHalfRoundedFormula() {
        let rng = RandomGenerator(seed: 7)
        let x = Tensor.randn([4096], rng: rng) * 4
        x.data[0] = -10; x.data[1] = 10; x.data[2] = -12.5; x.data[3] = 37; x.data[4] = 0; x.data[5] = -0.0
        let got = x.geluTanhHalfTable(), exact = x.geluTanh()
        for i in 0..<x.count {
            let v = x.data[i]
            let h = Float(Float16(v))
            let want: Float = v <= -10 ? 0 : v >= 10 ? v : Float(Float16(0.5 * h * (1 + tanhf(0.7978845608028654 * h * (1 + 0.044715 * h * h)))))
            #expect(got.data[i] == want, "x = \(v): \(got.data[i]) vs \(want)")
            #expect(abs(got.data[i] - exact.data[i]) <= 2e-3 * max(1, abs(exact.data[i])), "x = \(v)")
        }
    }

    /// The few-query kernel equals ggml's loop written out with F16 scalars (sliding window, several
    /// spans, grouped heads; the dot product in ggml's order, `halfDot`), and stays within 1e-2
    /// relative of exact Float32 attention.
    @Test func fewQueryKernelEqualsGGMLsLoop() {
        let rng = RandomGenerator(seed: 11)
        let (h, hkv, d) = (4, 2, 72)              // 72: one full block of 64 for ggml's dot order, then leftovers
        for window in [nil, 3] as [Int?] {
            // Two sequences: 1 query over 9 keys (a decoding step) and 5 queries over 5 keys (a prompt).
            let lengths = [9, 5], queries = [1, 5]
            let q = Tensor.randn([queries.reduce(0, +), h * d], rng: rng)
            let keys = lengths.map { roundToBlocks(Tensor.randn([$0, hkv * d], rng: rng), .f16) }
            let values = lengths.map { roundToBlocks(Tensor.randn([$0, hkv * d], rng: rng), .f16) }
            let spans = (0..<2).map { i in
                CachedAttentionSpan(row: i == 0 ? 0 : queries[0], queries: queries[i], keys: UnsafePointer(keys[i].data),
                                    values: UnsafePointer(values[i].data), length: lengths[i])
            }
            let got = halfPrecisionAttention(q: q, spans: spans, heads: h, kvHeads: hkv, window: window)
            let exact = cachedAttention(q: q, spans: spans, heads: h, kvHeads: hkv, window: window)
            let scale = 1 / Float(d).squareRoot()
            for (i, s) in spans.enumerated() {
                for t in 0..<s.queries {
                    for head in 0..<h {
                        let row = s.row + t, kv = head / (h / hkv), position = s.length - s.queries + t
                        let qh = (0..<d).map { Float16(q.data[row * h * d + head * d + $0]) }
                        var acc = [Float16](repeating: 0, count: d), m = -Float.infinity, sum: Float = 0
                        for key in (window.map { max(0, position - $0 + 1) } ?? 0)...position {
                            let qf = qh.map(Float.init)
                            let score = qf.withUnsafeBytes { halfDot($0.baseAddress!, UnsafeRawPointer(keys[i].data + key * hkv * d + kv * d), d) } * scale
                            var shrink: Float = 1, weight: Float = 1
                            if score > m { shrink = expf(m - score); m = score; for j in 0..<d { acc[j] = Float16(Float(acc[j]) * shrink) } }
                            else { weight = expf(score - m) }
                            for j in 0..<d { acc[j] = Float16(Float(acc[j]).addingProduct(values[i].data[key * hkv * d + kv * d + j], weight)) }
                            sum = weight.addingProduct(sum, shrink)                 // S·ms + vs, fused
                        }
                        for j in 0..<d {
                            let o = row * h * d + head * d + j
                            let want = Float(acc[j]) * (1 / sum)
                            #expect(got.data[o] == want, "window \(window ?? 0), row \(row), head \(head), \(j): \(got.data[o]) vs \(want)")
                            #expect(abs(got.data[o] - exact.data[o]) <= 1e-2 * max(abs(exact.data[o]), 0.1))
                        }
                    }
                }
            }
        }
    }
}
