#if LLM_AVX2
import CSIMD

/// ggml's arithmetic for a few input rows against Q4_K, Q5_K and Q6_K weights, with x86 integer SIMD
/// (AVX2 only, so it runs on Zen 3 as well as on AVX-512 machines):
///
///   each input row is quantized to Q8_K per 256 values (`quantizeQ8_K`): d_x, int8 q, and the
///   sums of q per 16 (bsums);
///   per super-block, the weight's unsigned 4-, 5- or 6-bit values and q are multiplied as integers
///   (pmaddubsw, pairs added), times each sub-block's integer scale (pmaddwd), summed exactly in
///   int32, converted to float once and scaled by d_w·d_x:
///     Q4_K: y = Σ_sb d_x·d_w·Σ_j scale_j·(q_w·q)_j − d_x·dmin_w·Σ_j min_j·(bsum_2j + bsum_2j+1)
///     Q5_K: as Q4_K, with 5-bit q_w (the fifth bits from qh)
///     Q6_K: y = Σ_sb d_x·d_w·(Σ_j scale_j·(q_w·q)_j − 32·Σ_j scale_j·bsum_j)
/// as ggml's ggml_vec_dot_q4_K_q8_K / q5_K_q8_K / q6_K_q8_K do (the int32 sums are identical; only the order
/// of the float additions differs).

/// y (inputs, rows) for Q4_K, Q5_K or Q6_K weights; inputs ≤ 16.
func quantizedGEMVInt8K(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    let cols = w.cols, nb = cols / 256
    let qx = UnsafeMutablePointer<Int8>.allocate(capacity: inputs * cols)
    let dx = UnsafeMutablePointer<Float>.allocate(capacity: inputs * nb)
    let bsums = UnsafeMutablePointer<Int16>.allocate(capacity: inputs * cols / 16)
    defer { qx.deallocate(); dx.deallocate(); bsums.deallocate() }
    for i in 0..<(inputs * nb) { dx[i] = quantizeQ8_K(x + i * 256, qx + i * 256, bsums + i * 16) }
    let q6 = w.type == .q6_K, five = w.type == .q5_K
    Parallel.forEachChunkDynamic(w.rows, grain: 32) { rows in
        for r in rows {
            let row = w.bytes + r * w.rowBytes
            for i in 0..<inputs {
                let xq = UnsafeRawPointer(qx + i * cols), di = dx + i * nb, bs = bsums + i * cols / 16
                y[i * w.rows + r] = q6 ? dotQ6_KInt8(row, nb: nb, xq, di, bs) : dotQ4_KInt8(row, five: five, nb: nb, xq, di, bs)
            }
        }
    }
}

/// One Q4_K row (or, with `five`, Q5_K) · one Q8_K input row. The two formats share the
/// header (d, dmin, 12 bytes of 6-bit scales and mins); Q5_K then has 32 bytes qh, whose bit 2j
/// of byte l is the fifth bit of value 64j + l and bit 2j + 1 that of value 64j + 32 + l, before
/// the nibbles (144 + 32 = 176 bytes a super-block).
@inline(__always)
private func dotQ4_KInt8(_ row: UnsafeRawPointer, five: Bool, nb: Int, _ xq: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                         _ bsums: UnsafePointer<Int16>) -> Float {
    let low4 = _mm256_set1_epi8(0x0F), bit0 = _mm256_set1_epi8(0x01)
    let blockBytes = five ? 176 : 144, nibbleOffset = five ? 48 : 16
    var acc = _mm256_setzero_ps()
    var accMin = _mm_setzero_ps()
    for b in 0..<nb {
        let blk = row + b * blockBytes, q8 = xq + b * 256
        // Q5_K's fifth bits, shifted down by 2 per 64 values.
        var qh = five ? blk.loadUnaligned(fromByteOffset: 16, as: SIMD4<Int64>.self) : _mm256_setzero_si256()
        // The 12 scale bytes → 8 scales (u0, u1) and 8 mins (u2, u3), one byte each (see scaleMin).
        let s0 = blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let s1 = blk.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let s2 = blk.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        let u0 = s0 & 0x3F3F_3F3F
        let u1 = (s2 & 0x0F0F_0F0F) | ((s0 >> 6) & 0x0303_0303) << 4
        let u2 = s1 & 0x3F3F_3F3F
        let u3 = ((s2 >> 4) & 0x0F0F_0F0F) | ((s1 >> 6) & 0x0303_0303) << 4
        // Σ_j min_j·(bsum_2j + bsum_2j+1): pmaddwd of the mins with the pairwise bsums.
        let sums = UnsafeRawPointer(bsums + b * 16)
        let pairs = _mm_hadd_epi16(sums.loadUnaligned(as: SIMD2<Int64>.self), sums.loadUnaligned(fromByteOffset: 16, as: SIMD2<Int64>.self))
        let mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, Int32(bitPattern: u3), Int32(bitPattern: u2)))
        accMin = _mm_fmadd_ps(_mm_set1_ps(-dx[b] * loadHalf(blk, 2)), _mm_cvtepi32_ps(_mm_madd_epi16(mins, pairs)), accMin)

        var sumi = _mm256_setzero_si256()
        for j in 0..<4 {
            let scales = j < 2 ? u0 : u1, shift = UInt32(16 * (j & 1))
            let bits = blk.loadUnaligned(fromByteOffset: nibbleOffset + 32 * j, as: SIMD4<Int64>.self)
            var lo = _mm256_and_si256(bits, low4), hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4)
            if five {                                   // + 16 where the value's fifth bit is set
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, bit0), 4))
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 1), bit0), 4))
                qh = _mm256_srli_epi16(qh, 2)
            }
            let pl = _mm256_maddubs_epi16(lo, q8.loadUnaligned(fromByteOffset: 64 * j, as: SIMD4<Int64>.self))
            let ph = _mm256_maddubs_epi16(hi, q8.loadUnaligned(fromByteOffset: 64 * j + 32, as: SIMD4<Int64>.self))
            let sl = _mm256_set1_epi16(Int16((scales >> shift) & 0xFF)), sh = _mm256_set1_epi16(Int16((scales >> (shift + 8)) & 0xFF))
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(pl, sl), _mm256_madd_epi16(ph, sh)))
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx[b] * loadHalf(blk)), _mm256_cvtepi32_ps(sumi), acc)
    }
    return acc.sum() + (accMin[0] + accMin[1] + accMin[2] + accMin[3])
}

/// One Q6_K row · one Q8_K input row (6-bit values taken unsigned, 0…63; the −32 comes back
/// through the bsums).
@inline(__always)
private func dotQ6_KInt8(_ row: UnsafeRawPointer, nb: Int, _ xq: UnsafeRawPointer, _ dx: UnsafePointer<Float>,
                         _ bsums: UnsafePointer<Int16>) -> Float {
    let low4 = _mm256_set1_epi8(0x0F), bits01 = _mm256_set1_epi8(0x03), bits23 = _mm256_set1_epi8(0x0C)
    let bits45 = _mm256_set1_epi8(0x30), bits67 = _mm256_set1_epi8(-64)
    var acc = _mm256_setzero_ps()
    for b in 0..<nb {
        let blk = row + b * 210, q8 = xq + b * 256
        let scales8 = blk.loadUnaligned(fromByteOffset: 192, as: SIMD2<Int64>.self)
        let scales16 = _mm256_cvtepi8_epi16(scales8)                                     // 16 × i16
        let sums = UnsafeRawPointer(bsums + b * 16).loadUnaligned(as: SIMD4<Int64>.self)
        var sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sums, scales16), 5))
        for h in 0..<2 {
            let a = blk.loadUnaligned(fromByteOffset: 64 * h, as: SIMD4<Int64>.self)
            let c = blk.loadUnaligned(fromByteOffset: 64 * h + 32, as: SIMD4<Int64>.self)
            let hb = blk.loadUnaligned(fromByteOffset: 128 + 32 * h, as: SIMD4<Int64>.self)
            let q0 = _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_slli_epi16(_mm256_and_si256(hb, bits01), 4))
            let q1 = _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_slli_epi16(_mm256_and_si256(hb, bits23), 2))
            let q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(hb, bits45))
            let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4), _mm256_srli_epi16(_mm256_and_si256(hb, bits67), 2))
            // Sub-block scales: 32 values = two groups of 16, so i16 lanes 0–7 take scale g = 8h + 2k,
            // lanes 8–15 scale g + 1 (a byte shuffle of the 16 scales, then widened).
            @inline(__always) func term(_ q: SIMD4<Int64>, _ k: Int) -> SIMD4<Int64> {
                let g = Int64(8 * h + 2 * k)
                let pick = _mm_set_epi64x(0x0101_0101_0101_0101 &* (g + 1), 0x0101_0101_0101_0101 &* g)
                let scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, pick))
                return _mm256_madd_epi16(_mm256_maddubs_epi16(q, q8.loadUnaligned(fromByteOffset: 128 * h + 32 * k, as: SIMD4<Int64>.self)), scale)
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(term(q0, 0), term(q1, 1)))
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(term(q2, 2), term(q3, 3)))
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx[b] * loadHalf(blk, 208)), _mm256_cvtepi32_ps(sumi), acc)
    }
    return acc.sum()
}
#else
func quantizedGEMVInt8K(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    preconditionFailure("quantizedGEMVInt8K: built without AVX2")
}
#endif
