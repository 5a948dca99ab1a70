/// Softmax and log-softmax over the last axis, stable (the row maximum is subtracted first).
/// x (..., n) → out (..., n).

/// One row: y = exp(x − max) / Σ. Returns log Σ exp(x − max) + max (the row's log-sum-exp).
@discardableResult @inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let m = vmax(x, n)
    var i = 0
    var acc = Float16x()
    let mv = Float16x(repeating: m)
    while i + 16 <= n {
        let e = vexp(load16(x + i) - mv)
        store16(e, y + i); acc += e
        i += 16
    }
    var sum = acc.sum()
    while i < n { y[i] = sexp(x[i] - m); sum += y[i]; i += 1 }
    let inv = 1 / sum
    for j in 0..<n { y[j] *= inv }
    return m + Foundation.log(sum)
}

import Foundation

extension Tensor {
    public func softmax() -> Tensor {
        let n = shape.last ?? 1, rows = count / max(n, 1)
        let out = Tensor(uninitialized: shape)
        let src = data, dst = out.data
        Parallel.forEachChunk(rows, grain: max(1, 8192 / max(n, 1))) { r in
            for row in r { softmaxRow(src + row * n, dst + row * n, n) }
        }
        return Autograd.record(out, "softmax", [self]) { g in
            // dx = y ⊙ (g − Σ g⊙y) per row
            let gx = Tensor(uninitialized: out.shape)
            let py = out.data, pg = g.data, px = gx.data
            Parallel.forEachChunk(rows, grain: max(1, 8192 / max(n, 1))) { r in
                for row in r {
                    let y = py + row * n, gr = pg + row * n, d = px + row * n
                    let dot = vdot(y, gr, n)
                    for j in 0..<n { d[j] = y[j] * (gr[j] - dot) }
                }
            }
            return [gx]
        }
    }

    public func logSoftmax() -> Tensor {
        let n = shape.last ?? 1, rows = count / max(n, 1)
        let out = Tensor(uninitialized: shape)
        let src = data, dst = out.data
        Parallel.forEachChunk(rows, grain: max(1, 8192 / max(n, 1))) { r in
            for row in r {
                let lse = softmaxRow(src + row * n, dst + row * n, n)
                for j in 0..<n { dst[row * n + j] = src[row * n + j] - lse }
            }
        }
        return Autograd.record(out, "log_softmax", [self]) { g in
            // dx = g − exp(y) · Σ g per row
            let gx = Tensor(uninitialized: out.shape)
            let py = out.data, pg = g.data, px = gx.data
            for row in 0..<rows {
                let y = py + row * n, gr = pg + row * n, d = px + row * n
                let s = vsum(gr, n)
                for j in 0..<n { d[j] = gr[j] - sexp(y[j]) * s }
            }
            return [gx]
        }
    }
}
