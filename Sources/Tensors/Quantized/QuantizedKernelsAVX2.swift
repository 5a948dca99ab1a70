#if LLM_AVX2
import CSIMD

/// ggml's arithmetic for a few input rows against block-quantized weights, with x86 integer SIMD:
///
///   each input row is quantized to 8-bit blocks: d = max|x|/127 (kept as F16), q = round(x·127/max|x|),
///   and (for Q4_1, Q5_1) s = F16(d·Σq);
///   per 32-value block, the weight's values as unsigned bytes u and q are multiplied as integers
///   (vpdpbusd: unsigned × signed bytes, four products added into each 32-bit lane, where the
///   machine has VNNI; pmaddubsw + pmaddwd elsewhere), and a format's offset o is taken in integers,
///   Σ (u − o)·q = Σ u·q − o·Σq, which is exactly ggml's signed dot product:
///     Q4_0: u = q_w, o = 8     Q5_0: u = q_w, o = 16     Q8_0: u = q_w + 128, o = 128
///     Q4_1, Q5_1: u = q_w, no offset, but the term m_w·s added per block
///   then converted to float (exactly) and scaled per block as ggml's kernels do:
///     y = Σ_b (d_w·d_x)·dot_b (+ m_w·s_b)
/// ggml converts each lane's 4 products and adds them up in float; here the whole block's 32 are
/// summed in integers first (exact), which leaves one conversion and one FMA per block, and lets
/// a batch add 8 inputs' blocks in one vector (below). The order of float additions differs from
/// ggml's, which moves logits by rounding noise only (README, "llama.cpp's arithmetic").
///
/// The float additions run in one order for every input count, so that a sequence gets the same
/// numbers decoding alone or batched with others: eight partial sums T_j, block b going to T_(b mod 8)
/// as T = fma(m_w, s_b, T) (Q4_1, Q5_1), then T = fma(d_w·d_x, dot_b, T) (the
/// integer sums' long chain last); y = ((T0 + T4) + (T2 + T6)) + ((T1 + T5) + (T3 + T7)).
/// - One input row (token-by-token decoding, `dotRow1`): T is one vector whose lane j takes the
///   blocks 8c + j; eight blocks' integer dot products go in one vector per step.
/// - 2 to 16 input rows (a batch of sequences, `dotRowGroup`): groups of 8 inputs, one input per
///   lane, so the T_j are eight vectors; each weight block is unpacked once for the 8 inputs and
///   needs no horizontal sums (`InputGroups`, `llm_dot_block_x8`).

func quantizedGEMVInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    switch w.type {
    case .q4_0: gemv(Q4_0Blocks.self, x, inputs: inputs, w, y)
    case .q4_1: gemv(Q4_1Blocks.self, x, inputs: inputs, w, y)
    case .q5_0: gemv(Q5_0Blocks.self, x, inputs: inputs, w, y)
    case .q5_1: gemv(Q5_1Blocks.self, x, inputs: inputs, w, y)
    case .q8_0: gemv(Q8_0Blocks.self, x, inputs: inputs, w, y)
    default: preconditionFailure("quantizedGEMVInt8: \(w.type.name) is not a block format")
    }
}

/// `quantizedGEMVInt8` for one format (specialized per format, so that its constants fold).
@inline(__always)
private func gemv<F: BlockFormat>(_ f: F.Type, _ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix,
                                  _ y: UnsafeMutablePointer<Float>) {
    let cols = w.cols, nb = cols / 32
    if inputs == 1 {
        // The input as 8-bit blocks: values, scales d (F16-rounded), block sums s = F16(d·Σq), Σq;
        // d, s and Σq padded with zeros to whole groups of 8 blocks.
        let padded = (nb + 7) & ~7
        let qx = UnsafeMutablePointer<Int8>.allocate(capacity: cols)
        let dx = UnsafeMutablePointer<Float>.allocate(capacity: padded)
        let sx = UnsafeMutablePointer<Float>.allocate(capacity: padded)
        let sumq = UnsafeMutablePointer<Int32>.allocate(capacity: padded)
        defer { qx.deallocate(); dx.deallocate(); sx.deallocate(); sumq.deallocate() }
        for b in 0..<padded {
            if b < nb {
                (dx[b], sumq[b], sx[b]) = quantizeActivations(x + b * 32, qx + b * 32)
            } else {
                (dx[b], sumq[b], sx[b]) = (0, 0, 0)
            }
        }
        // (The row loop touches no arrays: per-row ARC traffic on a shared array costs more than the
        // arithmetic when both threads do it.)
        Parallel.forEachChunkDynamic(w.rows, grain: 32) { rows in
            for r in rows {
                y[r] = dotRow1(f, w.bytes + r * w.rowBytes, nb: nb, UnsafeRawPointer(qx), dx, sx, sumq)
            }
        }
        return
    }
    let groups = InputGroups(x, inputs: inputs, cols: cols)
    defer { groups.deallocate() }
    Parallel.forEachChunkDynamic(w.rows, grain: 32) { rows in
        for r in rows {
            let row = w.bytes + r * w.rowBytes
            for g in 0..<groups.count {
                let sums = dotRowGroup(f, row, nb: nb, groups, g)
                for i in 0..<min(8, inputs - 8 * g) { y[(8 * g + i) * w.rows + r] = sums[i] }
            }
        }
    }
}

/// Where a 32-value block format keeps its parts, and how its values become unsigned bytes u.
private protocol BlockFormat {
    static var bytes: Int { get }                  // per block
    static var shift: Int32 { get }                // o = 2^shift (0: no offset)
    static var hasMinimum: Bool { get }            // Q4_1, Q5_1: the F16 after d is m
    /// Σ_v u_v·x_v per group of 4 values (8 × i32) for one block and one input's 32 int8 values.
    static func dot(_ blk: UnsafeRawPointer, _ x: SIMD4<Int64>) -> SIMD4<Int64>
    /// Σ_v u_v·x_i,v for the 8 inputs of a group (lane i), x laid out as in `InputGroups`.
    static func dot8(_ blk: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64>
}

/// 16 bytes of 4-bit values against a group: low nibbles are values 0–15, high nibbles 16–31.
@inline(__always) private func nibblesDot8(_ qs: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64> {
    let packed = llm_bytes16_twice(qs), low = _mm256_set1_epi8(0x0F)
    return llm_dot_block_x8(_mm256_and_si256(packed, low), _mm256_and_si256(_mm256_srli_epi16(packed, 4), low), x)
}

/// 32 unpacked bytes (values 0–15 in the low half, 16–31 in the high half) against a group.
@inline(__always) private func bytesDot8(_ v: SIMD4<Int64>, _ x: UnsafeRawPointer) -> SIMD4<Int64> {
    llm_dot_block_x8(llm_half_twice(v, 0), llm_half_twice(v, 1), x)
}

private enum Q4_0Blocks: BlockFormat {               // d, 16 bytes of nibbles
    static var bytes: Int { 18 }
    static var shift: Int32 { 3 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func dot(_ blk: UnsafeRawPointer, _ x: SIMD4<Int64>) -> SIMD4<Int64> { llm_dot_u8s8(nibbles(blk + 2), x) }
    @inline(__always) static func dot8(_ blk: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64> { nibblesDot8(blk + 2, x) }
}

private enum Q4_1Blocks: BlockFormat {               // d, m, 16 bytes of nibbles
    static var bytes: Int { 20 }
    static var shift: Int32 { 0 }
    static var hasMinimum: Bool { true }
    @inline(__always) static func dot(_ blk: UnsafeRawPointer, _ x: SIMD4<Int64>) -> SIMD4<Int64> { llm_dot_u8s8(nibbles(blk + 4), x) }
    @inline(__always) static func dot8(_ blk: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64> { nibblesDot8(blk + 4, x) }
}

private enum Q5_0Blocks: BlockFormat {               // d, 4 bytes of fifth bits, 16 bytes of nibbles
    static var bytes: Int { 22 }
    static var shift: Int32 { 4 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func dot(_ blk: UnsafeRawPointer, _ x: SIMD4<Int64>) -> SIMD4<Int64> { llm_dot_u8s8(fiveBits(blk + 2, blk + 6), x) }
    @inline(__always) static func dot8(_ blk: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64> { bytesDot8(fiveBits(blk + 2, blk + 6), x) }
}

private enum Q5_1Blocks: BlockFormat {               // d, m, 4 bytes of fifth bits, 16 bytes of nibbles
    static var bytes: Int { 24 }
    static var shift: Int32 { 0 }
    static var hasMinimum: Bool { true }
    @inline(__always) static func dot(_ blk: UnsafeRawPointer, _ x: SIMD4<Int64>) -> SIMD4<Int64> { llm_dot_u8s8(fiveBits(blk + 4, blk + 8), x) }
    @inline(__always) static func dot8(_ blk: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64> { bytesDot8(fiveBits(blk + 4, blk + 8), x) }
}

/// Q8_0 (d, 32 signed bytes): the weights as unsigned bytes w + 128, offset o = 128, where the
/// machine has VNNI (vpdpbusd takes any unsigned byte); elsewhere pmaddubsw would saturate on
/// them, so the weights go as |w| against x with w's sign, with no offset.
private enum Q8_0Blocks: BlockFormat {
    static var bytes: Int { 34 }
    static var shift: Int32 { llm_has_vnni() != 0 ? 7 : 0 }
    static var hasMinimum: Bool { false }
    @inline(__always) static func dot(_ blk: UnsafeRawPointer, _ x: SIMD4<Int64>) -> SIMD4<Int64> {
        let w = blk.loadUnaligned(fromByteOffset: 2, as: SIMD4<Int64>.self)
        if llm_has_vnni() != 0 { return llm_dot_u8s8(_mm256_xor_si256(w, _mm256_set1_epi8(-128)), x) }
        return llm_dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
    }
    @inline(__always) static func dot8(_ blk: UnsafeRawPointer, _ x: UnsafeRawPointer) -> SIMD4<Int64> {
        let lo = llm_bytes16_twice(blk + 2), hi = llm_bytes16_twice(blk + 18)
        if llm_has_vnni() != 0 {
            let sign = _mm256_set1_epi8(-128)
            return llm_dot_block_x8(_mm256_xor_si256(lo, sign), _mm256_xor_si256(hi, sign), x)
        }
        return llm_dot_block_signed_x8(lo, hi, x)
    }
}

/// One weight row against one quantized input row (`quantizedGEMVInt8`'s order of float additions).
@inline(__always)
private func dotRow1<F: BlockFormat>(_ f: F.Type, _ row: UnsafeRawPointer, nb: Int, _ xq: UnsafeRawPointer,
                     _ dx: UnsafePointer<Float>, _ sx: UnsafePointer<Float>, _ sumq: UnsafePointer<Int32>) -> Float {
    var acc = _mm256_setzero_ps()                  // lane j: blocks 8c + j
    let zero = _mm256_setzero_si256()
    /// Blocks c..<c + n (n ≤ 8) into acc.
    @inline(__always) func eight(_ c: Int, _ n: Int) {
        @inline(__always) func dot(_ j: Int) -> SIMD4<Int64> {
            j < n ? f.dot(row + (c + j) * f.bytes, xq.loadUnaligned(fromByteOffset: (c + j) * 32, as: SIMD4<Int64>.self)) : zero
        }
        var dots = llm_sum_lanes_x8(dot(0), dot(1), dot(2), dot(3), dot(4), dot(5), dot(6), dot(7))   // lane j: block c + j
        if f.shift > 0 {
            let sums = UnsafeRawPointer(sumq + c).loadUnaligned(as: SIMD4<Int64>.self)
            dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(sums, f.shift))
        }
        let words = llm_gather_words(row + c * f.bytes, Int32(f.bytes), Int32(n))   // d (and m) of each block
        if f.hasMinimum { acc = _mm256_fmadd_ps(llm_halves_x8(words, 1), _mm256_loadu_ps(sx + c), acc) }
        let scale = _mm256_mul_ps(llm_halves_x8(words, 0), _mm256_loadu_ps(dx + c))
        acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots), acc)
    }
    var c = 0
    while c + 8 <= nb { eight(c, 8); c += 8 }
    if c < nb { eight(c, nb - c) }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// The quantized inputs of a batch in groups of 8 (the last one padded with zero inputs), laid out
/// for `dotRowGroup`: group g, block b has
/// - x: 256 bytes at (g·nb + b)·256: [group k of 4 values][input i][4 bytes]
/// - d, s (floats), Σq (Int32): 8 lanes at (g·nb + b)·8, lane i for input i.
private struct InputGroups {
    let count: Int, nb: Int
    let x: UnsafeMutableRawPointer
    let d: UnsafeMutablePointer<Float>
    let s: UnsafeMutablePointer<Float>
    let sumq: UnsafeMutablePointer<Int32>

    init(_ input: UnsafePointer<Float>, inputs: Int, cols: Int) {
        let nb = cols / 32, count = (inputs + 7) / 8
        self.count = count
        self.nb = nb
        x = .allocate(byteCount: count * nb * 256, alignment: 64)
        d = .allocate(capacity: count * nb * 8)
        s = .allocate(capacity: count * nb * 8)
        sumq = .allocate(capacity: count * nb * 8)
        if inputs % 8 != 0 {                              // the padding inputs
            x.initializeMemory(as: UInt8.self, repeating: 0, count: count * nb * 256)
            d.initialize(repeating: 0, count: count * nb * 8)
            s.initialize(repeating: 0, count: count * nb * 8)
            sumq.initialize(repeating: 0, count: count * nb * 8)
        }
        let (x, d, s, sumq) = (self.x, self.d, self.s, self.sumq)
        // Quantizing the inputs is work for both threads: one (group, block) at a time, so that
        // each thread writes whole cache lines of its own (one per input would share them all).
        Parallel.forEachChunk(count * nb, grain: 8) { items in
            for item in items {
                let g = item / nb, b = item % nb
                for lane in 0..<min(8, inputs - 8 * g) {
                    let values: SIMD4<Int64>
                    (values, d[item * 8 + lane], sumq[item * 8 + lane], s[item * 8 + lane]) = quantizedBlock(input + (8 * g + lane) * cols + b * 32)
                    // Group by group from the register (a 4-byte load of a vector just stored would
                    // wait for the store).
                    let words = unsafeBitCast(values, to: SIMD8<UInt32>.self)
                    for group in 0..<8 { x.storeBytes(of: words[group], toByteOffset: (item * 8 + group) * 32 + lane * 4, as: UInt32.self) }
                }
            }
        }
    }

    func deallocate() { x.deallocate(); d.deallocate(); s.deallocate(); sumq.deallocate() }
}

/// One weight row against the 8 inputs of group g (lane i: input 8g + i): each weight block is
/// unpacked once for all 8, its integer dot products land one per lane, and lane i's float
/// arithmetic is `dotRow1`'s for that input, in the same order.
@inline(__always)
private func dotRowGroup<F: BlockFormat>(_ f: F.Type, _ row: UnsafeRawPointer, nb: Int, _ groups: InputGroups, _ g: Int) -> SIMD8<Float> {
    let x = UnsafeRawPointer(groups.x) + g * nb * 256
    let d = groups.d + g * nb * 8, s = groups.s + g * nb * 8, sumq = groups.sumq + g * nb * 8
    @inline(__always) func block(_ b: Int, _ acc: SIMD8<Float>) -> SIMD8<Float> {
        let blk = row + b * f.bytes
        var dots = f.dot8(blk, x + b * 256)
        if f.shift > 0 {
            dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(UnsafeRawPointer(sumq + b * 8).loadUnaligned(as: SIMD4<Int64>.self), f.shift))
        }
        var acc = acc
        if f.hasMinimum { acc = _mm256_fmadd_ps(_mm256_set1_ps(loadHalf(blk, 2)), _mm256_loadu_ps(s + b * 8), acc) }
        let scale = _mm256_mul_ps(_mm256_set1_ps(loadHalf(blk)), _mm256_loadu_ps(d + b * 8))
        return _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots), acc)
    }
    var t0 = SIMD8<Float>(), t1 = t0, t2 = t0, t3 = t0, t4 = t0, t5 = t0, t6 = t0, t7 = t0
    var c = 0
    while c + 8 <= nb {
        t0 = block(c, t0); t1 = block(c + 1, t1); t2 = block(c + 2, t2); t3 = block(c + 3, t3)
        t4 = block(c + 4, t4); t5 = block(c + 5, t5); t6 = block(c + 6, t6); t7 = block(c + 7, t7)
        c += 8
    }
    let rest = nb - c
    if rest > 0 { t0 = block(c, t0) }
    if rest > 1 { t1 = block(c + 1, t1) }
    if rest > 2 { t2 = block(c + 2, t2) }
    if rest > 3 { t3 = block(c + 3, t3) }
    if rest > 4 { t4 = block(c + 4, t4) }
    if rest > 5 { t5 = block(c + 5, t5) }
    if rest > 6 { t6 = block(c + 6, t6) }
    return ((t0 + t4) + (t2 + t6)) + ((t1 + t5) + (t3 + t7))
}

/// One block of 32 activations as int8 values into `q`, for the integer kernels: the numbers of
/// `activationBlock` (q = round-half-to-even(x·127/max|x|), d = F16(max|x|/127)) in 256-bit
/// integer SIMD; returns (d, Σq, Q8_1's block sum s = F16(d·Σq) with d unrounded).
@inline(__always)
func quantizeActivations(_ v: UnsafePointer<Float>, _ q: UnsafeMutablePointer<Int8>) -> (d: Float, sum: Int32, blockSum: Float) {
    let (values, d, sum, blockSum) = quantizedBlock(v)
    UnsafeMutableRawPointer(q).storeBytes(of: values, as: SIMD4<Int64>.self)
    return (d, sum, blockSum)
}

/// `quantizeActivations` with the 32 int8 values in a register.
@inline(__always)
func quantizedBlock(_ v: UnsafePointer<Float>) -> (values: SIMD4<Int64>, d: Float, sum: Int32, blockSum: Float) {
    let x0 = _mm256_loadu_ps(v), x1 = _mm256_loadu_ps(v + 8), x2 = _mm256_loadu_ps(v + 16), x3 = _mm256_loadu_ps(v + 24)
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF))
    let m8 = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(x0, magnitude), _mm256_and_ps(x1, magnitude)),
                           _mm256_max_ps(_mm256_and_ps(x2, magnitude), _mm256_and_ps(x3, magnitude)))
    let m4 = _mm_max_ps(m8.lowHalf, m8.highHalf), m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4))
    let amax = max(m2[0], m2[1])
    let id: Float = amax != 0 ? 127 / amax : 0
    let scale = _mm256_set1_ps(id)
    // vcvtps2dq rounds half to even (the default rounding mode), as activationBlock's 1.5·2²³ trick.
    let i0 = _mm256_cvtps_epi32(_mm256_mul_ps(x0, scale)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(x1, scale))   // values 0–7, 8–15
    let i2 = _mm256_cvtps_epi32(_mm256_mul_ps(x2, scale)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(x3, scale))   // 16–23, 24–31
    // Packing works per 128-bit half: 4-byte groups come out as 0, 8, 16, 24 | 4, 12, 20, 28.
    let packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3))
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    let s8 = unsafeBitCast(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)), to: SIMD8<Int32>.self)
    let s4 = s8.lowHalf &+ s8.highHalf
    let sum = (s4[0] &+ s4[2]) &+ (s4[1] &+ s4[3])
    let dRaw = amax / 127
    return (ordered, Float(Float16(dRaw)), sum, Float(Float16(dRaw * Float(sum))))
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

let int8KernelsAvailable = true
#else
func quantizedGEMVInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    preconditionFailure("quantizedGEMVInt8: built without AVX2")
}
let int8KernelsAvailable = false
#endif
