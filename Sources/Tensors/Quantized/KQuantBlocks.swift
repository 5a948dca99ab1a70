/// Dequantization of the K-quants (super-blocks of 256 values; layouts in GGMLType.swift), with
/// the float operations in the order ggml's dequantize_row_* and gguf-py use, so the values agree
/// bit for bit. And Q8_K, the 8-bit form ggml gives activations before K-quant products.

/// Q4_K/Q5_K sub-block j's 6-bit scale and min from the 12 packed bytes: bytes 0–3 hold scales
/// 0–3 (low 6 bits), 4–7 mins 0–3; sub-blocks 4–7 take their low 4 bits from the nibbles of
/// bytes 8–11 and their top 2 bits from the spare top bits of bytes 0–7.
@inline(__always)
func scaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
    @inline(__always) func b(_ i: Int) -> UInt8 { s.load(fromByteOffset: i, as: UInt8.self) }
    if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
    return ((b(j + 4) & 0x0F) | (b(j - 4) >> 6) << 4, (b(j + 4) >> 4) | (b(j) >> 6) << 4)
}

/// Q3_K sub-block i's 6-bit scale (0…63, stored with an offset of 32): low 4 bits from the
/// nibbles of bytes 0–7, top 2 bits from bit pair i/4 of byte 8 + i%4.
@inline(__always)
func q3Scale(_ s: UnsafeRawPointer, _ i: Int) -> Int {
    let low = s.load(fromByteOffset: i & 7, as: UInt8.self) >> (i < 8 ? 0 : 4) & 0x0F
    let high = s.load(fromByteOffset: 8 + i % 4, as: UInt8.self) >> UInt8(2 * (i / 4)) & 3
    return Int(low | high << 4)
}

/// Q2_K: per 128 values, 32 bytes of qs read at bit pairs 0, 2, 4, 6 (32 values each, two
/// sub-blocks of 16); x = (d·scale)·q − dmin·min.
func dequantizeQ2_K(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
        let blk = src + b * 84, o = out + b * 256
        let d = loadHalf(blk, 80), dmin = loadHalf(blk, 82)
        for h in 0..<2 {
            for j in 0..<4 {
                for half in 0..<2 {
                    let sc = blk.load(fromByteOffset: 8 * h + 2 * j + half, as: UInt8.self)
                    let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        let i = 16 * half + l
                        let q = blk.load(fromByteOffset: 16 + 32 * h + i, as: UInt8.self) >> UInt8(2 * j) & 3
                        o[128 * h + 32 * j + i] = dl * Float(q) - ml
                    }
                }
            }
        }
    }
}

/// Q3_K: as Q2_K's order, q = (2 bits) − 4 unless the value's hmask bit (bit 4h + j of
/// hmask[l]) is set; x = (d·(scale − 32))·q.
func dequantizeQ3_K(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
        let blk = src + b * 110, o = out + b * 256
        let d = loadHalf(blk, 108)
        for h in 0..<2 {
            for j in 0..<4 {
                for half in 0..<2 {
                    let dl = d * Float(q3Scale(blk + 96, 8 * h + 2 * j + half) - 32)
                    for l in 0..<16 {
                        let i = 16 * half + l
                        let low = Int(blk.load(fromByteOffset: 32 + 32 * h + i, as: UInt8.self) >> UInt8(2 * j) & 3)
                        let high = blk.load(fromByteOffset: i, as: UInt8.self) >> UInt8(4 * h + j) & 1
                        o[128 * h + 32 * j + i] = dl * Float(low - (high == 0 ? 4 : 0))
                    }
                }
            }
        }
    }
}

/// Q4_K (and Q5_K with `fifthBits`): per 64 values, 32 bytes of qs as low nibbles (sub-block
/// 2j) then high nibbles (2j + 1); x = (d·scale)·q − dmin·min.
func dequantizeQ4_K(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int, fifthBits: Bool = false) {
    let bytes = fifthBits ? 176 : 144, qsAt = fifthBits ? 48 : 16
    for b in 0..<blocks {
        let blk = src + b * bytes, o = out + b * 256
        let d = loadHalf(blk), dmin = loadHalf(blk, 2)
        for j in 0..<4 {
            for half in 0..<2 {
                let (sc, m) = scaleMin(blk + 4, 2 * j + half)
                let d1 = SIMD16<Float>(repeating: d * Float(sc)), m1 = SIMD16<Float>(repeating: dmin * Float(m))
                for c in 0..<2 {                                           // 16 values at a time
                    let raw = blk.loadUnaligned(fromByteOffset: qsAt + 32 * j + 16 * c, as: SIMD16<UInt8>.self)
                    var q = half == 0 ? raw & 0x0F : raw &>> 4
                    if fifthBits {
                        let qh = blk.loadUnaligned(fromByteOffset: 16 + 16 * c, as: SIMD16<UInt8>.self)
                        q |= ((qh &>> UInt8(2 * j + half)) & 1) &<< 4
                    }
                    store16(d1 * floats16(q) - m1, o + 64 * j + 32 * half + 16 * c)
                }
            }
        }
    }
}

/// Q6_K: per 128 values, ql[0..<32] low nibbles, ql[32..<64] low nibbles, then both high nibbles,
/// each with a bit pair of qh[0..<32] on top; one int8 scale per 16 values; x = (d·scale)·(q − 32).
func dequantizeQ6_K(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
        let blk = src + b * 210, o = out + b * 256
        let d = loadHalf(blk, 208)
        for h in 0..<2 {
            let ql = blk + 64 * h, qh = blk + 128 + 32 * h, sc = blk + 192 + 8 * h
            for k in 0..<4 {
                for c in 0..<2 {                                           // values 16c..<16c+16 of the 32
                    let low = (ql.loadUnaligned(fromByteOffset: 16 * c + 32 * (k & 1), as: SIMD16<UInt8>.self) &>> UInt8(4 * (k >> 1))) & 0x0F
                    let high = (qh.loadUnaligned(fromByteOffset: 16 * c, as: SIMD16<UInt8>.self) &>> UInt8(2 * k)) & 3
                    let scale = SIMD16<Float>(repeating: d * Float(sc.load(fromByteOffset: 2 * k + c, as: Int8.self)))
                    store16(scale * (floats16(low | high &<< 4) - 32), o + 128 * h + 32 * k + 16 * c)
                }
            }
        }
    }
}

/// Q8_K → floats: x = d · q.
func dequantizeQ8_K(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
        let blk = src + b * 292, o = out + b * 256
        let d = blk.loadUnaligned(as: Float.self)
        for j in 0..<256 { o[j] = d * Float(blk.load(fromByteOffset: 4 + j, as: Int8.self)) }
    }
}

/// 256 activations → Q8_K as ggml does on every CPU (quantize_row_q8_K_ref): with m the value of
/// largest magnitude (the first, on ties), s = −127/m, q = round-half-to-even(s·x) capped at 127,
/// d = 1/s; bsums[k] = Σ q over values 16k..<16k+16. An all-zero block gets d = 0, q = 0.
/// Returns d.
@inline(__always)
func quantizeQ8_K(_ x: UnsafePointer<Float>, _ q: UnsafeMutablePointer<Int8>, _ bsums: UnsafeMutablePointer<Int16>) -> Float {
    var amax: Float = 0, signedMax: Float = 0
    for j in 0..<256 where abs(x[j]) > amax { amax = abs(x[j]); signedMax = x[j] }
    guard amax != 0 else {
        q.update(repeating: 0, count: 256)
        bsums.update(repeating: 0, count: 16)
        return 0
    }
    let iscale = -127 / signedMax
    for j in 0..<256 { q[j] = Int8(min(127, (iscale * x[j]).rounded(.toNearestOrEven))) }
    for k in 0..<16 {
        var s: Int16 = 0
        for j in 0..<16 { s += Int16(q[16 * k + j]) }
        bsums[k] = s
    }
    return 1 / iscale
}

/// Floats → Q8_K blocks (d as f32, qs, bsums).
func quantizeQ8_KBlocks(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
    for b in 0..<blocks {
        let blk = dst + b * 292
        let d = quantizeQ8_K(x + b * 256, (blk + 4).assumingMemoryBound(to: Int8.self), (blk + 260).assumingMemoryBound(to: Int16.self))
        blk.storeBytes(of: d, as: Float.self)
    }
}
