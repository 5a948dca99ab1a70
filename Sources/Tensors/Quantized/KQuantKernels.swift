/// Float dot products of one weight row in the 5-bit and K-quant formats with one input row, for
/// `linear`'s few-rows path (see QuantizedKernels.swift). As there, blocks are unpacked to floats
/// in registers (SIMD16) and each (sub-)block's scale applied once to its partial dot product;
/// offsets (−16·d, m, −dmin·min) multiply precomputed sums of x over 32 values (`xsum`).
/// Q2_K, Q3_K and Q8_K weights take the plain route (row dequantized, then a dot product).

/// 16 bytes → 16 floats.
@inline(__always) func floats16(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
    var f = SIMD16<Float>()
    for k in 0..<16 { f[k] = Float(v[k]) }
    return f
}

/// Bits `first`…`first + 15` of qh (first = 0 or 16) as 16 bytes holding 0 or 16 (a fifth bit in
/// place), two table lookups of 8 bytes each.
@inline(__always) func fifthBits(_ qh: UInt32, first: UInt32) -> SIMD16<UInt8> {
    let lo = bitBytes[Int((qh >> first) & 0xFF)], hi = bitBytes[Int((qh >> (first + 8)) & 0xFF)]
    return unsafeBitCast(SIMD2<UInt64>(lo, hi), to: SIMD16<UInt8>.self)
}

/// For each byte value v: 8 bytes, byte k = 16 if bit k of v is set, else 0.
let bitBytes: UnsafePointer<UInt64> = {
    let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 256)
    for v in 0..<256 {
        var w: UInt64 = 0
        for k in 0..<8 where (v >> k) & 1 == 1 { w |= 16 << UInt64(8 * k) }
        p[v] = w
    }
    return UnsafePointer(p)
}()

/// Σ_j d·(q_j − 16)·x_j = Σ_blocks d·(q·x − 16·Σx).
@inline(__always)
func dotQ5_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    var offset: Float = 0
    for b in 0..<blocks {
        let blk = row + b * 22, xb = x + b * 32
        let qh = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        let raw = blk.loadUnaligned(fromByteOffset: 6, as: SIMD16<UInt8>.self)
        var s = floats16((raw & 0x0F) | fifthBits(qh, first: 0)) * load16(xb)
        s.addProduct(floats16((raw &>> 4) | fifthBits(qh, first: 16)), load16(xb + 16))
        let d = loadHalf(blk)
        acc.addProduct(SIMD16(repeating: d), s)
        offset -= 16 * d * xsum[b]
    }
    return acc.sum() + offset
}

/// Σ_j (d·q_j + m)·x_j = Σ_blocks d·(q·x) + m·Σx.
@inline(__always)
func dotQ5_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    var offset: Float = 0
    for b in 0..<blocks {
        let blk = row + b * 24, xb = x + b * 32
        let qh = blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let raw = blk.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self)
        var s = floats16((raw & 0x0F) | fifthBits(qh, first: 0)) * load16(xb)
        s.addProduct(floats16((raw &>> 4) | fifthBits(qh, first: 16)), load16(xb + 16))
        acc.addProduct(SIMD16(repeating: loadHalf(blk)), s)
        offset += loadHalf(blk, 2) * xsum[b]
    }
    return acc.sum() + offset
}

/// Q4_K (Q5_K with `fifthBits`): Σ_sub (d·scale)·(q·x) − (dmin·min)·Σx over each sub-block of 32.
@inline(__always)
func dotQ4_K(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, superBlocks: Int, fifthBits: Bool) -> Float {
    let bytes = fifthBits ? 176 : 144, qsAt = fifthBits ? 48 : 16
    var acc = SIMD16<Float>()
    var offset: Float = 0
    for b in 0..<superBlocks {
        let blk = row + b * bytes, xb = x + b * 256
        let d = loadHalf(blk), dmin = loadHalf(blk, 2)
        var h0 = SIMD16<UInt8>(), h1 = SIMD16<UInt8>()
        if fifthBits {
            h0 = blk.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self)
            h1 = blk.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt8>.self)
        }
        for j in 0..<4 {
            let r0 = blk.loadUnaligned(fromByteOffset: qsAt + 32 * j, as: SIMD16<UInt8>.self)
            let r1 = blk.loadUnaligned(fromByteOffset: qsAt + 32 * j + 16, as: SIMD16<UInt8>.self)
            var l0 = r0 & 0x0F, l1 = r1 & 0x0F, u0 = r0 &>> 4, u1 = r1 &>> 4
            if fifthBits {
                let sl = UInt8(2 * j), su = UInt8(2 * j + 1)
                l0 |= ((h0 &>> sl) & 1) &<< 4; l1 |= ((h1 &>> sl) & 1) &<< 4
                u0 |= ((h0 &>> su) & 1) &<< 4; u1 |= ((h1 &>> su) & 1) &<< 4
            }
            let xl = xb + 64 * j, xu = xl + 32
            var sl = floats16(l0) * load16(xl)
            sl.addProduct(floats16(l1), load16(xl + 16))
            var su = floats16(u0) * load16(xu)
            su.addProduct(floats16(u1), load16(xu + 16))
            let (s0, m0) = scaleMin(blk + 4, 2 * j), (s1, m1) = scaleMin(blk + 4, 2 * j + 1)
            acc.addProduct(SIMD16(repeating: d * Float(s0)), sl)
            acc.addProduct(SIMD16(repeating: d * Float(s1)), su)
            offset -= dmin * Float(m0) * xsum[8 * b + 2 * j] + dmin * Float(m1) * xsum[8 * b + 2 * j + 1]
        }
    }
    return acc.sum() + offset
}

/// Q6_K: Σ over sub-blocks of 16 of (d·scale)·((q − 32)·x).
@inline(__always)
func dotQ6_K(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, superBlocks: Int) -> Float {
    var acc = SIMD16<Float>()
    for b in 0..<superBlocks {
        let blk = row + b * 210
        let d = loadHalf(blk, 208)
        for h in 0..<2 {
            let ql = blk + 64 * h, qh = blk + 128 + 32 * h, sc = blk + 192 + 8 * h, xh = x + b * 256 + 128 * h
            for half in 0..<2 {                      // values l = 16·half ..< 16·half + 16 of each group
                let a = ql.loadUnaligned(fromByteOffset: 16 * half, as: SIMD16<UInt8>.self)
                let c = ql.loadUnaligned(fromByteOffset: 32 + 16 * half, as: SIMD16<UInt8>.self)
                let hi = qh.loadUnaligned(fromByteOffset: 16 * half, as: SIMD16<UInt8>.self)
                let q0 = (a & 0x0F) | ((hi & 3) &<< 4)
                let q1 = (c & 0x0F) | (((hi &>> 2) & 3) &<< 4)
                let q2 = (a &>> 4) | (((hi &>> 4) & 3) &<< 4)
                let q3 = (c &>> 4) | ((hi &>> 6) &<< 4)
                let xl = xh + 16 * half
                @inline(__always) func scale(_ k: Int) -> SIMD16<Float> {
                    SIMD16(repeating: d * Float(sc.load(fromByteOffset: 2 * k + half, as: Int8.self)))
                }
                acc.addProduct(scale(0), (floats16(q0) - 32) * load16(xl))
                acc.addProduct(scale(1), (floats16(q1) - 32) * load16(xl + 32))
                acc.addProduct(scale(2), (floats16(q2) - 32) * load16(xl + 64))
                acc.addProduct(scale(3), (floats16(q3) - 32) * load16(xl + 96))
            }
        }
    }
    return acc.sum()
}
