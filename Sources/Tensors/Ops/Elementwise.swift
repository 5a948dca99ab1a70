/// Element-wise binary ops with NumPy broadcasting: add, sub, mul, div, and their operators.
///
/// a (shape A), b (shape B) → out (broadcast(A, B)). Backward sums the gradient over the
/// dimensions an operand was broadcast along (`sumTo`).

/// Walks a contiguous output of `shape` row by row (a row = the last dimension), giving each
/// row's element offsets into two sources read with `sa` and `sb` strides (0 where broadcast).
@inline(__always)
func forEachRow(_ shape: [Int], _ sa: [Int], _ sb: [Int], rows: Range<Int>,
                _ body: (_ row: Int, _ offA: Int, _ offB: Int) -> Void) {
    let r = shape.count
    if r <= 1 { if !rows.isEmpty { body(0, 0, 0) }; return }
    // Multi-index of the first row, and its offsets.
    var idx = [Int](repeating: 0, count: r - 1)
    var rem = rows.lowerBound, oa = 0, ob = 0
    for d in stride(from: r - 2, through: 0, by: -1) {
        idx[d] = rem % shape[d]; rem /= shape[d]
        oa += idx[d] * sa[d]; ob += idx[d] * sb[d]
    }
    for row in rows {
        body(row, oa, ob)
        var d = r - 2
        while d >= 0 {
            idx[d] += 1; oa += sa[d]; ob += sb[d]
            if idx[d] < shape[d] { break }
            oa -= sa[d] * shape[d]; ob -= sb[d] * shape[d]; idx[d] = 0
            d -= 1
        }
    }
}

@inline(__always)
func broadcastBinary(_ a: Tensor, _ b: Tensor, op: String, _ f: (Float, Float) -> Float) -> Tensor {
    if a.shape == b.shape {
        let out = Tensor(uninitialized: a.shape)
        let pa = a.data, pb = b.data, po = out.data
        Parallel.forEachChunk(out.count, grain: 1 << 15) { r in
            for i in r { po[i] = f(pa[i], pb[i]) }
        }
        return out
    }
    let shape = validate { () throws(ShapeError) in try Shape.broadcast(a.shape, b.shape, op: op) }
    let out = Tensor(uninitialized: shape)
    let sa = Shape.broadcastStrides(from: a.shape, to: shape)
    let sb = Shape.broadcastStrides(from: b.shape, to: shape)
    let n = shape.last ?? 1, ia = sa.last ?? 0, ib = sb.last ?? 0
    let pa = a.data, pb = b.data, po = out.data
    let rows = out.count / max(n, 1)
    Parallel.forEachChunk(rows, grain: max(1, (1 << 15) / max(n, 1))) { range in
        forEachRow(shape, sa, sb, rows: range) { row, oa, ob in
            let o = po + row * n, x = pa + oa, y = pb + ob
            switch (ia, ib) {
            case (1, 1): for j in 0..<n { o[j] = f(x[j], y[j]) }
            case (1, 0): let v = y[0]; for j in 0..<n { o[j] = f(x[j], v) }
            case (0, 1): let v = x[0]; for j in 0..<n { o[j] = f(v, y[j]) }
            default: let u = x[0], v = y[0]; for j in 0..<n { o[j] = f(u, v) }
            }
        }
    }
    return out
}

extension Tensor {
    /// Sums this tensor down to `target`, a shape that broadcasts to ours (the backward of broadcasting).
    public func sumTo(_ target: [Int]) -> Tensor {
        if target == shape { return self }
        let out = Tensor(zeros: target)
        let st = Shape.broadcastStrides(from: target, to: shape)
        let n = shape.last ?? 1, it = st.last ?? 0
        let pg = data, po = out.data
        forEachRow(shape, st, st, rows: 0..<(count / max(n, 1))) { row, ot, _ in
            let g = pg + row * n, o = po + ot
            if it == 1 { for j in 0..<n { o[j] += g[j] } } else { o[0] += vsum(g, n) }
        }
        return out
    }

    /// Materializes this tensor broadcast to `shape`.
    public func broadcast(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let s = validate { () throws(ShapeError) in try Shape.broadcast(shape, target, op: "broadcast") }
        guard s == target else { fatalError(ShapeError(op: "broadcast", shape, target).description) }
        let out = broadcastBinary(self, Tensor.zeros(target), op: "broadcast") { x, _ in x }
        let inShape = shape
        return Autograd.record(out, "broadcast", [self]) { g in [g.sumTo(inShape)] }
    }
}

// MARK: - Arithmetic

public func + (a: Tensor, b: Tensor) -> Tensor {
    let out = broadcastBinary(a, b, op: "add") { $0 + $1 }
    return Autograd.record(out, "add", [a, b]) { g in
        [a.requiresGrad ? g.sumTo(a.shape) : nil, b.requiresGrad ? g.sumTo(b.shape) : nil]
    }
}

public func - (a: Tensor, b: Tensor) -> Tensor {
    let out = broadcastBinary(a, b, op: "sub") { $0 - $1 }
    return Autograd.record(out, "sub", [a, b]) { g in
        [a.requiresGrad ? g.sumTo(a.shape) : nil, b.requiresGrad ? (-g).sumTo(b.shape) : nil]
    }
}

public func * (a: Tensor, b: Tensor) -> Tensor {
    let out = broadcastBinary(a, b, op: "mul") { $0 * $1 }
    return Autograd.record(out, "mul", [a, b]) { g in
        [a.requiresGrad ? (g * b).sumTo(a.shape) : nil, b.requiresGrad ? (g * a).sumTo(b.shape) : nil]
    }
}

public func / (a: Tensor, b: Tensor) -> Tensor {
    let out = broadcastBinary(a, b, op: "div") { $0 / $1 }
    return Autograd.record(out, "div", [a, b]) { g in
        [a.requiresGrad ? (g / b).sumTo(a.shape) : nil,
         b.requiresGrad ? (-(g * a) / (b * b)).sumTo(b.shape) : nil]
    }
}

public prefix func - (a: Tensor) -> Tensor { a * -1 }

public func + (a: Tensor, s: Float) -> Tensor {
    let out = a.map { $0 + s }
    return Autograd.record(out, "add_scalar", [a]) { g in [g] }
}
public func + (s: Float, a: Tensor) -> Tensor { a + s }
public func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
public func - (s: Float, a: Tensor) -> Tensor { -a + s }

public func * (a: Tensor, s: Float) -> Tensor {
    let out = a.map { $0 * s }
    return Autograd.record(out, "mul_scalar", [a]) { g in [g * s] }
}
public func * (s: Float, a: Tensor) -> Tensor { a * s }
public func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }

public func += (a: inout Tensor, b: Tensor) { a = a + b }

extension Tensor {
    /// Applies `f` to every element into a new tensor (not recorded: ops wrap it with their backward).
    @inline(__always)
    public func map(_ f: (Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let src = data, dst = out.data
        Parallel.forEachChunk(count, grain: 1 << 15) { r in
            for i in r { dst[i] = f(src[i]) }
        }
        return out
    }
}
