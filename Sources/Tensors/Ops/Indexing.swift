/// Indexing: slices, concat, stack, row gathers (embedding lookup) and masked fill.
extension Tensor {
    /// Elements `range` along `axis`. A view (no copy) when only size-1 dimensions precede `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = validate { () throws(ShapeError) in try Shape.axis(axis, rank: rank, op: "slice") }
        guard range.lowerBound >= 0, range.upperBound <= shape[a] else {
            fatalError("slice: range \(range) outside axis \(axis) of size \(shape[a]) in \(Shape.describe(shape))")
        }
        var outShape = shape
        outShape[a] = range.count
        let inner = shape[(a + 1)...].reduce(1, *), outer = shape[..<a].reduce(1, *)
        let out: Tensor
        if outer == 1 {
            out = Tensor(storage: storage, offset: offset + range.lowerBound * inner, shape: outShape)
        } else {
            out = Tensor(uninitialized: outShape)
            for o in 0..<outer {
                (out.data + o * range.count * inner)
                    .update(from: data + (o * shape[a] + range.lowerBound) * inner, count: range.count * inner)
            }
        }
        let inShape = shape
        return Autograd.record(out, "slice", [self]) { g in
            let gx = Tensor(zeros: inShape)
            for o in 0..<outer {
                (gx.data + (o * inShape[a] + range.lowerBound) * inner)
                    .update(from: g.data + o * range.count * inner, count: range.count * inner)
            }
            return [gx]
        }
    }

    /// One index along `axis`, with that dimension removed.
    public func select(axis: Int = 0, _ index: Int) -> Tensor {
        slice(axis: axis, index..<(index + 1)).squeezed(axis)
    }

    /// Splits into pieces of the given sizes along `axis` (e.g. q, k, v out of a fused projection).
    public func split(_ sizes: [Int], axis: Int) -> [Tensor] {
        var start = 0
        return sizes.map { n in defer { start += n }; return slice(axis: axis, start..<(start + n)) }
    }

    /// Joins tensors along an existing axis; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat: no tensors")
        let first = parts[0]
        let a = validate { () throws(ShapeError) in try Shape.axis(axis, rank: first.rank, op: "concat") }
        for t in parts.dropFirst() {
            var x = t.shape, y = first.shape
            if x.count == y.count { x[a] = 0; y[a] = 0 }
            guard x == y else { fatalError(ShapeError(op: "concat", first.shape, t.shape).description) }
        }
        var outShape = first.shape
        outShape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        let inner = first.shape[(a + 1)...].reduce(1, *), outer = first.shape[..<a].reduce(1, *)
        let out = Tensor(uninitialized: outShape)
        var at = 0
        for t in parts {
            let len = t.shape[a] * inner
            for o in 0..<outer { (out.data + o * outShape[a] * inner + at).update(from: t.data + o * len, count: len) }
            at += len
        }
        let sizes = parts.map { $0.shape[a] }
        return Autograd.record(out, "concat", parts) { g in g.detached().split(sizes, axis: a) }
    }

    /// Joins same-shaped tensors along a new axis.
    public static func stack(_ parts: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!parts.isEmpty, "stack: no tensors")
        for t in parts where t.shape != parts[0].shape {
            fatalError(ShapeError(op: "stack", parts[0].shape, t.shape).description)
        }
        return concat(parts.map { $0.unsqueezed(axis) }, axis: axis)
    }

    /// Rows of a (V, C) table picked by ids → (idsShape..., C): the embedding lookup.
    /// Backward adds each row's gradient into its id's row (repeated ids accumulate).
    public func gatherRows(_ ids: [Int32], shape idsShape: [Int]? = nil) -> Tensor {
        guard rank == 2 else { fatalError(ShapeError(op: "embedding", message: "table \(Shape.describe(shape)) is not 2-D").description) }
        let (v, c) = (shape[0], shape[1])
        let idsShape = idsShape ?? [ids.count]
        precondition(Shape.count(idsShape) == ids.count, "embedding: \(ids.count) ids for shape \(Shape.describe(idsShape))")
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= v {
            fatalError("embedding: id \(id) at position \(i) outside the table's \(v) rows")
        }
        let out = Tensor(uninitialized: idsShape + [c])
        for (i, id) in ids.enumerated() { (out.data + i * c).update(from: data + Int(id) * c, count: c) }
        return Autograd.record(out, "embedding", [self]) { g in
            let gw = Tensor(zeros: [v, c])
            for (i, id) in ids.enumerated() {
                let dst = gw.data + Int(id) * c, src = g.data + i * c
                for j in 0..<c { dst[j] += src[j] }
            }
            return [gw]
        }
    }

    /// `value` where `mask` (broadcastable, nonzero = fill) is set, else the element itself.
    public func maskedFill(_ mask: Tensor, _ value: Float) -> Tensor {
        let out = broadcastBinary(self, mask, op: "masked_fill") { $1 != 0 ? value : $0 }
        let keep = mask.map { $0 != 0 ? 0 : 1 }
        return Autograd.record(out, "masked_fill", [self]) { g in [(g * keep).sumTo(self.shape)] }
    }
}
