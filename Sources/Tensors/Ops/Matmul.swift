/// Matrix products through BLAS sgemm: one call for 2-D operands (leading dimensions of the left
/// operand are folded into its rows), one call per matrix for batched operands, never per row.
///
/// a (..., M, K) @ b (..., K, N) → (..., M, N); batch dimensions broadcast as in NumPy.
/// `transposeA` / `transposeB` read an operand as its transpose without copying it:
/// with transposeB, b is stored (..., N, K).
extension Shape {
    /// Validates a matmul and returns (batch shape of a, of b, of the result, m, k, n).
    public static func matmul(_ a: [Int], _ b: [Int], transposeA: Bool = false, transposeB: Bool = false) throws(ShapeError)
        -> (batchA: [Int], batchB: [Int], batch: [Int], m: Int, k: Int, n: Int) {
        guard a.count >= 2, b.count >= 2 else { throw ShapeError(op: "matmul", a, b) }
        let (m, ka) = transposeA ? (a[a.count - 1], a[a.count - 2]) : (a[a.count - 2], a[a.count - 1])
        let (kb, n) = transposeB ? (b[b.count - 1], b[b.count - 2]) : (b[b.count - 2], b[b.count - 1])
        guard ka == kb else { throw ShapeError(op: "matmul", a, b) }
        let ba = Array(a.dropLast(2)), bb = Array(b.dropLast(2))
        let batch: [Int]
        do { batch = try broadcast(ba, bb, op: "matmul") } catch { throw ShapeError(op: "matmul", a, b) }
        return (ba, bb, batch, m, ka, n)
    }
}

public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let s = validate { () throws(ShapeError) in
        try Shape.matmul(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
    }
    // Fold a's batch into rows when b is one shared matrix: a single large sgemm.
    if b.rank == 2 && a.rank > 2 && !transposeA {
        let flat = matmul(a.reshaped([-1, a.shape[a.rank - 1]]), b, transposeB: transposeB)
        return flat.reshaped(s.batch + [s.m, s.n])
    }
    let out = Tensor(uninitialized: s.batch + [s.m, s.n])
    let batches = Shape.count(s.batch)
    let sizeA = a.shape.suffix(2).reduce(1, *), sizeB = b.shape.suffix(2).reduce(1, *)
    let strideA = Shape.broadcastStrides(from: s.batchA, to: s.batch)
    let strideB = Shape.broadcastStrides(from: s.batchB, to: s.batch)
    if batches == 1 {
        BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: s.m, n: s.n, k: s.k, a.data, b.data, out.data)
    } else {
        forEachRow(s.batch + [1], strideA + [0], strideB + [0], rows: 0..<batches) { i, ia, ib in
            BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: s.m, n: s.n, k: s.k,
                       a.data + ia * sizeA, b.data + ib * sizeB, out.data + i * s.m * s.n)
        }
    }
    return Autograd.record(out, "matmul", [a, b]) { g in
        // C = op(A)·op(B):  d op(A) = dC·op(B)ᵀ,  d op(B) = op(A)ᵀ·dC, transposed back when stored so.
        let ga: Tensor? = !a.requiresGrad ? nil : (transposeA
            ? matmul(b, g, transposeA: transposeB, transposeB: true)
            : matmul(g, b, transposeB: !transposeB)).sumTo(a.shape)
        let gb: Tensor? = !b.requiresGrad ? nil : (transposeB
            ? matmul(g, a, transposeA: true, transposeB: transposeA)
            : matmul(a, g, transposeA: !transposeA)).sumTo(b.shape)
        return [ga, gb]
    }
}

/// Fully connected layer: x (..., in) · wᵀ + bias, with w stored (out, in) as in PyTorch.
/// One sgemm forward (bias pre-filled, beta = 1), one sgemm each for dx and dw backward.
public func linear(_ x: Tensor, _ w: Tensor, _ bias: Tensor? = nil) -> Tensor {
    guard w.rank == 2, x.rank >= 1, x.shape[x.rank - 1] == w.shape[1] else {
        fatalError(ShapeError(op: "linear", x.shape, w.shape).description)
    }
    let (inF, outF) = (w.shape[1], w.shape[0])
    if let bias, bias.shape != [outF] { fatalError(ShapeError(op: "linear bias", bias.shape, [outF]).description) }
    let rows = x.count / max(inF, 1)
    let outShape = Array(x.shape.dropLast()) + [outF]
    let out = Tensor(uninitialized: outShape)
    if rows <= 4 {
        gemv(x.data, rows: rows, w.data, outF: outF, inF: inF, bias: bias?.data, out.data)
    } else {
        if let bias {
            for r in 0..<rows { (out.data + r * outF).update(from: bias.data, count: outF) }
        }
        BLAS.sgemm(transposeA: false, transposeB: true, m: rows, n: outF, k: inF,
                   x.data, w.data, beta: bias == nil ? 0 : 1, out.data)
    }
    let inputs = bias.map { [x, w, $0] } ?? [x, w]
    return Autograd.record(out, "linear", inputs) { g in
        var grads: [Tensor?] = []
        if x.requiresGrad {                                      // dx (rows, in) = g (rows, out) · w (out, in)
            let gx = Tensor(uninitialized: x.shape)
            BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: inF, k: outF, g.data, w.data, gx.data)
            grads.append(gx)
        } else { grads.append(nil) }
        if w.requiresGrad {                                      // dw (out, in) = gᵀ (out, rows) · x (rows, in)
            let gw = Tensor(uninitialized: w.shape)
            BLAS.sgemm(transposeA: true, transposeB: false, m: outF, n: inF, k: rows, g.data, x.data, gw.data)
            grads.append(gw)
        } else { grads.append(nil) }
        if let bias {
            grads.append(bias.requiresGrad ? columnSums(g.data, rows: rows, columns: outF) : nil)
        }
        return grads
    }
}

/// Σ over rows of a (rows, columns) matrix → (columns), columns split across threads.
func columnSums(_ x: UnsafePointer<Float>, rows: Int, columns: Int) -> Tensor {
    let out = Tensor(zeros: [columns])
    let po = out.data
    Parallel.forEachChunk(columns, grain: Swift.max(64, (1 << 16) / Swift.max(rows, 1))) { cols in
        for r in 0..<rows {
            let row = x + r * columns
            for c in cols { po[c] += row[c] }
        }
    }
    return out
}

/// y (rows, out) = x (rows, in) · wᵀ + bias for a few rows (token-by-token generation): each weight
/// row is streamed once and dotted with every x row, output rows split across threads. Memory-bound,
/// where sgemm's packing would cost more than the arithmetic.
func gemv(_ x: UnsafePointer<Float>, rows: Int, _ w: UnsafePointer<Float>, outF: Int, inF: Int,
          bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>) {
    Parallel.forEachChunk(outF, grain: 256) { outs in
        for o in outs {
            let wr = w + o * inF
            for r in 0..<rows { y[r * outF + o] = vdot(wr, x + r * inF, inF) + (bias?[o] ?? 0) }
        }
    }
}
