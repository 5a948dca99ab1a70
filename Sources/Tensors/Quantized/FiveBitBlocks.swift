/// Q5_0 and Q5_1 (blocks of 32; layouts in GGMLType.swift): the 4-bit types with a fifth bit per
/// value kept in a 32-bit mask qh (bit j belongs to value j).

/// Q5_0 → floats: x = d · (q − 16).
func dequantizeQ5_0(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
        let blk = src + b * 22, o = out + b * 32
        let d = SIMD16<Float>(repeating: loadHalf(blk)), qh = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
        let raw = blk.loadUnaligned(fromByteOffset: 6, as: SIMD16<UInt8>.self)          // values j and j + 16 in byte j
        store16(d * (floats16((raw & 0x0F) | fifthBits(qh, first: 0)) - 16), o)
        store16(d * (floats16((raw &>> 4) | fifthBits(qh, first: 16)) - 16), o + 16)
    }
}

/// Q5_1 → floats: x = d · q + m.
func dequantizeQ5_1(_ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
        let blk = src + b * 24, o = out + b * 32
        let d = SIMD16<Float>(repeating: loadHalf(blk)), m = SIMD16<Float>(repeating: loadHalf(blk, 2))
        let qh = blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let raw = blk.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self)
        store16(d * floats16((raw & 0x0F) | fifthBits(qh, first: 0)) + m, o)
        store16(d * floats16((raw &>> 4) | fifthBits(qh, first: 16)) + m, o + 16)
    }
}

/// Stores 32 five-bit values as nibbles (value j and j + 16 share byte j) and the fifth bits.
@inline(__always)
private func packFiveBits(_ q: UnsafePointer<UInt8>, qh: UnsafeMutableRawPointer, qs: UnsafeMutableRawPointer) {
    var bits: UInt32 = 0
    for j in 0..<32 { bits |= UInt32(q[j] >> 4) << UInt32(j) }
    qh.storeBytes(of: bits, as: UInt32.self)
    for j in 0..<16 { qs.storeBytes(of: (q[j] & 0x0F) | (q[j + 16] & 0x0F) << 4, toByteOffset: j, as: UInt8.self) }
}

/// ggml's reference Q5_0 quantizer: d = (the value of largest magnitude) / −16, q = trunc(x/d + 16.5)
/// capped at 31.
func quantizeQ5_0(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { q in
        for b in 0..<blocks {
            let v = x + b * 32, blk = dst + b * 22
            var amax: Float = 0, signedMax: Float = 0
            for j in 0..<32 where abs(v[j]) > amax { amax = abs(v[j]); signedMax = v[j] }
            let d = signedMax / -16, id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, blk)
            for j in 0..<32 { q[j] = UInt8(min(31, Int8(v[j] * id + 16.5))) }
            packFiveBits(q.baseAddress!, qh: blk + 2, qs: blk + 6)
        }
    }
}

/// ggml's reference Q5_1 quantizer: [min, max] in 31 steps, q = trunc((x − min)/d + 0.5).
func quantizeQ5_1(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { q in
        for b in 0..<blocks {
            let v = x + b * 32, blk = dst + b * 24
            var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
            for j in 0..<32 { lo = min(lo, v[j]); hi = max(hi, v[j]) }
            let d = (hi - lo) / 31, id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, blk)
            storeHalf(lo, blk, 2)
            for j in 0..<32 { q[j] = min(31, UInt8((v[j] - lo) * id + 0.5)) }
            packFiveBits(q.baseAddress!, qh: blk + 4, qs: blk + 8)
        }
    }
}
