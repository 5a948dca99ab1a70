import Foundation

/// Element-wise math: exp, log, sqrt, tanh, pow. x (any shape) → out (same shape).
/// f(a, b) element by element for two same-shaped tensors, 16 lanes at a time (backward kernels).
@inline(__always)
func broadcastBinaryVector(_ a: Tensor, _ b: Tensor, _ f: (Float16x, Float16x) -> Float16x) -> Tensor {
    precondition(a.shape == b.shape, "elementwise: \(Shape.describe(a.shape)) vs \(Shape.describe(b.shape))")
    let out = Tensor(uninitialized: a.shape)
    let pa = a.data, pb = b.data, po = out.data, n = a.count
    Parallel.forEachChunk(n / 16 + 1, grain: 2048) { r in
        for v in r {
            let i = v * 16
            if i + 16 <= n {
                store16(f(load16(pa + i), load16(pb + i)), po + i)
            } else if i < n {
                var x = Float16x(), y = Float16x()
                for k in 0..<(n - i) { x[k] = pa[i + k]; y[k] = pb[i + k] }
                let z = f(x, y)
                for k in 0..<(n - i) { po[i + k] = z[k] }
            }
        }
    }
    return out
}

extension Tensor {
    /// Applies a SIMD16 kernel to every element (the tail is padded through one vector).
    @inline(__always)
    func mapVector(_ f: (Float16x) -> Float16x) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let src = data, dst = out.data, n = count
        Parallel.forEachChunk(n / 16 + 1, grain: 2048) { r in
            for v in r {
                let i = v * 16
                if i + 16 <= n {
                    store16(f(load16(src + i)), dst + i)
                } else if i < n {
                    var x = Float16x()
                    for k in 0..<(n - i) { x[k] = src[i + k] }
                    let y = f(x)
                    for k in 0..<(n - i) { dst[i + k] = y[k] }
                }
            }
        }
        return out
    }

    public func exp() -> Tensor {
        let out = mapVector(vexp)
        return Autograd.record(out, "exp", [self]) { g in [g * out] }
    }

    public func log() -> Tensor {
        let out = map { Foundation.log($0) }
        return Autograd.record(out, "log", [self]) { g in [g / self] }
    }

    public func sqrt() -> Tensor {
        let out = map { $0.squareRoot() }
        return Autograd.record(out, "sqrt", [self]) { g in [g / (out * 2)] }
    }

    public func tanh() -> Tensor {
        let out = map { Foundation.tanh($0) }
        return Autograd.record(out, "tanh", [self]) { g in [g * (1 - out * out)] }
    }

    /// x^p for a constant exponent.
    public func pow(_ p: Float) -> Tensor {
        let out: Tensor
        switch p {
        case 2: out = map { $0 * $0 }
        case 3: out = map { $0 * $0 * $0 }
        case 0.5: out = map { $0.squareRoot() }
        default: out = map { Foundation.pow($0, p) }
        }
        return Autograd.record(out, "pow", [self]) { g in [g * self.pow(p - 1) * p] }
    }

    public func square() -> Tensor { pow(2) }
}
