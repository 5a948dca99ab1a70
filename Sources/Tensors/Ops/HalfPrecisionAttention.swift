import Foundation

/// Fewer query rows than this in one pass (a decoding step, a short prompt) go through
/// llama.cpp's per-query flash-attention kernel, which sums in F16; with this many or more it
/// takes a tiled kernel that sums in Float32 (ggml-cpu's `GGML_FA_TILE_Q`).
public let halfPrecisionFewQueries = 64

/// Attention of a few queries against F16 keys and values in llama.cpp's arithmetic: its CPU
/// flash-attention kernel for fewer than `halfPrecisionFewQueries` query rows. Per query and
/// head, the query rounded to F16; then key by key in cache order, over the keys it sees:
///
///   s = scale·(q·k)                 [soft-cap: c·tanh(s/c)]           (Float32, ggml's order)
///   new maximum M:  acc ← f16(acc · e^(M_old − M)),  S ← S·e^(M_old − M) + 1,  w = 1
///   else:           w = e^(s − M),                    S ← S + w
///   acc ← f16(acc + w·v)
///   out = acc · (1/S)                                                  (Float32)
///
/// The running sum acc of the weighted values is rounded to F16 after every key, so the result
/// differs from the exact softmax by up to about 1e-3 relative; llama.cpp's numbers carry that
/// rounding, and so do ours for GGUF models (`Attention.halfPrecision`). Keys and values must
/// already be F16 values (as the cache holds them); layouts as `cachedAttention`'s:
///   q (rows, H·D), each span's keys and values (length, Hkv·D) → out (rows, H·D).
public func halfPrecisionAttention(q: Tensor, spans: [CachedAttentionSpan], heads h: Int, kvHeads hkv: Int,
                                   scale: Float? = nil, window: Int? = nil, softcap: Float? = nil) -> Tensor {
    guard q.rank == 2, hkv > 0, h % hkv == 0, q.shape[1] % h == 0 else {
        fatalError(ShapeError(op: "attention (F16)", message: "q \(Shape.describe(q.shape)) for \(h) heads, \(hkv) kv heads").description)
    }
    let d = q.shape[1] / h, group = h / hkv, sc = scale ?? 1 / Float(d).squareRoot()
    precondition(softcap.map { $0 > 0 } ?? true, "attention (F16): soft-cap \(softcap ?? 0) must be positive")
    precondition(window.map { $0 > 0 } ?? true, "attention (F16): window \(window ?? 0) must be positive")
    for s in spans {
        precondition(s.queries > 0 && s.row >= 0 && s.row + s.queries <= q.shape[0] && s.length >= s.queries,
                     "attention (F16): span of \(s.queries) queries at row \(s.row) with \(s.length) keys for q \(Shape.describe(q.shape))")
    }
    let out = Tensor(uninitialized: q.shape)
    // One task per (span, query, head).
    var firstTask = [0]
    for s in spans { firstTask.append(firstTask.last! + s.queries * h) }
    let qd = q.data, od = out.data
    // Tasks differ in length (each sequence has its own number of keys): threads claim pieces as they go.
    Parallel.forEachChunkDynamic(firstTask.last!, grain: 4) { tasks in
        let query = UnsafeMutablePointer<Float>.allocate(capacity: d)
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: d)            // F16 values
        defer { query.deallocate(); acc.deallocate() }
        let vectors = d / 16                                                 // then d % 16 one by one
        var i = 0
        for task in tasks {
            while firstTask[i + 1] <= task { i += 1 }
            let s = spans[i], local = task - firstTask[i], t = local / h, head = local % h, kvHead = head / group
            let row = s.row + t, position = s.length - s.queries + t            // the query's index among the keys
            let first = window.map { max(0, position - $0 + 1) } ?? 0
            let qRow = qd + row * h * d + head * d
            for j in 0..<d { query[j] = Float(Float16(qRow[j])); acc[j] = 0 }
            var maximum = -Float.infinity, sum: Float = 0
            for key in first...position {
                let k = s.keys + key * hkv * d + kvHead * d, v = s.values + key * hkv * d + kvHead * d
                var score = halfDot(UnsafeRawPointer(query), UnsafeRawPointer(k), d) * sc
                if let softcap { score = softcap * tanhf(score / softcap) }
                var weight: Float = 1                                                // e^(s − M)
                if score > maximum {                                                 // a new maximum: rescale what was summed
                    let shrink = expf(maximum - score)
                    sum = weight.addingProduct(sum, shrink)                          // S·e^(M_old − M) + 1, fused as ggml's build does
                    maximum = score
                    for j in 0..<vectors { store(roundedToHalf(load(acc, j) * shrink), acc, j) }
                    for j in (16 * vectors)..<d { acc[j] = Float(Float16(acc[j] * shrink)) }
                } else {
                    weight = expf(score - maximum)
                    sum += weight
                }
                for j in 0..<vectors { store(roundedToHalf(load(acc, j).addingProduct(load(v, j), weight)), acc, j) }   // fused, as ggml's FMA
                for j in (16 * vectors)..<d { acc[j] = Float(Float16(acc[j].addingProduct(v[j], weight))) }
            }
            let inverse: Float = sum == 0 ? 0 : 1 / sum
            let o = od + row * h * d + head * d
            for j in 0..<d { o[j] = acc[j] * inverse }
        }
    }
    return out
}

@inline(__always) private func load(_ p: UnsafePointer<Float>, _ j: Int) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(fromByteOffset: 64 * j, as: SIMD16<Float>.self)
}
@inline(__always) private func load(_ p: UnsafeMutablePointer<Float>, _ j: Int) -> SIMD16<Float> { load(UnsafePointer(p), j) }
@inline(__always) private func store(_ x: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ j: Int) {
    UnsafeMutableRawPointer(p).storeBytes(of: x, toByteOffset: 64 * j, as: SIMD16<Float>.self)
}

/// Each lane rounded to the nearest F16 value (ties to even), back as Float.
@inline(__always) func roundedToHalf(_ x: SIMD16<Float>) -> SIMD16<Float> {
    SIMD16<Float>(SIMD16<Float16>(x))
}

/// q·k for F16 values in ggml's order (ggml_vec_dot_f16 with AVX-512): 4 accumulators of 16
/// lanes, chunk j of 16 values into accumulator j mod 4 with FMA; then (a0 + a2) + (a1 + a3),
/// its 16 lanes halved pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1); values past the last multiple of 64
/// added one by one in Double.
@inline(__always) func halfDot(_ q: UnsafeRawPointer, _ k: UnsafeRawPointer, _ d: Int) -> Float {
    var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0
    let full = d & ~63
    var i = 0
    while i < full {
        a0.addProduct(q.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self), k.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self))
        a1.addProduct(q.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self), k.loadUnaligned(fromByteOffset: 4 * i + 64, as: SIMD16<Float>.self))
        a2.addProduct(q.loadUnaligned(fromByteOffset: 4 * i + 128, as: SIMD16<Float>.self), k.loadUnaligned(fromByteOffset: 4 * i + 128, as: SIMD16<Float>.self))
        a3.addProduct(q.loadUnaligned(fromByteOffset: 4 * i + 192, as: SIMD16<Float>.self), k.loadUnaligned(fromByteOffset: 4 * i + 192, as: SIMD16<Float>.self))
        i += 64
    }
    let x = (a0 + a2) + (a1 + a3)
    let x8 = x.highHalf + x.lowHalf, x4 = x8.highHalf + x8.lowHalf
    let x2 = x4.highHalf + x4.lowHalf
    var sum = Double(x2[0] + x2[1])
    while i < d {
        sum += Double(q.load(fromByteOffset: 4 * i, as: Float.self) * k.load(fromByteOffset: 4 * i, as: Float.self))
        i += 1
    }
    return Float(sum)
}

