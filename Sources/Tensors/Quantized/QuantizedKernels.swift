/// Products with quantized weights, reading the blocks directly:
///
///   y (..., rows) = x (..., cols) · Wᵀ        W: QuantizedMatrix (rows, cols)
///
/// - A few input rows (token-by-token generation): each weight row is streamed once and dotted
///   with every input row; blocks are unpacked to floats in registers (SIMD16) and multiplied with
///   the activations, the block scale applied once per block. Output rows split across threads.
///   This is memory-bound: the point is to read 4.5–8.5 bits per weight instead of 32.
/// - Many input rows (a prompt): panels of 64 weight rows are dequantized into a small per-thread
///   buffer and multiplied by all input rows at once with sgemm, so the unpacking is paid once per
///   panel, not once per token. The full Float32 matrix never exists.
public func linear(_ x: Tensor, _ w: QuantizedMatrix) -> Tensor {
    guard x.rank >= 1, x.shape[x.rank - 1] == w.cols else {
        fatalError(ShapeError(op: "linear (\(w.type.name))", x.shape, w.shape).description)
    }
    let inputs = x.count / max(w.cols, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [w.rows])
    if inputs <= 4 {
        quantizedGEMV(x.data, inputs: inputs, w, out.data)
    } else {
        quantizedGEMM(x.data, inputs: inputs, w, out.data)
    }
    guard x.requiresGrad else { return out }
    // The weight is frozen; the input still gets its gradient (dx = g · W), so adapters and
    // earlier layers can train through a quantized layer.
    return Autograd.record(out, "linear (\(w.type.name))", [x]) { g in [linearInputGradient(g, w)] }
}

/// The gradient reaching the input of a product with frozen quantized weights: g (..., rows) →
/// g · W (..., cols), through dequantized panels of 256 weight rows and sgemm, never a whole
/// Float32 copy of W.
public func linearInputGradient(_ g: Tensor, _ w: QuantizedMatrix) -> Tensor {
    let inputs = g.count / max(w.rows, 1)
    let gx = Tensor(zeros: Array(g.shape.dropLast()) + [w.cols])
    forEachDequantizedPanel(w) { r0, n, panel in
        // gx (inputs, cols) += g[:, r0..<r0+n] (inputs, n) · panel (n, cols)
        BLAS.sgemm(transposeA: false, transposeB: false, m: inputs, n: w.cols, k: n,
                   g.data + r0, lda: w.rows, panel, beta: r0 == 0 ? 0 : 1, gx.data)
    }
    return gx
}

/// y (inputs, rows) for inputs ≤ 4.
func quantizedGEMV(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    let blocks = w.cols / 32, superBlocks = w.cols / 256
    // Sums of x per 32 values, for the offset terms of Q4_0 (−8·d·Σx), Q4_1 (m·Σx), Q5_0, Q5_1
    // and the sub-block minimums of Q4_K/Q5_K.
    let sums = UnsafeMutablePointer<Float>.allocate(capacity: max(1, inputs * blocks))
    defer { sums.deallocate() }
    switch w.type {
    case .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K:
        for i in 0..<inputs { for b in 0..<blocks { sums[i * blocks + b] = vsum(x + i * w.cols + b * 32, 32) } }
    default: break
    }
    // Formats without a block kernel: each row dequantized into scratch, then a dot product.
    let viaScratch: Bool
    switch w.type {
    case .f16, .bf16, .q2_K, .q3_K, .q8_K: viaScratch = true
    default: viaScratch = false
    }
    Parallel.forEachChunk(w.rows, grain: 64) { rows in
        var scratch: UnsafeMutablePointer<Float>? = nil
        if viaScratch { scratch = .allocate(capacity: w.cols) }
        defer { scratch?.deallocate() }
        for r in rows {
            let row = w.bytes + r * w.rowBytes
            for i in 0..<inputs {
                let xi = x + i * w.cols
                let v: Float
                switch w.type {
                case .q4_1: v = dotQ4_1(row, xi, sums + i * blocks, blocks: blocks)
                case .q4_0: v = dotQ4_0(row, xi, sums + i * blocks, blocks: blocks)
                case .q8_0: v = dotQ8_0(row, xi, blocks: blocks)
                case .q5_0: v = dotQ5_0(row, xi, sums + i * blocks, blocks: blocks)
                case .q5_1: v = dotQ5_1(row, xi, sums + i * blocks, blocks: blocks)
                case .q4_K: v = dotQ4_K(row, xi, sums + i * blocks, superBlocks: superBlocks, fifthBits: false)
                case .q5_K: v = dotQ4_K(row, xi, sums + i * blocks, superBlocks: superBlocks, fifthBits: true)
                case .q6_K: v = dotQ6_K(row, xi, superBlocks: superBlocks)
                case .f32: v = vdot(row.assumingMemoryBound(to: Float.self), xi, w.cols)
                case .f16, .bf16, .q2_K, .q3_K, .q8_K:
                    dequantizeBlocks(w.type, row, scratch!, count: w.cols)
                    v = vdot(scratch!, xi, w.cols)
                }
                y[i * w.rows + r] = v
            }
        }
    }
}

/// y (inputs, rows) for many inputs: panels of weight rows dequantized (the threads share the
/// rows), then one sgemm per panel (the threads share its rows of x). Panels of 256 rows keep
/// each sgemm wide and the scratch small (256 × cols floats), never a Float32 copy of W.
func quantizedGEMM(_ x: UnsafePointer<Float>, inputs: Int, _ w: QuantizedMatrix, _ y: UnsafeMutablePointer<Float>) {
    forEachDequantizedPanel(w) { r0, n, panel in
        // y[:, r0..<r0+n] (inputs, n) = x (inputs, cols) · panelᵀ (cols, n)
        BLAS.sgemm(transposeA: false, transposeB: true, m: inputs, n: n, k: w.cols, x, panel, beta: 0, y + r0, ldc: w.rows)
    }
}

/// W in panels of up to 256 rows, each dequantized to Float32 (the threads sharing its rows)
/// into one reused scratch: body(first row, row count, panel (n, cols)).
func forEachDequantizedPanel(_ w: QuantizedMatrix, _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
    let size = Swift.min(256, w.rows)
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: size * w.cols)
    defer { scratch.deallocate() }
    var r0 = 0
    while r0 < w.rows {
        let n = Swift.min(size, w.rows - r0), first = r0
        Parallel.forEachChunk(n, grain: 32) { rs in
            for r in rs { w.dequantizeRow(first + r, into: scratch + r * w.cols) }
        }
        body(r0, n, scratch)
        r0 += n
    }
}

/// 16 bytes → 16 floats (each byte 0…255).
@inline(__always) private func floats(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
    var f = SIMD16<Float>()
    for k in 0..<16 { f[k] = Float(v[k]) }
    return f
}

@inline(__always) private func floats(_ v: SIMD16<Int8>) -> SIMD16<Float> {
    var f = SIMD16<Float>()
    for k in 0..<16 { f[k] = Float(v[k]) }
    return f
}

/// Σ_j (d·q_j + m)·x_j = Σ_blocks d·(q·x) + m·Σx.
@inline(__always)
func dotQ4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    var offset: Float = 0
    for b in 0..<blocks {
        let blk = row + b * 20, xb = x + b * 32
        let raw = blk.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        var s = floats(raw & 0x0F) * load16(xb)
        s.addProduct(floats(raw &>> 4), load16(xb + 16))
        acc.addProduct(SIMD16(repeating: loadHalf(blk)), s)
        offset += loadHalf(blk, 2) * xsum[b]
    }
    return acc.sum() + offset
}

/// Σ_j d·(q_j − 8)·x_j = Σ_blocks d·(q·x − 8·Σx).
@inline(__always)
func dotQ4_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    var offset: Float = 0
    for b in 0..<blocks {
        let blk = row + b * 18, xb = x + b * 32
        let raw = blk.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
        var s = floats(raw & 0x0F) * load16(xb)
        s.addProduct(floats(raw &>> 4), load16(xb + 16))
        let d = loadHalf(blk)
        acc.addProduct(SIMD16(repeating: d), s)
        offset -= 8 * d * xsum[b]
    }
    return acc.sum() + offset
}

/// Σ_j d·q_j·x_j.
@inline(__always)
func dotQ8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
    var acc = SIMD16<Float>()
    for b in 0..<blocks {
        let blk = row + b * 34, xb = x + b * 32
        var s = floats(blk.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)) * load16(xb)
        s.addProduct(floats(blk.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)), load16(xb + 16))
        acc.addProduct(SIMD16(repeating: loadHalf(blk)), s)
    }
    return acc.sum()
}

extension GGMLType {
    /// The format ggml's CPU path converts activations to before a product with weights of this
    /// type (its `vec_dot_type`): 8-bit blocks for the block formats, the weight's own type for
    /// F16 and BF16, nothing for F32.
    public var activationType: GGMLType {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return .q8_0   // Q4_1/Q5_1: ggml's Q8_1, the same values plus block sums
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return .q8_K
        case .f16: return .f16
        case .bf16: return .bf16
        case .f32: return .f32
        }
    }
}

/// x rounded to the values that `type` can hold, block by block along the last axis (quantize,
/// then dequantize). For 8-bit blocks: d = max|x|/127 per 32 values (stored as f16), x̃ = d·round(x/d).
/// Used to reproduce ggml's arithmetic, where activations are quantized before every product
/// with quantized weights. The gradient passes straight through (as if the rounding were identity).
public func roundToBlocks(_ x: Tensor, _ type: GGMLType) -> Tensor {
    guard type != .f32 else { return x }
    let c = x.shape.last ?? 1
    precondition(c % type.blockSize == 0, "roundToBlocks: last axis \(c) is not a multiple of \(type.name)'s block of \(type.blockSize)")
    let rows = x.count / max(c, 1)
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forEachChunk(rows, grain: 16) { rs in
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: type.byteCount(c), alignment: 64)
        defer { scratch.deallocate() }
        for r in rs {
            if type == .q8_0 {                  // activations: ggml's x86 rounding (see activationBlock)
                for b in 0..<(c / 32) {
                    let blk = activationBlock(px + r * c + b * 32)
                    storeBlock(blk, po + r * c + b * 32)
                }
            } else if type == .q8_K {
                for b in 0..<(c / 256) { roundToQ8_K(px + r * c + b * 256, po + r * c + b * 256) }
            } else {
                quantizeBlocks(type, px + r * c, scratch, count: c)
                dequantizeBlocks(type, scratch, po + r * c, count: c)
            }
        }
    }
    return Autograd.record(out, "round to \(type.name)", [x]) { g in [g] }
}

/// 256 values rounded as Q8_K holds them (quantizeQ8_K, then d·q), in SIMD: the same values as
/// the scalar round trip.
@inline(__always)
func roundToQ8_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    var m = SIMD16<Float>()
    for k in 0..<16 {
        let v = load16(x + 16 * k)
        m = pointwiseMaxOf(m, v.replacing(with: -v, where: v .< 0))
    }
    let amax = m.max()
    guard amax != 0 else { out.update(repeating: 0, count: 256); return }
    var signedMax = amax
    for j in 0..<256 where abs(x[j]) == amax { signedMax = x[j]; break }      // the first of largest magnitude
    let iscale = -127 / signedMax, d = 1 / iscale
    let magic = SIMD16<Float>(repeating: 12_582_912)                        // 1.5·2²³: rounds half to even
    for k in 0..<16 {
        var q = (load16(x + 16 * k) * iscale + magic) - magic
        q.replace(with: 127, where: q .> 127)
        store16(SIMD16<Float>(repeating: d) * q, out + 16 * k)
    }
}

/// One block of 32 activations → 8-bit, as ggml's x86 `quantize_row_q8_0/q8_1` do (which differ
/// from the reference weight quantizer in two details): q = round-half-to-even(x · 127/max|x|),
/// d = F16(max|x|/127). In SIMD, rounding by adding and subtracting 1.5·2²³ (exact for
/// |v| ≤ 127, ties to even).
struct ActivationBlock {
    var low: SIMD16<Float>, high: SIMD16<Float>      // q as floats (integers in −127…127)
    var d: Float                                     // F16(max|x|/127)
    var dRaw: Float                                  // max|x|/127 unrounded (for `blockSum`)
    var sum: Float                                   // Σq, exact

    /// ggml's Q8_1 block sum s = F16(d·Σq) with d unrounded, which Q4_1 and Q5_1 multiply by
    /// their block minimums.
    var blockSum: Float { Float(Float16(dRaw * sum)) }
}

@inline(__always)
func activationBlock(_ v: UnsafePointer<Float>) -> ActivationBlock {
    let a = load16(v), b = load16(v + 16)
    let m = pointwiseMaxOf(a.replacing(with: -a, where: a .< 0), b.replacing(with: -b, where: b .< 0))
    var amax: Float = 0
    for k in 0..<16 where m[k] > amax { amax = m[k] }
    let id: Float = amax != 0 ? 127 / amax : 0
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let qa = (a * id + magic) - magic, qb = (b * id + magic) - magic
    let dRaw = amax / 127
    return ActivationBlock(low: qa, high: qb, d: Float(Float16(dRaw)), dRaw: dRaw, sum: (qa + qb).sum())
}

@inline(__always)
func pointwiseMaxOf(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    var r = a
    r.replace(with: b, where: b .> a)
    return r
}

/// x̃ = d·q for one block.
@inline(__always)
func storeBlock(_ blk: ActivationBlock, _ out: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(out).storeBytes(of: blk.low * blk.d, as: SIMD16<Float>.self)
    UnsafeMutableRawPointer(out + 16).storeBytes(of: blk.high * blk.d, as: SIMD16<Float>.self)
}

/// y = x · Wᵀ in ggml's arithmetic: the input is first converted to the format ggml's CPU path
/// uses against this weight type (`activationType`): 8-bit blocks of 32 for Q4_0/Q4_1/Q5_0/Q5_1/
/// Q8_0, Q8_K (256 values) for the K-quants, F16 for F16. Integer dot products for a few rows when
/// the build has AVX2 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), and for more rows when it
/// has AVX-512 VNNI (the same types but Q5_K); otherwise the rounded activations
/// through the float kernels, plus Q4_1's and Q5_1's block-sum term (see below).
public func linearGGML(_ x: Tensor, _ w: QuantizedMatrix) -> Tensor {
    let inputs = x.count / max(w.cols, 1)
    let integerKernel: Bool
    switch w.type {
    case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K: integerKernel = true
    default: integerKernel = false
    }
    // Up to 16 rows (a batch of sequences decoding one token each), the integer kernel streams each
    // weight row once for all of them; more rows (a prompt) go through the 8-bit GEMM where the
    // machine has AVX-512 VNNI (Int8GEMM.swift: 16 inputs per vector), else through dequantized
    // panels + sgemm.
    let few = inputs <= 16
    if !x.requiresGrad && (few ? int8KernelsAvailable && integerKernel : int8GEMMAvailable && int8GEMMSupports(w.type)) {
        guard x.rank >= 1, x.shape[x.rank - 1] == w.cols else {
            fatalError(ShapeError(op: "linear (\(w.type.name))", x.shape, w.shape).description)
        }
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [w.rows])
        if !few {
            quantizedGEMMInt8(x.data, inputs: inputs, w, out.data)
        } else if w.type.isKQuant {
            quantizedGEMVInt8K(x.data, inputs: inputs, w, out.data)
        } else {
            quantizedGEMVInt8(x.data, inputs: inputs, w, out.data)
        }
        return out
    }
    guard w.type == .q4_1 || w.type == .q5_1 else { return linear(roundToBlocks(x, w.type.activationType), w) }
    let (rounded, correction) = roundToQ8WithSumCorrection(x)
    return linear(rounded, w) + linear(correction, w.blockMinimums())
}

/// x rounded to ggml's 8-bit activation blocks (as `roundToBlocks(x, .q8_0)`), and what Q4_1
/// needs besides: ggml's dot product adds each weight block's minimum m times the input block's
/// sum s = d·Σq stored as F16, where the float product of the rounded values has F16(d)·Σq. The
/// per-block difference δ = F16(d·Σq) − F16(d)·Σq (rows, cols/32) gives y += δ · Mᵀ (M = the
/// weight's block minimums). One pass over x for both.
public func roundToQ8WithSumCorrection(_ x: Tensor) -> (rounded: Tensor, correction: Tensor) {
    let c = x.shape.last ?? 1
    precondition(c % 32 == 0, "roundToQ8WithSumCorrection: last axis \(c) is not a multiple of 32")
    let rows = x.count / max(c, 1), nb = c / 32
    let rounded = Tensor(uninitialized: x.shape)
    let correction = Tensor(uninitialized: Array(x.shape.dropLast()) + [nb])
    let px = x.data, pr = rounded.data, pc = correction.data
    Parallel.forEachChunk(rows, grain: 16) { rs in
        for r in rs {
            for b in 0..<nb {
                let blk = activationBlock(px + r * c + b * 32)
                storeBlock(blk, pr + r * c + b * 32)
                pc[r * nb + b] = blk.blockSum - blk.d * blk.sum
            }
        }
    }
    return (Autograd.record(rounded, "round to Q8_0", [x]) { g in [g] }, correction)
}

extension QuantizedMatrix {
    /// Q4_1 and Q5_1 only: every block's minimum m, (rows, cols/32).
    public func blockMinimums() -> Tensor {
        precondition(type == .q4_1 || type == .q5_1, "blockMinimums: \(type.name) has no block minimums")
        let nb = cols / 32
        let t = Tensor(uninitialized: [rows, nb])
        for r in 0..<rows { for b in 0..<nb { t.data[r * nb + b] = loadHalf(bytes + r * rowBytes + b * type.blockBytes, 2) } }
        return t
    }
}
