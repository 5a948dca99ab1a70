/// Shape changes: reshape (a view), transpose and permute (copies), squeeze/unsqueeze.
extension Tensor {
    /// Same values, new shape (one dimension may be -1). Shares storage: no copy.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let s = validate { () throws(ShapeError) in try Shape.resolve(newShape, count: count, from: shape) }
        let out = Tensor(storage: storage, offset: offset, shape: s)
        let inShape = shape
        return Autograd.record(out, "reshape", [self]) { g in [g.reshaped(inShape)] }
    }

    public func reshaped(_ newShape: Int...) -> Tensor { reshaped(newShape) }

    /// Inserts a dimension of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = validate { () throws(ShapeError) in try Shape.axis(axis, rank: rank + 1, op: "unsqueeze") }
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes a dimension of size 1.
    public func squeezed(_ axis: Int) -> Tensor {
        let a = validate { () throws(ShapeError) in try Shape.axis(axis, rank: rank, op: "squeeze") }
        guard shape[a] == 1 else { fatalError("squeeze: axis \(axis) has size \(shape[a]) in \(Shape.describe(shape))") }
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// Reorders dimensions: out.shape[i] = shape[dims[i]]. Copies into row-major order.
    public func permuted(_ dims: [Int]) -> Tensor {
        guard dims.count == rank, Set(dims) == Set(0..<rank) else {
            fatalError(ShapeError(op: "permute", message: "dims \(dims) for shape \(Shape.describe(shape))").description)
        }
        if dims == Array(0..<rank) { return self }
        let outShape = dims.map { shape[$0] }
        let inStrides = Shape.strides(shape)
        let srcStrides = dims.map { inStrides[$0] }     // strides of the source, read in output order
        let out = Tensor(uninitialized: outShape)
        let n = outShape.last ?? 1, step = srcStrides.last ?? 1
        let ps = data, po = out.data
        let rows = count / max(n, 1)
        Parallel.forEachChunk(rows, grain: max(1, (1 << 14) / max(n, 1))) { range in
            forEachRow(outShape, srcStrides, srcStrides, rows: range) { row, os, _ in
                let o = po + row * n, s = ps + os
                if step == 1 { o.update(from: s, count: n) } else { for j in 0..<n { o[j] = s[j * step] } }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, d) in dims.enumerated() { inverse[d] = i }
        return Autograd.record(out, "permute", [self]) { g in [g.permuted(inverse)] }
    }

    public func permuted(_ dims: Int...) -> Tensor { permuted(dims) }

    /// Swaps two dimensions.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        let (x, y) = validate { () throws(ShapeError) in
            (try Shape.axis(a, rank: rank, op: "transpose"), try Shape.axis(b, rank: rank, op: "transpose"))
        }
        var dims = Array(0..<rank)
        dims.swapAt(x, y)
        return permuted(dims)
    }
}
