/// Reductions over axes: sum, mean, max, var. x (shape S) → out (S without the reduced axes,
/// or with them kept as size 1 when `keepDim`). With no axes given, over everything.
extension Tensor {
    /// Views x as (outer, n, inner) around one axis.
    private func split(_ axis: Int) -> (outer: Int, n: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    private func axes(_ axes: [Int], op: String) -> [Int] {
        if axes.isEmpty { return Array(0..<rank) }
        let a = validate { () throws(ShapeError) in try axes.map { a throws(ShapeError) in try Shape.axis(a, rank: rank, op: op) } }
        guard Set(a).count == a.count else { fatalError(ShapeError(op: op, message: "repeated axis in \(axes)").description) }
        return a.sorted()
    }

    private func reducedShape(_ axes: [Int], keepDim: Bool) -> [Int] {
        keepDim ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// Raw kernel: sum over one axis, keeping it as size 1.
    private func sumKernel(_ axis: Int) -> Tensor {
        let (outer, n, inner) = split(axis)
        var s = shape
        s[axis] = 1
        let out = Tensor(zeros: s)
        let src = data, dst = out.data
        Parallel.forEachChunk(outer, grain: max(1, (1 << 15) / max(n * inner, 1))) { range in
            for o in range {
                let x = src + o * n * inner, y = dst + o * inner
                if inner == 1 { y[0] = vsum(x, n); continue }
                for j in 0..<n { let row = x + j * inner; for i in 0..<inner { y[i] += row[i] } }
            }
        }
        return out
    }

    public func sum(axes: [Int] = [], keepDim: Bool = false) -> Tensor {
        let ax = self.axes(axes, op: "sum")
        var t = self.detached()
        for a in ax { t = t.sumKernel(a) }
        let out = t.reshaped(reducedShape(ax, keepDim: keepDim)).detached()
        let keptShape = reducedShape(ax, keepDim: true), inShape = shape
        return Autograd.record(out, "sum", [self]) { g in [g.reshaped(keptShape).broadcast(to: inShape)] }
    }

    public func sum(axis: Int, keepDim: Bool = false) -> Tensor { sum(axes: [axis], keepDim: keepDim) }

    public func mean(axes: [Int] = [], keepDim: Bool = false) -> Tensor {
        let ax = self.axes(axes, op: "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDim: keepDim) * (1 / Float(n))
    }

    public func mean(axis: Int, keepDim: Bool = false) -> Tensor { mean(axes: [axis], keepDim: keepDim) }

    /// Variance with Bessel's `correction` (1: unbiased, as `torch.var` by default; 0: population).
    public func variance(axes: [Int] = [], correction: Int = 1, keepDim: Bool = false) -> Tensor {
        let ax = self.axes(axes, op: "var")
        let n = ax.reduce(1) { $0 * shape[$1] }
        let centered = self - mean(axes: ax, keepDim: true)
        return centered.square().sum(axes: ax, keepDim: keepDim) * (1 / Float(max(n - correction, 0)))
    }

    public func variance(axis: Int, correction: Int = 1, keepDim: Bool = false) -> Tensor {
        variance(axes: [axis], correction: correction, keepDim: keepDim)
    }

    /// Largest value along one axis (`torch.amax` for one axis); the gradient goes to the first position holding it.
    public func amax(axis: Int, keepDim: Bool = false) -> Tensor {
        let a = validate { () throws(ShapeError) in try Shape.axis(axis, rank: rank, op: "max") }
        let (outer, n, inner) = split(a)
        precondition(n > 0, "max: empty axis \(axis) in \(Shape.describe(shape))")
        let out = Tensor(uninitialized: reducedShape([a], keepDim: keepDim))
        var argmax = [Int32](repeating: 0, count: outer * inner)
        let src = data, dst = out.data
        for o in 0..<outer {
            for i in 0..<inner {
                var best = src[o * n * inner + i], at = 0
                for j in 1..<n where src[(o * n + j) * inner + i] > best { best = src[(o * n + j) * inner + i]; at = j }
                dst[o * inner + i] = best
                argmax[o * inner + i] = Int32(at)
            }
        }
        let inShape = shape
        return Autograd.record(out, "max", [self]) { g in
            let gx = Tensor(zeros: inShape)
            for o in 0..<outer { for i in 0..<inner {
                gx.data[(o * n + Int(argmax[o * inner + i])) * inner + i] = g.data[o * inner + i]
            } }
            return [gx]
        }
    }

    /// Largest value of all elements.
    public func amax() -> Tensor { reshaped([-1]).amax(axis: 0) }
}
