#if LLM_AVX2
import CSIMD

/// ggml's arithmetic for a few input rows against block-quantized weights, with x86 integer SIMD:
///
///   each input row is quantized to 8-bit blocks: d = max|x|/127 (kept as F16), q = round(x·127/max|x|),
///   and (for Q4_1) s = F16(d·Σq);
///   per 32-value block, the weight's 4- or 8-bit values and q are multiplied as integers
///   (pmaddubsw: unsigned × signed bytes, adjacent pairs added; pmaddwd: pairs of those added; or
///   one vpdpbusd where the machine has VNNI: see llm_dot_u8s8 in CSIMD/shim.h),
///   converted to float and scaled by d_w·d_x:
///     Q4_1: y = Σ_b d_w·d_x·(q_w·q) + m_w·s        Q4_0: y = Σ_b d_w·d_x·(q_w·q − 8·Σq)
///     Q8_0, Q5_0: y = Σ_b d_w·d_x·(q_w·q)          (Q5_0's q_w = q − 16, signed like Q8_0's)
///     Q5_1: as Q4_1 with 5-bit q_w
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
    let raw = UnsafeRawPointer(qx)
    // Input rows go in groups of 8, 4 or 1 (a batch of sequences decoding together): each weight
    // block is unpacked once per group, whose sums stay in registers. Groups of 8 come first, then
    // at most one of 4, then single rows.
    /// Size of the group that starts at input g: 8, 4 or 1.
    @inline(__always) func groupSize(_ g: Int) -> Int { inputs - g >= 8 ? 8 : inputs - g >= 4 ? 4 : 1 }
    var grouped = 0                                          // the inputs in groups of 8 or 4
    while grouped < inputs && groupSize(grouped) > 1 { grouped += groupSize(grouped) }
    // Q4_1 and Q5_1 in groups take their inputs in pairs (`dotRowPairs`, `PairedInputs`). Not
    // for fewer than 4 inputs, which all go one by one: token-by-token decoding allocates nothing more.
    let pairs = (w.type == .q4_1 || w.type == .q5_1) && grouped > 0 ? PairedInputs(grouped, nb: nb) : nil
    defer { pairs?.deallocate() }
    // Quantizing the inputs is work for both threads once there are a few rows of them (a batch).
    Parallel.forEachChunk(inputs * nb, grain: 64) { blocks in
        for i in blocks {
            let (d, sum, blockSum) = quantizeActivations(x + i * 32, qx + i * 32)
            dx[i] = d
            sx[i] = blockSum
            sumq[i] = sum
            if let pairs, i < grouped * nb { pairs.place(i / nb, i % nb, qx + i * 32, d: d, s: sx[i]) }
        }
    }
    // (The row loop below touches no arrays: per-row ARC traffic on a shared array costs more than
    // the arithmetic when both threads do it.)
    // One weight row at a time, even for a single input row (token-by-token decoding): in a real
    // model every matrix streams from memory, and four rows read at once (four accumulation chains
    // sharing the activation loads) measured slower there than one row read straight through,
    // although faster on a small matrix that stays in cache (SmolLM2 Q4_1: 92 against 120 tok/s;
    // Gemma 3 Q4_K_M's Q8_0/Q5_0 matrices: 77 against 87).
    Parallel.forEachChunkDynamic(w.rows, grain: 32) { rows in
        for r in rows {
            let row = w.bytes + r * w.rowBytes
            var g = 0
            while g < inputs {
                let n = groupSize(g)
                if n == 1 {
                    y[g * w.rows + r] = dotRow1(row, w.type, nb: nb, raw + g * cols, dx + g * nb, sx + g * nb, sumq + g * nb)
                } else if let pairs {
                    let sums = dotRowPairs(row, five: w.type == .q5_1, nb: nb, eight: n == 8, UnsafeRawPointer(pairs.x + g * cols),
                                           pairs.d + g * nb * 8, pairs.s + g * nb)
                    for i in 0..<n { y[(g + i) * w.rows + r] = sums[i] }
                } else {
                    let sums = dotRow(row, w.type, nb: nb, n: n, raw + g * cols, cols: cols, dx + g * nb, sumq + g * nb)
                    for i in 0..<n { y[(g + i) * w.rows + r] = sums[i] }
                }
                g += n
            }
        }
    }
}

/// One weight row against one quantized input row (the same arithmetic, in the same order, as
/// each lane of `dotRow`; a separate function so its loop keeps everything in registers).
@inline(__always)
private func dotRow1(_ row: UnsafeRawPointer, _ type: GGMLType, nb: Int, _ xq: UnsafeRawPointer,
                     _ di: UnsafePointer<Float>, _ si: UnsafePointer<Float>, _ qi: UnsafePointer<Int32>) -> Float {
    var acc = _mm256_setzero_ps()
    var extra: Float = 0
    switch type {
    case .q4_1, .q5_1:
        let five = type == .q5_1, bytes = five ? 24 : 20
        for b in 0..<nb {
            let blk = row + b * bytes
            let xb = xq.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
            let wq = five ? fiveBits(blk + 4, blk + 8) : nibbles(blk + 4)
            let dot = llm_dot_u8s8(wq, xb)                          // 8 × i32
            acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(blk) * di[b]), _mm256_cvtepi32_ps(dot), acc)
            extra += loadHalf(blk, 2) * si[b]
        }
    case .q4_0:
        for b in 0..<nb {
            let blk = row + b * 18
            let xb = xq.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
            let dot = llm_dot_u8s8(nibbles(blk + 2), xb)
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
            let dot = llm_dot_u8s8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xb, wq))
            acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(blk) * di[b]), _mm256_cvtepi32_ps(dot), acc)
        }
    case .q5_0:
        for b in 0..<nb {
            let blk = row + b * 22
            let wq = fiveBitsSigned(blk)
            let xb = xq.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
            let dot = llm_dot_u8s8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xb, wq))
            acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(blk) * di[b]), _mm256_cvtepi32_ps(dot), acc)
        }
    default:
        preconditionFailure("quantizedGEMVInt8: \(type.name) is not a block format")
    }
    return acc.sum() + extra
}

/// The first `paired` quantized inputs (those that go in groups of 8 or 4; the rest go one by one)
/// re-laid for `dotRowPairs`, so that one 512-bit load feeds both halves of each step:
/// - x: pair p of rows (2p, 2p + 1), block b: 64 bytes at (p·nb + b)·64 (row 2p's block, then
///   row 2p + 1's); the pairs of the group at row g start at byte g·cols.
/// - d: the same pair and block: 16 floats at (p·nb + b)·16 (row 2p's d eight times, then row
///   2p + 1's); the group at row g starts at float g·nb·8.
/// - s: the block sums lane by lane, row i of block b at ((i / 8)·nb + b)·8 + i % 8 (so the
///   offset terms of a group add as one vector); the group at row g (a multiple of 8) starts at g·nb.
private struct PairedInputs {
    let nb: Int
    let x: UnsafeMutablePointer<Int8>
    let d: UnsafeMutablePointer<Float>
    let s: UnsafeMutablePointer<Float>

    init(_ paired: Int, nb: Int) {
        let groups = (paired + 7) / 8
        self.nb = nb
        x = .allocate(capacity: paired * nb * 32)
        d = .allocate(capacity: paired * nb * 8)
        s = .allocate(capacity: groups * nb * 8)
        s.update(repeating: 0, count: groups * nb * 8)   // lanes past the last input of a group of 4
    }

    /// Input row i's block b (32 values q, scale d, block sum s) in its places.
    @inline(__always) func place(_ i: Int, _ b: Int, _ q: UnsafePointer<Int8>, d di: Float, s si: Float) {
        let o = (i / 2 * nb + b), half = i % 2
        (x + o * 64 + 32 * half).update(from: q, count: 32)
        (d + o * 16 + 8 * half).update(repeating: di, count: 8)
        s[((i / 8) * nb + b) * 8 + i % 8] = si
    }

    func deallocate() { x.deallocate(); d.deallocate(); s.deallocate() }
}

/// One Q4_1 or Q5_1 weight row against a group of 8 (or 4) quantized input rows taken in pairs:
/// the weight block is unpacked once, put in both halves of a 512-bit vector, and each pair of
/// inputs gets one 512-bit step (`llm_dot_u8s8_fma_x2`) where `dotRow` takes two 256-bit ones.
/// Each half is the same arithmetic in the same order as `dotRow`'s lane for that input (and
/// `dotRow1`), so a sequence still gets the same numbers batched or alone.
@inline(__always)
private func dotRowPairs(_ row: UnsafeRawPointer, five: Bool, nb: Int, eight: Bool, _ xp: UnsafeRawPointer,
                         _ dp: UnsafePointer<Float>, _ sp: UnsafePointer<Float>) -> SIMD8<Float> {
    let bytes = five ? 24 : 20, pairBytes = nb * 64, pairFloats = nb * 16
    var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0
    var extra = _mm256_setzero_ps()                // the offset terms m_w·s_i, lane i for input i
    for b in 0..<nb {
        let blk = row + b * bytes
        let wq = five ? fiveBits(blk + 4, blk + 8) : nibbles(blk + 4), dw = loadHalf(blk), mw = loadHalf(blk, 2)
        extra = _mm256_add_ps(extra, _mm256_mul_ps(_mm256_set1_ps(mw), _mm256_loadu_ps(sp + b * 8)))
        let w2 = llm_twice(wq), dw16 = SIMD16<Float>(repeating: dw)
        @inline(__always) func step(_ acc: SIMD16<Float>, _ p: Int) -> SIMD16<Float> {
            let x = xp.loadUnaligned(fromByteOffset: p * pairBytes + b * 64, as: SIMD8<Int64>.self)
            let scale = dw16 * UnsafeRawPointer(dp + p * pairFloats + b * 16).loadUnaligned(as: SIMD16<Float>.self)
            return llm_dot_u8s8_fma_x2(acc, w2, x, scale)
        }
        a0 = step(a0, 0)
        a1 = step(a1, 1)
        if eight {
            a2 = step(a2, 2)
            a3 = step(a3, 3)
        }
    }
    var out = SIMD8<Float>()                       // as dotRow1's acc.sum() + extra
    out[0] = a0.lowHalf.sum() + extra[0]; out[1] = a0.highHalf.sum() + extra[1]
    out[2] = a1.lowHalf.sum() + extra[2]; out[3] = a1.highHalf.sum() + extra[3]
    if eight {
        out[4] = a2.lowHalf.sum() + extra[4]; out[5] = a2.highHalf.sum() + extra[5]
        out[6] = a3.lowHalf.sum() + extra[6]; out[7] = a3.highHalf.sum() + extra[7]
    }
    return out
}

/// One Q4_0, Q8_0 or Q5_0 weight row against n = 4 or 8 quantized input rows (Q4_1 and Q5_1 go
/// through `dotRowPairs`): y_i = Σ_b d_w·d_i·(q_w·q_i) (+ Q4_0's offset term), each accumulated
/// block by block exactly as `dotRow1` does, so a sequence gets the same numbers batched or alone. The sums are separate registers; only the
/// first n are computed (the branch is the same for the whole loop, which the compiler hoists).
@inline(__always)
private func dotRow(_ row: UnsafeRawPointer, _ type: GGMLType, nb: Int, n: Int, _ xq: UnsafeRawPointer, cols: Int,
                    _ dx: UnsafePointer<Float>, _ sumq: UnsafePointer<Int32>) -> SIMD8<Float> {
    let four = n >= 4, eight = n == 8
    func input(_ i: Int) -> UnsafeRawPointer { xq + (i < n ? i * cols : 0) }
    func at<T>(_ p: UnsafePointer<T>, _ i: Int) -> UnsafePointer<T> { p + (i < n ? i * nb : 0) }
    let x0 = xq, x1 = input(1), x2 = input(2), x3 = input(3), x4 = input(4), x5 = input(5), x6 = input(6), x7 = input(7)
    let d0 = dx, d1 = at(dx, 1), d2 = at(dx, 2), d3 = at(dx, 3), d4 = at(dx, 4), d5 = at(dx, 5), d6 = at(dx, 6), d7 = at(dx, 7)
    var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
    var e0: Float = 0, e1: Float = 0, e2: Float = 0, e3: Float = 0, e4: Float = 0, e5: Float = 0, e6: Float = 0, e7: Float = 0
    @inline(__always) func term(_ wq: SIMD4<Int64>, _ x: UnsafeRawPointer, _ b: Int) -> SIMD8<Float> {
        _mm256_cvtepi32_ps(llm_dot_u8s8(wq, x.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)))
    }
    // |w| × (x with w's sign): the unsigned × signed form pmaddubsw needs for Q8_0's signed weights.
    @inline(__always) func signedTerm(_ wq: SIMD4<Int64>, _ absW: SIMD4<Int64>, _ x: UnsafeRawPointer, _ b: Int) -> SIMD8<Float> {
        let xb = x.loadUnaligned(fromByteOffset: b * 32, as: SIMD4<Int64>.self)
        return _mm256_cvtepi32_ps(llm_dot_u8s8(absW, _mm256_sign_epi8(xb, wq)))
    }
    switch type {
    case .q4_0:
        let q0 = sumq, q1 = at(sumq, 1), q2 = at(sumq, 2), q3 = at(sumq, 3), q4 = at(sumq, 4), q5 = at(sumq, 5), q6 = at(sumq, 6), q7 = at(sumq, 7)
        for b in 0..<nb {
            let blk = row + b * 18
            let wq = nibbles(blk + 2), dw = loadHalf(blk)
            let c0 = dw * d0[b], c1 = dw * d1[b], c2 = dw * d2[b], c3 = dw * d3[b]
            let c4 = dw * d4[b], c5 = dw * d5[b], c6 = dw * d6[b], c7 = dw * d7[b]
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(c0), term(wq, x0, b), a0); e0 -= c0 * Float(8 * q0[b])
            if four {
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(c1), term(wq, x1, b), a1); e1 -= c1 * Float(8 * q1[b])
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(c2), term(wq, x2, b), a2); e2 -= c2 * Float(8 * q2[b])
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(c3), term(wq, x3, b), a3); e3 -= c3 * Float(8 * q3[b])
            }
            if eight {
                a4 = _mm256_fmadd_ps(_mm256_set1_ps(c4), term(wq, x4, b), a4); e4 -= c4 * Float(8 * q4[b])
                a5 = _mm256_fmadd_ps(_mm256_set1_ps(c5), term(wq, x5, b), a5); e5 -= c5 * Float(8 * q5[b])
                a6 = _mm256_fmadd_ps(_mm256_set1_ps(c6), term(wq, x6, b), a6); e6 -= c6 * Float(8 * q6[b])
                a7 = _mm256_fmadd_ps(_mm256_set1_ps(c7), term(wq, x7, b), a7); e7 -= c7 * Float(8 * q7[b])
            }
        }
    case .q8_0, .q5_0:
        let five = type == .q5_0, bytes = five ? 22 : 34
        for b in 0..<nb {
            let blk = row + b * bytes
            let wq = five ? fiveBitsSigned(blk) : blk.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self), dw = loadHalf(blk)
            let absW = _mm256_sign_epi8(wq, wq)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d0[b]), signedTerm(wq, absW, x0, b), a0)
            if four {
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d1[b]), signedTerm(wq, absW, x1, b), a1)
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d2[b]), signedTerm(wq, absW, x2, b), a2)
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d3[b]), signedTerm(wq, absW, x3, b), a3)
            }
            if eight {
                a4 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d4[b]), signedTerm(wq, absW, x4, b), a4)
                a5 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d5[b]), signedTerm(wq, absW, x5, b), a5)
                a6 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d6[b]), signedTerm(wq, absW, x6, b), a6)
                a7 = _mm256_fmadd_ps(_mm256_set1_ps(dw * d7[b]), signedTerm(wq, absW, x7, b), a7)
            }
        }
    default:
        preconditionFailure("quantizedGEMVInt8: \(type.name) is not a block format")
    }
    // Horizontal sums only for the lanes in use (seven wasted ones would cost a quarter of a
    // one-row call).
    var out = SIMD8<Float>()
    out[0] = a0.sum() + e0                         // as dotRow1's acc.sum() + extra
    if four {
        out[1] = a1.sum() + e1; out[2] = a2.sum() + e2; out[3] = a3.sum() + e3
    }
    if eight {
        out[4] = a4.sum() + e4; out[5] = a5.sum() + e5
        out[6] = a6.sum() + e6; out[7] = a7.sum() + e7
    }
    return out
}

/// 16 bytes of 4-bit values → 32 bytes: values 0–15 (low nibbles), then 16–31 (high nibbles).
@inline(__always)
func nibbles(_ p: UnsafeRawPointer) -> SIMD4<Int64> {
    let packed = p.loadUnaligned(as: SIMD2<Int64>.self), low = _mm_set1_epi8(0x0F)
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), low), _mm_and_si128(packed, low))
}

/// A Q5_0/Q5_1 block's 32 values as bytes 0…31: nibbles (at `qs`), with each value's fifth bit
/// (bit j of the u32 at `qh`) spread to byte j (byte j looks at qh byte j/8 and tests bit j%8).
@inline(__always)
func fiveBits(_ qh: UnsafeRawPointer, _ qs: UnsafeRawPointer) -> SIMD4<Int64> {
    let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(qh.loadUnaligned(as: Int32.self)),
                                     _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0))
    let bit = _mm256_set1_epi64x(Int64(bitPattern: 0x8040_2010_0804_0201))
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)               // 0xFF where the bit is set
    return _mm256_or_si256(nibbles(qs), _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
}

/// Q5_0's 32 values as signed bytes q − 16 (−16…15).
@inline(__always)
func fiveBitsSigned(_ blk: UnsafeRawPointer) -> SIMD4<Int64> {
    _mm256_sub_epi8(fiveBits(blk + 2, blk + 6), _mm256_set1_epi8(16))
}

let int8KernelsAvailable = true
#else
func quantizedGEMVInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    preconditionFailure("quantizedGEMVInt8: built without AVX2")
}
let int8KernelsAvailable = false
#endif
