#if LLM_AVX2
import CSIMD

/// A prompt's product with block-quantized weights in ggml's arithmetic, as 8-bit integers:
///
///   y (inputs, rows) = x (inputs, cols) · Wᵀ     W: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K or Q6_K
///
/// The inputs are rounded to the blocks ggml's CPU path uses against W (Q8_0: a scale per 32
/// values; Q8_K: per 256, for the K-quants), as `linearGGML` does for any input count. Every weight
/// row is then written as unsigned bytes u (0…255) per sub-block of S values (32, or 16 for Q6_K)
/// with two floats, a scale a and an offset c, so that for each format
///
///   Σ_k w_k · x_k = Σ_sub-blocks d_x · (a · Σ_k u_k·q_k + c · Σ_k q_k)      (q: the input's int8 values)
///
///   Q4_0: u = q_w,        a = d,        c = −8·d          Q5_0: u = q_w,  a = d,  c = −16·d
///   Q8_0: u = q_w + 128,  a = d,        c = −128·d
///   Q4_K: u = q_w,        a = d·scale,  c = −dmin·min     Q6_K: u = q_w,  a = d·scale,  c = −32·d·scale
///   Q4_1, Q5_1: u = q_w,  a = d,        c = m, where the offset term is c·s_x instead: ggml's Q8_1
///   activations carry each block's sum as s_x = F16(d_x·Σq) (unrounded d_x), which it multiplies by m
///
/// Where c is a whole multiple of a (c = −o·a: every format but Q4_K), the offset is taken in
/// integers, Σ u·q − o·Σ q = Σ (u − o)·q, which is exactly ggml's signed dot product: two large
/// float terms that nearly cancel would lose digits. The integer sums are exact; the rest is float
/// arithmetic, (d_w·d_x)·Σ as ggml's per-block kernels for the 32-value formats, in another order
/// for the K-quants and for the block sums of Q4_1/Q5_1 (as for the few-row kernels). The 16 lanes of a 512-bit vector are 16 inputs: one VNNI
/// instruction (vpdpbusd) adds 4 products to each of them, with the 4 weight bytes broadcast, so a
/// tile of 4 weight rows × 16 inputs keeps 4 accumulators and needs no horizontal sums. Weight rows
/// are decoded once per tile for all inputs; the inputs are packed once per product
/// (`PackedInputs`). Four times the multiply-adds per instruction of float32 FMA, which is what
/// sgemm over dequantized panels runs at.
///
/// Only where the build machine has AVX-512 VNNI (`int8GEMMAvailable`); elsewhere prompts go
/// through dequantized panels + sgemm.
let int8GEMMAvailable = llm_has_vnni512() != 0

/// Whether `quantizedGEMMInt8` takes this weight type.
func int8GEMMSupports(_ type: GGMLType) -> Bool {
    switch type {
    case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q6_K: return true
    default: return false
    }
}

/// How a format's offset term c is added per sub-block (see `quantizedGEMMInt8`).
private enum OffsetTerm {
    case integer(shift: Int32)      // c = −2^shift·a: Σ (u − o)·q in integers (Q4_0, Q5_0, Q8_0, Q6_K)
    case minimums                   // c·d_x·Σq beside a·d_x·Σu·q (Q4_K)
    case blockSums                  // c·s_x with the activations' block sums (Q4_1, Q5_1)

    init(_ type: GGMLType) {
        switch type {
        case .q4_0: self = .integer(shift: 3)
        case .q5_0: self = .integer(shift: 4)
        case .q8_0: self = .integer(shift: 7)
        case .q6_K: self = .integer(shift: 5)
        case .q4_1, .q5_1: self = .blockSums
        default: self = .minimums
        }
    }
}

/// Values per sub-block (one scale a, one offset c) in the unsigned-byte form of a weight row.
@inline(__always) private func subBlockSize(_ type: GGMLType) -> Int { type == .q6_K ? 16 : 32 }

/// y (inputs, rows) = x (inputs, cols) · Wᵀ for `int8GEMMSupports(w.type)`.
func quantizedGEMMInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    precondition(int8GEMMSupports(w.type), "quantizedGEMMInt8: \(w.type.name) is not supported")
    let cols = w.cols, s = subBlockSize(w.type), subBlocks = cols / s
    let offset = OffsetTerm(w.type)
    let packed = PackedInputs(x, inputs: inputs, cols: cols, activations: w.type.activationType, subBlock: s,
                              withBlockSums: w.type == .q4_1 || w.type == .q5_1)
    defer { packed.deallocate() }
    Parallel.forEachChunkDynamic(w.rows, grain: 16) { rows in
        // 4 weight rows as bytes (4, cols), their scales and offsets (4, subBlocks); missing rows
        // of a last short tile are zeros (a = c = 0) and not stored.
        let u = UnsafeMutableRawPointer.allocate(byteCount: 4 * cols, alignment: 64)
        let a = UnsafeMutablePointer<Float>.allocate(capacity: 4 * subBlocks)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: 4 * subBlocks)
        defer { u.deallocate(); a.deallocate(); c.deallocate() }
        var r0 = rows.lowerBound
        while r0 < rows.upperBound {
            let n = min(4, rows.upperBound - r0)
            for t in 0..<4 {
                if t < n {
                    unsignedRow(w, r0 + t, u + t * cols, a + t * subBlocks, c + t * subBlocks)
                } else {
                    u.advanced(by: t * cols).initializeMemory(as: UInt8.self, repeating: 0, count: cols)
                    (a + t * subBlocks).update(repeating: 0, count: subBlocks)
                    (c + t * subBlocks).update(repeating: 0, count: subBlocks)
                }
            }
            for g in 0..<packed.groups {
                let sums = tile4x16(UnsafeRawPointer(u), cols: cols, a, c, subBlocks: subBlocks, subBlock: s, offset: offset,
                                    packed, group: g)
                let lanes = min(16, inputs - 16 * g)
                for t in 0..<n {
                    let v = t == 0 ? sums.0 : t == 1 ? sums.1 : t == 2 ? sums.2 : sums.3
                    let out = y + 16 * g * w.rows + r0 + t
                    for lane in 0..<lanes { out[lane * w.rows] = v[lane] }
                }
            }
            r0 += n
        }
    }
}

/// 4 weight rows × the 16 inputs of group g: (Σ_k w_k·x_k per input) for each of the 4 rows.
@inline(__always)
private func tile4x16(_ u: UnsafeRawPointer, cols: Int, _ a: UnsafePointer<Float>, _ c: UnsafePointer<Float>, subBlocks: Int,
                      subBlock s: Int, offset: OffsetTerm, _ p: PackedInputs, group g: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    var y0 = SIMD16<Float>(), y1 = SIMD16<Float>(), y2 = SIMD16<Float>(), y3 = SIMD16<Float>()
    let q = UnsafeRawPointer(p.q) + g * cols * 16                  // (cols/4 quads, 16 lanes, 4 bytes)
    let d = p.d + g * subBlocks * 16, sq = p.sums + g * subBlocks * 16
    let u1 = u + cols, u2 = u + 2 * cols, u3 = u + 3 * cols
    let a1 = a + subBlocks, a2 = a + 2 * subBlocks, a3 = a + 3 * subBlocks
    let c1 = c + subBlocks, c2 = c + 2 * subBlocks, c3 = c + 3 * subBlocks
    @inline(__always) func bytes4(_ row: UnsafeRawPointer, _ k: Int) -> SIMD16<Int32> {
        SIMD16<Int32>(repeating: row.loadUnaligned(fromByteOffset: k, as: Int32.self))
    }
    for j in 0..<subBlocks {
        var i0 = SIMD16<Int32>(), i1 = SIMD16<Int32>(), i2 = SIMD16<Int32>(), i3 = SIMD16<Int32>()
        var k = j * s
        while k < (j + 1) * s {                                    // 4 values of each row per step
            let xq = q.load(fromByteOffset: k * 16, as: SIMD16<Int32>.self)
            i0 = llm_dpbusd_x16(i0, bytes4(u, k), xq)
            i1 = llm_dpbusd_x16(i1, bytes4(u1, k), xq)
            i2 = llm_dpbusd_x16(i2, bytes4(u2, k), xq)
            i3 = llm_dpbusd_x16(i3, bytes4(u3, k), xq)
            k += 4
        }
        let dx = UnsafeRawPointer(d + 16 * j).load(as: SIMD16<Float>.self)
        switch offset {
        case .integer(let shift):                                  // Σ (u − o)·q in integers, then (d_w·d_x)·Σ
            let offset = UnsafeRawPointer(sq + 16 * j).load(as: SIMD16<Int32>.self) &<< shift
            y0 += (dx * a[j]) * llm_float_x16(i0 &- offset)
            y1 += (dx * a1[j]) * llm_float_x16(i1 &- offset)
            y2 += (dx * a2[j]) * llm_float_x16(i2 &- offset)
            y3 += (dx * a3[j]) * llm_float_x16(i3 &- offset)
        case .blockSums:                                           // Q4_1, Q5_1: (d_w·d_x)·Σu·q + m·s_x
            let sx = UnsafeRawPointer(p.blockSums! + g * subBlocks * 16 + 16 * j).load(as: SIMD16<Float>.self)
            y0 += (dx * a[j]) * llm_float_x16(i0) + c[j] * sx
            y1 += (dx * a1[j]) * llm_float_x16(i1) + c1[j] * sx
            y2 += (dx * a2[j]) * llm_float_x16(i2) + c2[j] * sx
            y3 += (dx * a3[j]) * llm_float_x16(i3) + c3[j] * sx
        case .minimums:                                            // Q4_K: the minimums' term beside
            let sx = llm_float_x16(UnsafeRawPointer(sq + 16 * j).load(as: SIMD16<Int32>.self))
            y0 += dx * (a[j] * llm_float_x16(i0) + c[j] * sx)
            y1 += dx * (a1[j] * llm_float_x16(i1) + c1[j] * sx)
            y2 += dx * (a2[j] * llm_float_x16(i2) + c2[j] * sx)
            y3 += dx * (a3[j] * llm_float_x16(i3) + c3[j] * sx)
        }
    }
    return (y0, y1, y2, y3)
}

/// The inputs rounded to ggml's activation blocks and laid out for `tile4x16`, in groups of 16
/// (the last padded with zeros):
///   q     (groups, cols/4, 16, 4) int8: for each 4 consecutive values, the 16 inputs' side by side
///   d     (groups, subBlocks, 16): the scale of the activation block holding each sub-block
///   sums  (groups, subBlocks, 16) int32: Σ q over each sub-block
///   blockSums (groups, subBlocks, 16), only with `withBlockSums` (32-value blocks): ggml's Q8_1
///         sum s = F16(d·Σq), d unrounded, that Q4_1 and Q5_1 multiply by their minimums
struct PackedInputs {
    let groups: Int
    let q: UnsafeMutablePointer<Int8>
    let d: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Int32>
    let blockSums: UnsafeMutablePointer<Float>?

    init(_ x: UnsafePointer<Float>, inputs: Int, cols: Int, activations: GGMLType, subBlock s: Int, withBlockSums: Bool = false) {
        precondition(activations == .q8_0 || activations == .q8_K, "PackedInputs: \(activations.name) activations")
        precondition(!withBlockSums || (activations == .q8_0 && s == 32), "PackedInputs: block sums are for 32-value blocks")
        let block = activations == .q8_K ? 256 : 32, subBlocks = cols / s
        groups = (inputs + 15) / 16
        q = UnsafeMutableRawPointer.allocate(byteCount: groups * cols * 16, alignment: 64).bindMemory(to: Int8.self, capacity: groups * cols * 16)
        d = UnsafeMutableRawPointer.allocate(byteCount: groups * subBlocks * 64, alignment: 64).bindMemory(to: Float.self, capacity: groups * subBlocks * 16)
        sums = UnsafeMutableRawPointer.allocate(byteCount: groups * subBlocks * 64, alignment: 64).bindMemory(to: Int32.self, capacity: groups * subBlocks * 16)
        q.update(repeating: 0, count: groups * cols * 16)
        d.update(repeating: 0, count: groups * subBlocks * 16)
        sums.update(repeating: 0, count: groups * subBlocks * 16)
        if withBlockSums {
            let b = UnsafeMutableRawPointer.allocate(byteCount: groups * subBlocks * 64, alignment: 64).bindMemory(to: Float.self, capacity: groups * subBlocks * 16)
            b.update(repeating: 0, count: groups * subBlocks * 16)
            blockSums = b
        } else {
            blockSums = nil
        }
        let (q, d, sums, blockSums) = (q, d, sums, blockSums)
        Parallel.forEachChunk(inputs, grain: 4) { range in
            let row = UnsafeMutablePointer<Int8>.allocate(capacity: cols)
            let blockScale = UnsafeMutablePointer<Float>.allocate(capacity: cols / block)
            let blockSum = UnsafeMutablePointer<Float>.allocate(capacity: cols / block)
            let bsums = UnsafeMutablePointer<Int16>.allocate(capacity: 16)
            defer { row.deallocate(); blockScale.deallocate(); blockSum.deallocate(); bsums.deallocate() }
            for i in range {
                let xi = x + i * cols
                for b in 0..<(cols / block) {
                    if block == 256 {
                        blockScale[b] = quantizeQ8_K(xi + 256 * b, row + 256 * b, bsums)
                    } else {
                        (blockScale[b], _, blockSum[b]) = quantizeActivations(xi + 32 * b, row + 32 * b)
                    }
                }
                let g = i / 16, lane = i % 16
                let qg = UnsafeMutableRawPointer(q + g * cols * 16)
                for t in 0..<(cols / 4) {
                    qg.storeBytes(of: UnsafeRawPointer(row).loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self),
                                  toByteOffset: 64 * t + 4 * lane, as: UInt32.self)
                }
                for j in 0..<subBlocks {
                    var sum: Int32 = 0
                    for k in (j * s)..<((j + 1) * s) { sum += Int32(row[k]) }
                    sums[(g * subBlocks + j) * 16 + lane] = sum
                    d[(g * subBlocks + j) * 16 + lane] = blockScale[j * s / block]
                    blockSums?[(g * subBlocks + j) * 16 + lane] = blockSum[j]      // (32-value blocks: j is the block)
                }
            }
        }
    }

    func deallocate() { q.deallocate(); d.deallocate(); sums.deallocate(); blockSums?.deallocate() }
}

/// Weight row r as unsigned bytes u (cols), with a scale a and an offset c per sub-block (see
/// `quantizedGEMMInt8` for each format's u, a, c).
private func unsignedRow(_ w: QuantizedMatrix, _ r: Int, _ u: UnsafeMutableRawPointer, _ a: UnsafeMutablePointer<Float>,
                         _ c: UnsafeMutablePointer<Float>) {
    let row = w.bytes + r * w.rowBytes
    switch w.type {
    case .q4_0, .q5_0, .q4_1, .q5_1:
        let five = w.type == .q5_0 || w.type == .q5_1, minimums = w.type == .q4_1 || w.type == .q5_1
        let header = minimums ? 4 : 2                                   // d (and m), then Q5's fifth bits, then nibbles
        for b in 0..<(w.cols / 32) {
            let blk = row + b * w.type.blockBytes, o = u + 32 * b
            let d = loadHalf(blk)
            a[b] = d
            c[b] = minimums ? loadHalf(blk, 2) : five ? -16 * d : -8 * d
            let raw = blk.loadUnaligned(fromByteOffset: header + (five ? 4 : 0), as: SIMD16<UInt8>.self)   // values j and j + 16 in byte j
            var low = raw & 0x0F, high = raw &>> 4
            if five {
                let qh = blk.loadUnaligned(fromByteOffset: header, as: UInt32.self)
                low |= fifthBits(qh, first: 0)
                high |= fifthBits(qh, first: 16)
            }
            o.storeBytes(of: low, as: SIMD16<UInt8>.self)
            o.storeBytes(of: high, toByteOffset: 16, as: SIMD16<UInt8>.self)
        }
    case .q8_0:
        for b in 0..<(w.cols / 32) {
            let blk = row + b * 34, o = u + 32 * b
            let d = loadHalf(blk)
            a[b] = d
            c[b] = -128 * d
            for h in 0..<2 {
                let v = blk.loadUnaligned(fromByteOffset: 2 + 16 * h, as: SIMD16<UInt8>.self)   // int8 bits
                o.storeBytes(of: v ^ 0x80, toByteOffset: 16 * h, as: SIMD16<UInt8>.self)       // + 128
            }
        }
    case .q4_K:
        for b in 0..<(w.cols / 256) {
            let blk = row + b * 144, o = u + 256 * b
            let d = loadHalf(blk), dmin = loadHalf(blk, 2)
            for j in 0..<4 {
                for half in 0..<2 {
                    let sub = 2 * j + half, (scale, min) = scaleMin(blk + 4, sub)
                    a[8 * b + sub] = d * Float(scale)
                    c[8 * b + sub] = -dmin * Float(min)
                    for h in 0..<2 {
                        let raw = blk.loadUnaligned(fromByteOffset: 16 + 32 * j + 16 * h, as: SIMD16<UInt8>.self)
                        o.storeBytes(of: half == 0 ? raw & 0x0F : raw &>> 4, toByteOffset: 32 * sub + 16 * h, as: SIMD16<UInt8>.self)
                    }
                }
            }
        }
    case .q6_K:
        for b in 0..<(w.cols / 256) {
            let blk = row + b * 210, o = u + 256 * b
            let d = loadHalf(blk, 208)
            for h in 0..<2 {
                let ql = blk + 64 * h, qh = blk + 128 + 32 * h
                for k in 0..<4 {
                    for half in 0..<2 {                                 // values 16·half ..< 16·half + 16 of the 32
                        let sub = 8 * h + 2 * k + half
                        let scale = d * Float(blk.load(fromByteOffset: 192 + sub, as: Int8.self))
                        a[16 * b + sub] = scale
                        c[16 * b + sub] = -32 * scale
                        let low = (ql.loadUnaligned(fromByteOffset: 16 * half + 32 * (k & 1), as: SIMD16<UInt8>.self) &>> UInt8(4 * (k >> 1))) & 0x0F
                        let high = (qh.loadUnaligned(fromByteOffset: 16 * half, as: SIMD16<UInt8>.self) &>> UInt8(2 * k)) & 3
                        o.storeBytes(of: low | high &<< 4, toByteOffset: 16 * sub, as: SIMD16<UInt8>.self)
                    }
                }
            }
        }
    default:
        preconditionFailure("quantizedGEMMInt8: \(w.type.name) is not supported")
    }
}

#else

let int8GEMMAvailable = false
func int8GEMMSupports(_ type: GGMLType) -> Bool { false }
func quantizedGEMMInt8(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    preconditionFailure("quantizedGEMMInt8: built without AVX2")
}

#endif
