#if LLM_AVX2
import CSIMD

/// ggml's arithmetic for a few input rows against block-quantized weights, with x86 integer SIMD:
///
///   each input row is quantized to 8-bit blocks: d = max|x|/127 (kept as F16), q = round(x·127/max|x|),
///   and (for Q4_1) s = F16(d·Σq);
///   per 32-value block, the weight's 4- or 8-bit values and q are multiplied as integers
///   (pmaddubsw: unsigned × signed bytes, adjacent pairs added; pmaddwd: pairs of those added),
///   converted to float and scaled by d_w·d_x:
///     Q4_1: y = Σ_b d_w·d_x·(q_w·q) + m_w·s        Q4_0: y = Σ_b d_w·d_x·(q_w·q − 8·Σq)
///     Q8_0: y = Σ_b d_w·d_x·(q_w·q)
/// The integer sums are exact, so this equals the float path over rounded activations up to the
/// order of float additions, at a third of the instructions per block.
func quantizedGEMVInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    let cols = w.cols, nb = cols / 32
    // The inputs as 8-bit blocks: values, scales d (F16-rounded), block sums s = F16(d·Σq), Σq.
    let qx = UnsafeMutablePointer<Int8>.allocate(capacity: inputs * cols)
    let dx = UnsafeMutablePointer<Float>.allocate(capacity: inputs * nb)
    let sx = UnsafeMutablePointer<Float>.allocate(capacity: inputs * nb)
    let sumq = UnsafeMutablePointer<Int32>.allocate(capacity: inputs * nb)
    defer { qx.deallocate(); dx.deallocate(); sx.deallocate(); sumq.deallocate() }
    for i in 0..<(inputs * nb) {
        let (d, sum, dRaw) = quantizeActivations(x + i * 32, qx + i * 32)
        dx[i] = d
        sx[i] = Float(Float16(dRaw * Float(sum)))
        sumq[i] = sum
    }
    let raw = UnsafeRawPointer(qx)
    let ones = _mm256_set1_epi16(1)
    Parallel.forEachChunk(w.rows, grain: 32) { rows in
        for r in rows {
            let row = w.bytes + r * w.rowBytes
            for i in 0..<inputs {
                let xq = raw + i * cols, di = dx + i * nb
                var acc = _mm256_setzero_ps()
                var extra: Float = 0
                switch w.type {
                case .q4_1:
                    let si = sx + i * nb
                    for b in 0..<nb {
                        let blk = row + b * 20
                        let wq = nibbles(blk + 4)
                        let xb = xq.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
                        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xb), ones)          // 8 × i32
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(blk) * di[b]), _mm256_cvtepi32_ps(dot), acc)
                        extra += loadHalf(blk, 2) * si[b]
                    }
                case .q4_0:
                    let qi = sumq + i * nb
                    for b in 0..<nb {
                        let blk = row + b * 18
                        let wq = nibbles(blk + 2)
                        let xb = xq.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
                        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xb), ones)
                        let scale = loadHalf(blk) * di[b]
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(dot), acc)
                        extra -= scale * Float(8 * qi[b])
                    }
                case .q8_0:
                    for b in 0..<nb {
                        let blk = row + b * 34
                        let wq = blk.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self)
                        let xb = xq.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
                        // |w| × (x with w's sign): the unsigned × signed form pmaddubsw needs.
                        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xb, wq)), ones)
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(blk) * di[b]), _mm256_cvtepi32_ps(dot), acc)
                    }
                default:
                    preconditionFailure("quantizedGEMVInt8: \(w.type.name) is not a block format")
                }
                y[i * w.rows + r] = acc.sum() + extra
            }
        }
    }
}

/// 16 bytes of 4-bit values → 32 bytes: values 0–15 (low nibbles), then 16–31 (high nibbles).
@inline(__always)
private func nibbles(_ p: UnsafeRawPointer) -> SIMD4<Int64> {
    let packed = p.loadUnaligned(as: SIMD2<Int64>.self), low = _mm_set1_epi8(0x0F)
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), low), _mm_and_si128(packed, low))
}

let int8KernelsAvailable = true
#else
func quantizedGEMVInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    preconditionFailure("quantizedGEMVInt8: built without AVX2")
}
let int8KernelsAvailable = false
#endif
