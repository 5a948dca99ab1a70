/// Vector math kernels on SIMD16<Float> (16 lanes: one zmm register or two ymm).
///
/// Written so that a release build with `-target-cpu native` keeps every step in vector
/// registers (no libm calls): see DESIGN.md's speed notes.
public typealias Float16x = SIMD16<Float>

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> Float16x {
    UnsafeRawPointer(p).loadUnaligned(as: Float16x.self)
}

@inline(__always)
func store16(_ v: Float16x, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float16x.self)
}

/// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n built in the exponent
/// bits. Relative error below 2e-7; exact 0 below −87.3, +inf above 88.7.
@inline(__always)
public func vexp(_ x: Float16x) -> Float16x {
    let lo = x .< -87.33654, hi = x .> 88.72283
    var xc = x.replacing(with: -87.33654, where: lo)         // (clamped() compiles to scalar code)
    xc.replace(with: 88.72283, where: hi)
    let magic = Float16x(repeating: 12582912)              // 1.5·2^23: rounds to an integer
    let shifted = xc * 1.442695041 + magic
    let n = shifted - magic
    var r = xc - n * 0.693145752                             // ln2 split in two for exactness
    r = r - n * 1.428606765e-06
    var p = Float16x(repeating: 1.0 / 720)
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // shifted's low mantissa bits hold n + 0x400000; move n + 127 into the exponent field.
    let bits = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000 &+ 127
    let scale = unsafeBitCast(bits &<< 23, to: Float16x.self)
    var result = p * scale
    result.replace(with: 0, where: lo)
    result.replace(with: .infinity, where: hi)
    return result
}

/// tanh through e^(2|x|): accurate to ~1e-7 absolute (used where absolute error is what counts,
/// as inside GELU; the `tanh` op itself uses libm for full relative accuracy near 0).
@inline(__always)
func vtanhAbs(_ x: Float16x) -> Float16x {
    let ax = x.replacing(with: -x, where: x .< 0)
    let e = vexp(2 * ax)
    var t = 1 - 2 / (e + 1)
    t.replace(with: -t, where: x .< 0)
    return t
}

/// Scalar e^x through the vector kernel's formula (for tails and single rows).
@inline(__always)
public func sexp(_ x: Float) -> Float { vexp(Float16x(repeating: x))[0] }

/// Sum of n floats, four vector accumulators.
@inline(__always)
func vsum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = Float16x(), a1 = Float16x(), a2 = Float16x(), a3 = Float16x()
    var i = 0
    while i + 64 <= n {
        a0 += load16(p + i); a1 += load16(p + i + 16); a2 += load16(p + i + 32); a3 += load16(p + i + 48)
        i += 64
    }
    while i + 16 <= n { a0 += load16(p + i); i += 16 }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Dot product of n floats.
@inline(__always)
func vdot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = Float16x(), a1 = Float16x(), a2 = Float16x(), a3 = Float16x()
    var i = 0
    while i + 64 <= n {
        a0.addProduct(load16(a + i), load16(b + i))
        a1.addProduct(load16(a + i + 16), load16(b + i + 16))
        a2.addProduct(load16(a + i + 32), load16(b + i + 32))
        a3.addProduct(load16(a + i + 48), load16(b + i + 48))
        i += 64
    }
    while i + 16 <= n { a0.addProduct(load16(a + i), load16(b + i)); i += 16 }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += a·x over n floats.
@inline(__always)
func vaxpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let va = Float16x(repeating: a)
    var i = 0
    while i + 16 <= n {
        var acc = load16(y + i)
        acc.addProduct(va, load16(x + i))
        store16(acc, y + i)
        i += 16
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

/// Largest of n ≥ 1 floats.
@inline(__always)
func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var i = 0
    var m = -Float.infinity
    if n >= 16 {
        var acc = load16(p)
        i = 16
        while i + 16 <= n {
            let v = load16(p + i)
            acc.replace(with: v, where: v .> acc)
            i += 16
        }
        for k in 0..<16 where acc[k] > m { m = acc[k] }
    }
    while i < n { if p[i] > m { m = p[i] }; i += 1 }
    return m
}

/// Index of the largest value (the first, on ties).
public func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in 1..<x.count where x[i] > x[best] { best = i }
    return best
}
