/// Round-to-nearest quantizers for the K-quant weight types (Q2_K…Q6_K; layouts in GGMLType.swift),
/// following ggml's reference quantizers (quantize_row_q*_K_ref in ggml-quants.c) operation for
/// operation, so that the same floats give the same bytes as `llama-quantize` (checked by
/// Tests/Fixtures/ggml-quantize.json and scripts/check_llama_quantize.py).
///
/// Each super-block of 256 values is cut into sub-blocks (16 of 16 values, or 8 of 32); a search
/// picks each sub-block's best float scale (and min), those are themselves rounded to 4, 6 or 8
/// bits against the super-block's f16 scale, and finally every value is rounded again with the
/// scale it will really be multiplied by. All arithmetic is Float32 in the reference's order:
/// changing the order of one sum changes some bytes.
///
/// `importance` (an importance matrix: per column, the mean of x² over calibration activations)
/// weighs each value's error in the searches, as ggml's quantize_row_q*_K_impl do; nil follows the
/// reference quantizers exactly.

/// ggml's nearest_int: round half to even through the float trick (1.5·2²³ pushes the fraction
/// out of the mantissa), valid for |v| < 2²².
@inline(__always)
func nearestInt(_ v: Float) -> Int32 {
    let shifted = v + 12582912
    return Int32(bitPattern: shifted.bitPattern & 0x007F_FFFF) - 0x0040_0000
}

private let groupMaxEpsilon: Float = 1e-15

/// The first of the `n` values with the largest magnitude (sign kept) and that magnitude.
@inline(__always)
private func signedLargest(_ n: Int, _ x: UnsafePointer<Float>) -> (value: Float, magnitude: Float) {
    var maxValue: Float = 0, amax: Float = 0
    for i in 0..<n {
        let ax = abs(x[i])
        if ax > amax { amax = ax; maxValue = x[i] }
    }
    return (maxValue, amax)
}

/// The same value; nil when all are (nearly) zero.
@inline(__always)
private func largestMagnitude(_ n: Int, _ x: UnsafePointer<Float>) -> Float? {
    let (value, magnitude) = signedLargest(n, x)
    return magnitude < groupMaxEpsilon ? nil : value
}

/// The best symmetric scale for `n` values on the integer grid −nmax…nmax−1 (ggml's
/// make_qx_quants with rmse_type 1): start from max/−nmax, try 18 nearby scales, keep the one
/// whose least-squares fit Σw·x·l / Σw·l² explains most of Σw·x² (w = x² or the given weights).
/// `levels` receives l + nmax (0…2·nmax−1). Returns the scale.
///
/// The 18 candidate scales do not depend on each other, so they are evaluated together, one per
/// SIMD lane; each lane adds its terms in the reference's order, so its sums are the scalar
/// loop's bit for bit, and the choice among them is then made in the reference's order.
func makeSymmetricQuants(_ n: Int, nmax: Int, _ x: UnsafePointer<Float>, _ levels: UnsafeMutablePointer<Int8>,
                         weights: UnsafePointer<Float>? = nil) -> Float {
    guard let maxValue = largestMagnitude(n, x) else {
        for i in 0..<n { levels[i] = 0 }
        return 0
    }
    let fmax = Float(nmax)
    @inline(__always) func w(_ i: Int) -> Float { weights?[i] ?? x[i] * x[i] }
    @inline(__always) func level(_ iscale: Float, _ i: Int) -> Int32 { max(Int32(-nmax), min(Int32(nmax - 1), nearestInt(iscale * x[i]))) }
    let iscale0 = -fmax / maxValue
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<n {
        let l = level(iscale0, i)
        levels[i] = Int8(truncatingIfNeeded: l + Int32(nmax))
        let fl = Float(l)
        sumlx += w(i) * x[i] * fl
        suml2 += w(i) * fl * fl
    }
    var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
    var best = scale * sumlx
    // Candidate c: step c − 9 for c < 9, c − 8 after (step 0 skipped); 16 per batch of lanes.
    var chosen: Float? = nil
    for first in stride(from: 0, to: 18, by: 16) {
        var steps = Float16x()
        for k in 0..<16 { let c = first + k; steps[k] = Float(c < 9 ? c - 9 : c - 8) }
        let iscales = -(Float16x(repeating: fmax) + 0.1 * steps) / maxValue
        var lx = Float16x(), l2 = Float16x()
        for i in 0..<n {
            let fl = roundedLevels(iscales * x[i], -fmax, fmax - 1)
            let wi = w(i)
            lx += wi * x[i] * fl
            l2 += wi * fl * fl
        }
        for k in 0..<min(16, 18 - first) where l2[k] > 0 && lx[k] * lx[k] > best * l2[k] {
            chosen = iscales[k]
            scale = lx[k] / l2[k]
            best = scale * lx[k]
        }
    }
    if let chosen {
        for i in 0..<n { levels[i] = Int8(truncatingIfNeeded: level(chosen, i) + Int32(nmax)) }
    }
    return scale
}

/// |v| in every lane (fabsf: the sign bit cleared).
@inline(__always)
func magnitudes(_ v: Float16x) -> Float16x {
    unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: Float16x.self)
}

/// Float(max(lo, min(hi, nearest_int(v)))) in every lane, without leaving floats: adding and
/// subtracting 1.5·2²³ rounds to the nearest integer, half to even, as nearest_int does (exact
/// for |v| < 2²², which the searches' scaled values always are).
@inline(__always)
func roundedLevels(_ v: Float16x, _ lo: Float, _ hi: Float) -> Float16x {
    var r = (v + 12582912) - 12582912
    r.replace(with: lo, where: r .< lo)
    r.replace(with: hi, where: r .> hi)
    return r
}

/// Q3_K's sub-block search (ggml's make_q3_quants with do_rmse): rounding at max/−nmax, then up
/// to five passes that move single values to the level that improves the x²-weighted fit.
/// `levels` receives l + nmax (0…2·nmax−1).
func makeQ3Quants(_ n: Int, nmax: Int, _ x: UnsafePointer<Float>, _ levels: UnsafeMutablePointer<Int8>) -> Float {
    guard let maxValue = largestMagnitude(n, x) else {
        for i in 0..<n { levels[i] = 0 }
        return 0
    }
    let (lo, hi) = (Int32(-nmax), Int32(nmax - 1))
    let iscale = -Float(nmax) / maxValue
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<n {
        let l = max(lo, min(hi, nearestInt(iscale * x[i])))
        levels[i] = Int8(l)
        let w = x[i] * x[i]
        sumlx += w * x[i] * Float(l)
        suml2 += w * Float(l) * Float(l)
    }
    for _ in 0..<5 {
        var changed = 0
        for i in 0..<n {
            let w = x[i] * x[i]
            var slx = sumlx - w * x[i] * Float(levels[i])
            if slx > 0 {
                var sl2 = suml2 - w * Float(levels[i]) * Float(levels[i])
                let newL = max(lo, min(hi, nearestInt(x[i] * sl2 / slx)))
                if newL != Int32(levels[i]) {
                    slx += w * x[i] * Float(newL)
                    sl2 += w * Float(newL) * Float(newL)
                    if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        levels[i] = Int8(newL); sumlx = slx; suml2 = sl2
                        changed += 1
                    }
                }
            }
        }
        if changed == 0 { break }
    }
    for i in 0..<n { levels[i] += Int8(nmax) }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// A scale and a min for `n` values on 0…nmax (ggml's make_qkx2_quants): x ≈ scale·l − min.
/// Starts from the [min, max] range, then tries `steps` + 1 scales around it, each refitted by
/// weighted least squares (min capped at 0), keeping the one of least weighted error (absolute
/// with `absoluteError`, squared otherwise). Returns (scale, min), min ≥ 0 meaning −min offset.
///
/// The reference tries the candidates one after another, and a better one changes the min that
/// the following candidates start from. Here the remaining candidates are evaluated together, one
/// per SIMD lane, each lane adding its terms in the reference's order (so bit for bit the scalar
/// sums); the lanes are then read in order, and after the first improvement the candidates after
/// it are evaluated again from the new min, exactly as the reference would.
func makeScaleMinQuants(_ n: Int, nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                        _ levels: UnsafeMutablePointer<UInt8>,
                        rmin: Float, rdelta: Float, steps: Int, absoluteError: Bool) -> (scale: Float, min: Float) {
        var minValue = x[0], maxValue = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1..<n {
        if x[i] < minValue { minValue = x[i] }
        if x[i] > maxValue { maxValue = x[i] }
        let w = weights[i]
        sumW += w
        sumX += w * x[i]
    }
    if minValue > 0 { minValue = 0 }
    if maxValue == minValue {
        for i in 0..<n { levels[i] = 0 }
        return (0, -minValue)
    }
    let fmax = Float(nmax)
    let iscale = fmax / (maxValue - minValue)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<n {
        let l = nearestInt(iscale * (x[i] - minValue))
        levels[i] = UInt8(truncatingIfNeeded: max(0, min(Int32(nmax), l)))
        let diff = scale * Float(levels[i]) + minValue - x[i]
        bestError += weights[i] * (absoluteError ? abs(diff) : diff * diff)
    }
    if steps < 1 { return (scale, -minValue) }
    var lane = Float16x()
    for k in 0..<16 { lane[k] = Float(k) }
    var next = 0
    while next <= steps {
        // Candidates next…next + 15 in lanes 0…15, from the current min.
        let range = maxValue - minValue
        let iscales = (rmin + rdelta * (lane + Float(next)) + fmax) / range
        var sumL = Float16x(), sumL2 = Float16x(), sumXL = Float16x()
        for i in 0..<n {
            let fl = roundedLevels(iscales * (x[i] - minValue), 0, fmax)
            let wl = weights[i] * fl
            sumL += wl
            sumL2 += wl * fl
            sumXL += wl * x[i]
        }
        let det = sumW * sumL2 - sumL * sumL
        var thisScale = (sumW * sumXL - sumX * sumL) / det
        var thisMin = (sumL2 * sumX - sumL * sumXL) / det
        let capped = thisMin .> 0
        thisMin.replace(with: 0, where: capped)
        thisScale.replace(with: sumXL / sumL2, where: capped)
        var current = Float16x()
        for i in 0..<n {
            let fl = roundedLevels(iscales * (x[i] - minValue), 0, fmax)
            let diff = thisScale * fl + thisMin - x[i]
            current += weights[i] * (absoluteError ? magnitudes(diff) : diff * diff)
        }
        var accepted = -1
        for k in 0..<min(16, steps - next + 1) where det[k] > 0 && current[k] < bestError {
            accepted = k
            bestError = current[k]
            scale = thisScale[k]
            // The levels of this candidate, from the min it started from.
            for i in 0..<n { levels[i] = UInt8(truncatingIfNeeded: max(0, min(Int32(nmax), nearestInt(iscales[k] * (x[i] - minValue))))) }
            minValue = thisMin[k]
            break
        }
        next += accepted >= 0 ? accepted + 1 : 16
    }
    return (scale, -minValue)
}

/// Packs 2-bit levels (0…3) as Q2_K/Q3_K store them: per 128 values, byte l of 32 holds values
/// l, l + 32, l + 64, l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7.
@inline(__always)
private func packTwoBits(_ levels: UnsafePointer<UInt8>, _ qs: UnsafeMutableRawPointer) {
    for j in stride(from: 0, to: 256, by: 128) {
        for l in 0..<32 {
            let v = levels[j + l] | levels[j + l + 32] << 2 | levels[j + l + 64] << 4 | levels[j + l + 96] << 6
            qs.storeBytes(of: v, toByteOffset: j / 4 + l, as: UInt8.self)
        }
    }
}

/// Q2_K: 16 sub-blocks of 16, scale and min each rounded to 4 bits against d and dmin.
func quantizeQ2_K(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
    var levels = [UInt8](repeating: 0, count: 256)
    var weights = [Float](repeating: 0, count: 16), scales = [Float](repeating: 0, count: 16), mins = [Float](repeating: 0, count: 16)
    let q4scale: Float = 15
    for b in 0..<blocks {
        let v = x + b * 256, blk = dst + b * 84
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<16 {
            for l in 0..<16 { weights[l] = abs(v[16 * j + l]) }
            (scales[j], mins[j]) = levels.withUnsafeMutableBufferPointer { L in
                makeScaleMinQuants(16, nmax: 3, v + 16 * j, weights, L.baseAddress! + 16 * j,
                                   rmin: -0.5, rdelta: 0.1, steps: 15, absoluteError: true)
            }
            if scales[j] > maxScale { maxScale = scales[j] }
            if mins[j] > maxMin { maxMin = mins[j] }
        }
        var packed = [UInt8](repeating: 0, count: 16)
        if maxScale > 0 {
            let iscale = q4scale / maxScale
            for j in 0..<16 { packed[j] = UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j])) }
            storeHalf(maxScale / q4scale, blk, 80)
        } else {
            storeHalf(0, blk, 80)
        }
        if maxMin > 0 {
            let iscale = q4scale / maxMin
            for j in 0..<16 { packed[j] |= UInt8(truncatingIfNeeded: nearestInt(iscale * mins[j]) << 4) }
            storeHalf(maxMin / q4scale, blk, 82)
        } else {
            storeHalf(0, blk, 82)
        }
        for j in 0..<16 { blk.storeBytes(of: packed[j], toByteOffset: j, as: UInt8.self) }
        let d = loadHalf(blk, 80), dmin = loadHalf(blk, 82)
        for j in 0..<16 {
            let dj = d * Float(packed[j] & 0x0F)
            if dj == 0 { continue }
            let dm = dmin * Float(packed[j] >> 4)
            for i in 0..<16 { levels[16 * j + i] = UInt8(max(0, min(3, nearestInt((v[16 * j + i] + dm) / dj)))) }
        }
        packTwoBits(levels, blk + 16)
    }
}

/// Q3_K: 16 sub-blocks of 16 with signed scales rounded to 6 bits against d; values −4…3 as two
/// low bits in qs and a high bit in hmask.
func quantizeQ3_K(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
    var signed = [Int8](repeating: 0, count: 256), scales = [Float](repeating: 0, count: 16)
    var levels = [UInt8](repeating: 0, count: 256)
    for b in 0..<blocks {
        let v = x + b * 256, blk = dst + b * 110
        for j in 0..<16 {
            scales[j] = signed.withUnsafeMutableBufferPointer { makeQ3Quants(16, nmax: 4, v + 16 * j, $0.baseAddress! + 16 * j) }
        }
        let maxScale = signedLargest(16, scales).value
        var packed = [UInt8](repeating: 0, count: 12)
        if maxScale != 0 {
            let iscale = -32 / maxScale
            for j in 0..<16 {
                var l = Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))
                l = max(-32, min(31, l)) + 32
                if j < 8 { packed[j] = UInt8(l) & 0x0F } else { packed[j - 8] |= (UInt8(l) & 0x0F) << 4 }
                l >>= 4
                packed[j % 4 + 8] |= UInt8(l) << UInt8(2 * (j / 4))
            }
            storeHalf(1 / iscale, blk, 108)
        } else {
            storeHalf(0, blk, 108)
        }
        for i in 0..<12 { blk.storeBytes(of: packed[i], toByteOffset: 96 + i, as: UInt8.self) }
        let d = loadHalf(blk, 108)
        for j in 0..<16 {
            let low = j < 8 ? packed[j] & 0x0F : packed[j - 8] >> 4
            let sc = Int(low | ((packed[8 + j % 4] >> UInt8(2 * (j / 4))) & 3) << 4) - 32
            let dj = d * Float(sc)
            if dj == 0 { continue }
            for i in 0..<16 { signed[16 * j + i] = Int8(max(-4, min(3, nearestInt(v[16 * j + i] / dj))) + 4) }
        }
        // High bit of value j (levels 4…7) → bit j/32 of hmask[j % 32]; the low two bits stay.
        let hmask = blk
        for m in 0..<32 { hmask.storeBytes(of: 0, toByteOffset: m, as: UInt8.self) }
        for j in 0..<256 {
            var l = UInt8(signed[j])
            if l > 3 {
                let m = j % 32
                hmask.storeBytes(of: hmask.load(fromByteOffset: m, as: UInt8.self) | UInt8(1) << UInt8(j / 32), toByteOffset: m, as: UInt8.self)
                l -= 4
            }
            levels[j] = l
        }
        packTwoBits(levels, blk + 32)
    }
}

/// Q4_K and Q5_K: 8 sub-blocks of 32, scale and min each rounded to 6 bits against d and dmin,
/// values on 0…15 (nibbles) or 0…31 (nibbles + a fifth bit in qh).
func quantizeQ4_K(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int, fifthBits: Bool = false) {
    let nmax = fifthBits ? 31 : 15, bytes = fifthBits ? 176 : 144
    var levels = [UInt8](repeating: 0, count: 256)
    var weights = [Float](repeating: 0, count: 32), scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
    for b in 0..<blocks {
        let v = x + b * 256, blk = dst + b * bytes
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            let s = v + 32 * j
            var sumX2: Float = 0
            for l in 0..<32 { sumX2 += s[l] * s[l] }
            let average = (sumX2 / 32).squareRoot()
            for l in 0..<32 { weights[l] = average + abs(s[l]) }
            (scales[j], mins[j]) = levels.withUnsafeMutableBufferPointer { L in
                makeScaleMinQuants(32, nmax: nmax, s, weights, L.baseAddress! + 32 * j,
                                   rmin: fifthBits ? -0.5 : -1, rdelta: 0.1, steps: fifthBits ? 15 : 20, absoluteError: false)
            }
            if scales[j] > maxScale { maxScale = scales[j] }
            if mins[j] > maxMin { maxMin = mins[j] }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
            let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
            if j < 4 {
                packed[j] = ls
                packed[j + 4] = lm
            } else {
                packed[j + 4] = (ls & 0x0F) | (lm & 0x0F) << 4
                packed[j - 4] |= (ls >> 4) << 6
                packed[j] |= (lm >> 4) << 6
            }
        }
        storeHalf(maxScale / 63, blk, 0)
        storeHalf(maxMin / 63, blk, 2)
        for i in 0..<12 { blk.storeBytes(of: packed[i], toByteOffset: 4 + i, as: UInt8.self) }
        let d = loadHalf(blk, 0), dmin = loadHalf(blk, 2)
        for j in 0..<8 {
            let (sc, m) = scaleMin(blk + 4, j)
            let dj = d * Float(sc)
            if dj == 0 { continue }
            let dm = dmin * Float(m)
            for i in 0..<32 { levels[32 * j + i] = UInt8(max(0, min(Int32(nmax), nearestInt((v[32 * j + i] + dm) / dj)))) }
        }
        // Per 64 values: byte l of 32 holds value l in its low nibble and l + 32 in its high one;
        // the fifth bits of the n-th 64 go to bits 2n and 2n + 1 of qh[l].
        let qs = blk + (fifthBits ? 48 : 16)
        if fifthBits { for l in 0..<32 { blk.storeBytes(of: 0, toByteOffset: 16 + l, as: UInt8.self) } }
        for n in 0..<4 {
            for l in 0..<32 {
                var a = levels[64 * n + l], c = levels[64 * n + l + 32]
                if fifthBits {
                    var h = blk.load(fromByteOffset: 16 + l, as: UInt8.self)
                    if a > 15 { a -= 16; h |= UInt8(1) << UInt8(2 * n) }
                    if c > 15 { c -= 16; h |= UInt8(2) << UInt8(2 * n) }
                    blk.storeBytes(of: h, toByteOffset: 16 + l, as: UInt8.self)
                }
                qs.storeBytes(of: a | c << 4, toByteOffset: 32 * n + l, as: UInt8.self)
            }
        }
    }
}

/// Q6_K: 16 sub-blocks of 16 with int8 scales against d; values −32…31 as 4 low bits in ql and
/// 2 high bits in qh.
func quantizeQ6_K(_ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, blocks: Int) {
    var signed = [Int8](repeating: 0, count: 256), scales = [Float](repeating: 0, count: 16)
    for b in 0..<blocks {
        let v = x + b * 256, blk = dst + b * 210
        for j in 0..<16 {
            scales[j] = signed.withUnsafeMutableBufferPointer { makeSymmetricQuants(16, nmax: 32, v + 16 * j, $0.baseAddress! + 16 * j) }
        }
        let (maxScale, maxAbsScale) = signedLargest(16, scales)
        if maxAbsScale < groupMaxEpsilon {
            blk.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
            continue
        }
        let iscale = -128 / maxScale
        storeHalf(1 / iscale, blk, 208)
        var ints = [Int8](repeating: 0, count: 16)
        for j in 0..<16 {
            ints[j] = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[j])))
            blk.storeBytes(of: ints[j], toByteOffset: 192 + j, as: Int8.self)
        }
        let d = loadHalf(blk, 208)
        for j in 0..<16 {
            let dj = d * Float(ints[j])
            if dj == 0 { continue }
            for i in 0..<16 { signed[16 * j + i] = Int8(max(-32, min(31, nearestInt(v[16 * j + i] / dj))) + 32) }
        }
        // Per 128 values: ql byte l holds values l (low nibble) and l + 64 (high); byte l + 32
        // values l + 32 and l + 96; qh byte l their top two bits in pairs 0-1, 2-3, 4-5, 6-7.
        for h in 0..<2 {
            let ql = blk + 64 * h, qh = blk + 128 + 32 * h
            for l in 0..<32 {
                let q1 = UInt8(signed[128 * h + l]), q2 = UInt8(signed[128 * h + l + 32])
                let q3 = UInt8(signed[128 * h + l + 64]), q4 = UInt8(signed[128 * h + l + 96])
                ql.storeBytes(of: (q1 & 0x0F) | (q3 & 0x0F) << 4, toByteOffset: l, as: UInt8.self)
                ql.storeBytes(of: (q2 & 0x0F) | (q4 & 0x0F) << 4, toByteOffset: l + 32, as: UInt8.self)
                qh.storeBytes(of: q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6, toByteOffset: l, as: UInt8.self)
            }
        }
    }
}
