import Foundation

/// Causal multi-head scaled-dot-product attention as one fused op, in three layouts:
///
/// - `causalAttention(q, k, v)`: q (B, H, Tq, D), k and v (B, Hkv, Tk, D) → out (B, H, Tq, D)
///   (PyTorch's `scaled_dot_product_attention(is_causal=True)` layout).
/// - `causalAttention(packed:heads:kvHeads:)`: the output of a fused q/k/v projection,
///   (B, T, (H + 2·Hkv)·D) → (B, T, H·D), read and written in place with strides: no split, no
///   transposes, and the gradient comes back packed the same way.
/// - `causalAttention(rows:...)`: q (B·T, H·D), k and v (B·T, Hkv·D), the outputs of separate
///   projections, read with strides the same way → (B·T, H·D).
/// - `cachedAttention(q:spans:...)`: inference over a ragged batch, each sequence's queries against
///   its own cached keys and values (no autograd).
///
/// Options: `scale` (default 1/√D); `window` W: a query at position p sees only keys at
/// positions p − W + 1 … p (sliding-window attention), instead of all of 0 … p; `softcap` c:
/// scores become c·tanh(S/c) before the softmax (Gemma 2), so none exceeds ±c.
///
/// H is a multiple of Hkv (grouped-query attention: query head h reads key/value head
/// h / (H / Hkv)). Query i sits at position Tk − Tq + i and sees keys 0 through that position
/// (so Tq < Tk is the KV-cache case).
///
///   S = q·kᵀ · scale       (Tq, Tk) per head, −∞ above the causal diagonal (and before the window)
///   P = softmax(S)         kept (B, H, Tq, Tk) for backward
///   P' = P ⊙ M / (1 − p)   optional dropout on the weights (M drawn from `rng`)
///   out = P'·v
///
/// Backward per head: dv = P'ᵀ·dout, dP' = dout·vᵀ, dP = dP' ⊙ M / (1 − p),
/// dS = P ⊙ (dP − rowsum(dP ⊙ P)) [⊙ (1 − tanh²) with a soft-cap], dq = dS·k · scale, dk = dSᵀ·q · scale.
///
/// Work is split across threads by key/value head (so dk and dv have one writer each); within a
/// head, rows go in blocks of 64 and each block's products stop at the last key it can see, so the
/// masked upper triangle is never computed.
public func causalAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float? = nil, window: Int? = nil, softcap: Float? = nil,
                            dropout p: Float = 0, rng: RandomGenerator? = nil) -> Tensor {
    guard q.rank == 4, k.rank == 4, v.rank == 4, k.shape == v.shape,
          q.shape[0] == k.shape[0], q.shape[3] == k.shape[3], k.shape[1] > 0, q.shape[1] % k.shape[1] == 0,
          k.shape[2] >= q.shape[2] else {
        fatalError(ShapeError(op: "attention", q.shape, k.shape == v.shape ? k.shape : v.shape).description)
    }
    let (b, h, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (hkv, tk) = (k.shape[1], k.shape[2])
    // (B, H, T, D): row stride D, head (b, h) starts at ((b·H + h)·T)·D.
    let qL = AttentionLayout(rowStride: d, batchStride: h * tq * d, headStride: tq * d, offset: 0)
    let kvL = AttentionLayout(rowStride: d, batchStride: hkv * tk * d, headStride: tk * d, offset: 0)
    let oL = qL
    let kernel = AttentionKernel(b: b, h: h, hkv: hkv, tq: tq, tk: tk, d: d, scale: scale, window: window, softcap: softcap, p: p, rng: rng)
    let out = Tensor(uninitialized: [b, h, tq, d])
    kernel.forward(q.data, qL, k.data, kvL, v.data, kvL, out.data, oL)
    return Autograd.record(out, "attention", [q, k, v]) { g in
        let dq = Tensor(uninitialized: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        kernel.backward(g.data, oL, q.data, dq.data, qL, k.data, dk.data, kvL, v.data, dv.data, kvL)
        return [dq, dk, dv]
    }
}

/// Attention straight from a fused projection: qkv (B, T, (H + 2·Hkv)·D), laid out as all query
/// heads, then all key heads, then all value heads → out (B, T, H·D).
public func causalAttention(packed qkv: Tensor, heads h: Int, kvHeads: Int? = nil, scale: Float? = nil, window: Int? = nil, softcap: Float? = nil,
                            dropout p: Float = 0, rng: RandomGenerator? = nil) -> Tensor {
    let hkv = kvHeads ?? h
    guard qkv.rank == 3, hkv > 0, h % hkv == 0, qkv.shape[2] % (h + 2 * hkv) == 0 else {
        fatalError(ShapeError(op: "attention", message: "packed q/k/v \(Shape.describe(qkv.shape)) for \(h) heads, \(hkv) kv heads").description)
    }
    let (b, t, width) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
    let d = width / (h + 2 * hkv)
    // Row t of head j in batch b starts at (b·T + t)·width + j·D (+ H·D for keys, + (H + Hkv)·D for values).
    let qL = AttentionLayout(rowStride: width, batchStride: t * width, headStride: d, offset: 0)
    let kL = AttentionLayout(rowStride: width, batchStride: t * width, headStride: d, offset: h * d)
    let vL = AttentionLayout(rowStride: width, batchStride: t * width, headStride: d, offset: (h + hkv) * d)
    let oL = AttentionLayout(rowStride: h * d, batchStride: t * h * d, headStride: d, offset: 0)
    let kernel = AttentionKernel(b: b, h: h, hkv: hkv, tq: t, tk: t, d: d, scale: scale, window: window, softcap: softcap, p: p, rng: rng)
    let out = Tensor(uninitialized: [b, t, h * d])
    kernel.forward(qkv.data, qL, qkv.data, kL, qkv.data, vL, out.data, oL)
    return Autograd.record(out, "attention", [qkv]) { g in
        let dqkv = Tensor(zeros: qkv.shape)
        kernel.backward(g.data, oL, qkv.data, dqkv.data, qL, qkv.data, dqkv.data, kL, qkv.data, dqkv.data, vL)
        return [dqkv]
    }
}

/// Attention on the outputs of separate projections, token rows first: q (B·T, H·D), k and v
/// (B·T, Hkv·D) → out (B·T, H·D). Head j of token row n is q[n, j·D ..< (j+1)·D]; the batch's
/// sequences are consecutive blocks of T rows, each starting at position 0. No copies: the kernel
/// reads and writes these layouts with strides, and the gradients come back in them.
/// `probabilities`, when given, receives the attention weights P (B, H, T, T), row = query, zero
/// where a query sees no key (before dropout): the kernel keeps them for backward anyway, so
/// handing them out costs nothing, and passes that do not ask keep nothing more.
public func causalAttention(rows q: Tensor, _ k: Tensor, _ v: Tensor, batch b: Int, heads h: Int, kvHeads hkv: Int,
                            scale: Float? = nil, window: Int? = nil, softcap: Float? = nil, dropout p: Float = 0, rng: RandomGenerator? = nil,
                            probabilities: ((Tensor) -> Void)? = nil) -> Tensor {
    guard q.rank == 2, k.rank == 2, v.rank == 2, k.shape == v.shape, b > 0, hkv > 0, h % hkv == 0,
          q.shape[0] == k.shape[0], q.shape[0] % b == 0, q.shape[1] % h == 0, k.shape[1] == hkv * (q.shape[1] / h) else {
        fatalError(ShapeError(op: "attention", message: "q \(Shape.describe(q.shape)), k \(Shape.describe(k.shape)), v \(Shape.describe(v.shape)) for batch \(b), \(h) heads, \(hkv) kv heads").description)
    }
    let t = q.shape[0] / b, d = q.shape[1] / h
    let qL = AttentionLayout(rowStride: h * d, batchStride: t * h * d, headStride: d, offset: 0)
    let kvL = AttentionLayout(rowStride: hkv * d, batchStride: t * hkv * d, headStride: d, offset: 0)
    let kernel = AttentionKernel(b: b, h: h, hkv: hkv, tq: t, tk: t, d: d, scale: scale, window: window, softcap: softcap, p: p, rng: rng)
    let out = Tensor(uninitialized: q.shape)
    kernel.forward(q.data, qL, k.data, kvL, v.data, kvL, out.data, qL)
    probabilities?(kernel.probs)                                      // (B, H, T, T): the softmax the kernel kept
    return Autograd.record(out, "attention", [q, k, v]) { g in
        let dq = Tensor(uninitialized: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        kernel.backward(g.data, qL, q.data, dq.data, qL, k.data, dk.data, kvL, v.data, dv.data, kvL)
        return [dq, dk, dv]
    }
}

/// One sequence of a ragged inference batch: its `queries` rows of q start at row `row`; its keys
/// and values, `length` rows of (Hkv·D) each, end with the queries' own (the cache after writing
/// them). Query r sits at key index length − queries + r.
public struct CachedAttentionSpan {
    public let row: Int, queries: Int
    public let keys: UnsafePointer<Float>, values: UnsafePointer<Float>
    public let length: Int
    public init(row: Int, queries: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, length: Int) {
        self.row = row; self.queries = queries; self.keys = keys; self.values = values; self.length = length
    }
}

/// Inference attention for a ragged batch (no autograd): q (N, H·D) holds every sequence's query
/// rows one after another; each span attends to its own keys and values → (N, H·D). Work is spread
/// over (sequence, kv head) pairs, so a step of many one-token sequences keeps every thread busy.
public func cachedAttention(q: Tensor, spans: [CachedAttentionSpan], heads h: Int, kvHeads hkv: Int,
                            scale: Float? = nil, window: Int? = nil, softcap: Float? = nil) -> Tensor {
    guard q.rank == 2, hkv > 0, h % hkv == 0, q.shape[1] % h == 0 else {
        fatalError(ShapeError(op: "attention (cached)", message: "q \(Shape.describe(q.shape)) for \(h) heads, \(hkv) kv heads").description)
    }
    let d = q.shape[1] / h
    for s in spans {
        precondition(s.queries > 0 && s.row >= 0 && s.row + s.queries <= q.shape[0] && s.length >= s.queries,
                     "attention (cached): span of \(s.queries) queries at row \(s.row) with \(s.length) keys for q \(Shape.describe(q.shape))")
    }
    let out = Tensor(uninitialized: q.shape)
    let qL = AttentionLayout(rowStride: h * d, batchStride: 0, headStride: d, offset: 0)
    let kvL = AttentionLayout(rowStride: hkv * d, batchStride: 0, headStride: d, offset: 0)
    let kernels = spans.map { AttentionKernel(b: 1, h: h, hkv: hkv, tq: $0.queries, tk: $0.length, d: d, scale: scale, window: window, softcap: softcap, p: 0, rng: nil) }
    Parallel.forEachChunk(spans.count * hkv, grain: 1) { pairs in
        for pair in pairs {
            let (i, j) = (pair / hkv, pair % hkv)
            let s = spans[i], rowOffset = s.row * h * d
            kernels[i].forwardKVHead(0, j, q.data + rowOffset, qL, s.keys, kvL, s.values, kvL, out.data + rowOffset, qL)
        }
    }
    return out
}

/// Where head (b, h)'s row t lives: offset + b·batchStride + h·headStride + t·rowStride.
struct AttentionLayout {
    let rowStride: Int, batchStride: Int, headStride: Int, offset: Int
    @inline(__always) func head(_ b: Int, _ h: Int) -> Int { offset + b * batchStride + h * headStride }
}

/// The computation shared by both layouts; keeps P (and the dropout mask) for backward.
final class AttentionKernel {
    let b: Int, h: Int, hkv: Int, tq: Int, tk: Int, d: Int
    let group: Int, start: Int, scale: Float
    /// Sliding window: keys a query sees, counting itself (nil: all earlier ones).
    let window: Int?
    /// Soft-cap c of the scores, and tanh(S/c) kept for backward (B, H, Tq, Tk).
    let softcap: Float?, capped: Tensor?
    let probs: Tensor                  // (B, H, Tq, Tk)
    let mask: Tensor?, dropped: Tensor?
    static let rowBlock = 64

    init(b: Int, h: Int, hkv: Int, tq: Int, tk: Int, d: Int, scale: Float? = nil, window: Int? = nil, softcap: Float? = nil,
         p: Float, rng: RandomGenerator?) {
        precondition(softcap.map { $0 > 0 } ?? true, "attention: soft-cap \(softcap ?? 0) must be positive")
        self.softcap = softcap
        capped = softcap == nil ? nil : Tensor(uninitialized: [b, h, tq, tk])
        precondition(p >= 0 && p < 1, "attention: dropout \(p) outside [0, 1)")
        precondition(window.map { $0 > 0 } ?? true, "attention: window \(window ?? 0) must be positive")
        precondition(p == 0 || rng != nil, "attention: dropout needs a random generator")
        (self.b, self.h, self.hkv, self.tq, self.tk, self.d) = (b, h, hkv, tq, tk, d)
        group = h / hkv
        start = tk - tq
        self.scale = scale ?? 1 / Float(d).squareRoot()
        self.window = window
        probs = Tensor(uninitialized: [b, h, tq, tk])
        if p > 0, let rng {
            let m = Tensor(uninitialized: [b, h, tq, tk]), keep = 1 / (1 - p)
            for i in 0..<m.count { m.data[i] = rng.uniform() < p ? 0 : keep }
            mask = m
            dropped = Tensor(uninitialized: [b, h, tq, tk])
        } else {
            mask = nil
            dropped = nil
        }
    }

    /// Rows r0..<r1 of row block `blk` and the number of keys the last of them sees.
    @inline(__always) private func rows(_ blk: Int) -> (r0: Int, r1: Int, keys: Int) {
        let r0 = blk * Self.rowBlock, r1 = min(tq, r0 + Self.rowBlock)
        return (r0, r1, start + r1)
    }
    private var blocks: Int { (tq + Self.rowBlock - 1) / Self.rowBlock }

    /// With a soft-cap: scores first..<seen of a row become c·tanh(S/c); tanh kept at `at`.
    @inline(__always) private func capScores(_ row: UnsafeMutablePointer<Float>, _ at: Int, _ first: Int, _ seen: Int) {
        guard let softcap, let capped else { return }
        let t = capped.data + at
        for c in first..<seen {
            t[c] = Foundation.tanh(row[c] / softcap)
            row[c] = softcap * t[c]
        }
    }

    /// Keys row i sees: first ..< seen.
    @inline(__always) private func visible(_ i: Int) -> (first: Int, seen: Int) {
        let seen = start + i + 1
        return (window.map { max(0, seen - $0) } ?? 0, seen)
    }

    /// Calls body(batch, kv head, query head, index of the query head's P, scratch) for the heads
    /// of each kv head, with kv heads spread over the threads; each thread gets `scratch` floats.
    @inline(__always)
    private func forEachHead(scratch: Int = 0, _ body: (Int, Int, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        Parallel.forEachChunk(b * hkv, grain: 1) { kvRange in
            let buffer = Storage(uninitializedCount: scratch)
            for kv in kvRange {
                let (bi, j) = (kv / hkv, kv % hkv)
                for head in (j * group)..<((j + 1) * group) { body(bi, j, head, bi * h + head, buffer.pointer) }
            }
        }
    }

    func forward(_ q: UnsafePointer<Float>, _ qL: AttentionLayout, _ k: UnsafePointer<Float>, _ kL: AttentionLayout,
                 _ v: UnsafePointer<Float>, _ vL: AttentionLayout, _ out: UnsafeMutablePointer<Float>, _ oL: AttentionLayout) {
        Parallel.forEachChunk(b * hkv, grain: 1) { kvRange in
            for kv in kvRange { forwardKVHead(kv / hkv, kv % hkv, q, qL, k, kL, v, vL, out, oL) }
        }
    }

    /// The forward pass for the query heads that share key/value head j of batch row bi.
    func forwardKVHead(_ bi: Int, _ j: Int, _ q: UnsafePointer<Float>, _ qL: AttentionLayout, _ k: UnsafePointer<Float>, _ kL: AttentionLayout,
                       _ v: UnsafePointer<Float>, _ vL: AttentionLayout, _ out: UnsafeMutablePointer<Float>, _ oL: AttentionLayout) {
        let (tq, tk, d) = (self.tq, self.tk, self.d)
        for head in (j * group)..<((j + 1) * group) {
            let ph = bi * h + head
            let qh = q + qL.head(bi, head), kh = k + kL.head(bi, j), vh = v + vL.head(bi, j), oh = out + oL.head(bi, head)
            let pp = probs.data + ph * tq * tk
            if tq <= 4 && mask == nil {
                // A few queries (decoding): dot products and weighted sums directly, no BLAS calls.
                for i in 0..<tq {
                    let row = pp + i * tk, (first, seen) = visible(i), qi = qh + i * qL.rowStride, oi = oh + i * oL.rowStride
                    for c in first..<seen { row[c] = vdot(qi, kh + c * kL.rowStride, d) * scale }
                    capScores(row, ph * tq * tk + i * tk, first, seen)
                    softmaxRow(row + first, row + first, seen - first)
                    row.update(repeating: 0, count: first)
                    (row + seen).update(repeating: 0, count: tk - seen)
                    oi.update(repeating: 0, count: d)
                    for c in first..<seen { vaxpy(row[c], vh + c * vL.rowStride, oi, d) }
                }
                continue
            }
            for blk in 0..<blocks {
                let (r0, r1, n) = rows(blk)
                // S rows r0..<r1 (cols 0..<n) = q[r0..<r1] · k[0..<n]ᵀ · scale
                BLAS.sgemm(transposeA: false, transposeB: true, m: r1 - r0, n: n, k: d, alpha: scale,
                           qh + r0 * qL.rowStride, lda: qL.rowStride, kh, ldb: kL.rowStride, pp + r0 * tk, ldc: tk)
                for i in r0..<r1 {
                    let row = pp + i * tk, (first, seen) = visible(i)
                    capScores(row, ph * tq * tk + i * tk, first, seen)
                    softmaxRow(row + first, row + first, seen - first)
                    row.update(repeating: 0, count: first)
                    (row + seen).update(repeating: 0, count: tk - seen)
                }
                var weights = UnsafePointer(pp)
                if let mask, let dropped {
                    let mh = mask.data + ph * tq * tk, dh = dropped.data + ph * tq * tk
                    for i in (r0 * tk)..<(r1 * tk) { dh[i] = pp[i] * mh[i] }
                    weights = UnsafePointer(dh)
                }
                // out[r0..<r1] = P'[r0..<r1, 0..<n] · v[0..<n]
                BLAS.sgemm(transposeA: false, transposeB: false, m: r1 - r0, n: d, k: n,
                           weights + r0 * tk, lda: tk, vh, ldb: vL.rowStride, oh + r0 * oL.rowStride, ldc: oL.rowStride)
            }
        }
    }

    /// dq is overwritten; dk and dv are added into (start them at zero).
    func backward(_ g: UnsafePointer<Float>, _ gL: AttentionLayout,
                  _ q: UnsafePointer<Float>, _ dq: UnsafeMutablePointer<Float>, _ qL: AttentionLayout,
                  _ k: UnsafePointer<Float>, _ dk: UnsafeMutablePointer<Float>, _ kL: AttentionLayout,
                  _ v: UnsafePointer<Float>, _ dv: UnsafeMutablePointer<Float>, _ vL: AttentionLayout) {
        let (tq, tk, d, scale) = (self.tq, self.tk, self.d, self.scale)
        let rowBlock = Self.rowBlock
        forEachHead(scratch: rowBlock * tk) { bi, j, head, ph, dp in      // dp: dP for one block of rows
            let gh = g + gL.head(bi, head), qh = q + qL.head(bi, head), dqh = dq + qL.head(bi, head)
            let kh = k + kL.head(bi, j), dkh = dk + kL.head(bi, j), vh = v + vL.head(bi, j), dvh = dv + vL.head(bi, j)
            let pp = probs.data + ph * tq * tk
            let weights = dropped.map { UnsafePointer($0.data + ph * tq * tk) } ?? UnsafePointer(pp)
            let mh = mask.map { $0.data + ph * tq * tk }
            for blk in 0..<blocks {
                let (r0, r1, n) = rows(blk)
                let m = r1 - r0
                // dv[0..<n] += P'[r0..<r1, 0..<n]ᵀ · dout[r0..<r1]
                BLAS.sgemm(transposeA: true, transposeB: false, m: n, n: d, k: m, weights + r0 * tk, lda: tk,
                           gh + r0 * gL.rowStride, ldb: gL.rowStride, beta: 1, dvh, ldc: vL.rowStride)
                // dP' (m, n) = dout[r0..<r1] · v[0..<n]ᵀ
                BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: n, k: d, gh + r0 * gL.rowStride, lda: gL.rowStride,
                           vh, ldb: vL.rowStride, dp, ldc: tk)
                for i in r0..<r1 {
                    let pr = pp + i * tk, dr = dp + (i - r0) * tk, (first, seen) = visible(i)
                    if let mh { for c in first..<seen { dr[c] *= mh[i * tk + c] } }
                    let dot = vdot(pr + first, dr + first, seen - first)
                    for c in first..<seen { dr[c] = pr[c] * (dr[c] - dot) * scale }
                    if let capped {                                  // through c·tanh(S/c): × (1 − tanh²)
                        let t = capped.data + ph * tq * tk + i * tk
                        for c in first..<seen { dr[c] *= 1 - t[c] * t[c] }
                    }
                    dr.update(repeating: 0, count: first)
                    (dr + seen).update(repeating: 0, count: n - seen)
                }
                // dq[r0..<r1] = dS (m, n) · k[0..<n];  dk[0..<n] += dSᵀ (n, m) · q[r0..<r1]
                BLAS.sgemm(transposeA: false, transposeB: false, m: m, n: d, k: n, dp, lda: tk, kh, ldb: kL.rowStride,
                           dqh + r0 * qL.rowStride, ldc: qL.rowStride)
                BLAS.sgemm(transposeA: true, transposeB: false, m: n, n: d, k: m, dp, lda: tk,
                           qh + r0 * qL.rowStride, ldb: qL.rowStride, beta: 1, dkh, ldc: kL.rowStride)
            }
        }
    }
}
