/// Causal multi-head scaled-dot-product attention as one fused op.
///
/// q (B, H, Tq, D), k and v (B, Hkv, Tk, D) → out (B, H, Tq, D), with Tk ≥ Tq and H a multiple of
/// Hkv (grouped-query attention: query head h reads key/value head h / (H / Hkv)). Query i sits at
/// position Tk − Tq + i and sees keys 0 through that position (so Tq < Tk is the KV-cache case).
///
///   S = q·kᵀ / √D          (Tq, Tk) per head, −∞ above the causal diagonal
///   P = softmax(S)         kept (B, H, Tq, Tk) for backward
///   P' = P ⊙ M / (1 − p)   optional dropout on the weights (M drawn from `rng`)
///   out = P'·v
///
/// Backward per head: dv = P'ᵀ·dout, dP' = dout·vᵀ, dP = dP' ⊙ M / (1 − p),
/// dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = dS·k / √D, dk = dSᵀ·q / √D.
///
/// Work is split across threads by key/value head (so dk and dv have one writer each); within a
/// head, rows go in blocks of 64 and each block's products stop at the last key it can see, so the
/// masked upper triangle is never computed.
public func causalAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor,
                            dropout p: Float = 0, rng: RandomGenerator? = nil) -> Tensor {
    guard q.rank == 4, k.rank == 4, v.rank == 4, k.shape == v.shape,
          q.shape[0] == k.shape[0], q.shape[3] == k.shape[3], k.shape[1] > 0, q.shape[1] % k.shape[1] == 0,
          k.shape[2] >= q.shape[2] else {
        fatalError(ShapeError(op: "attention", q.shape, k.shape == v.shape ? k.shape : v.shape).description)
    }
    precondition(p >= 0 && p < 1, "attention: dropout \(p) outside [0, 1)")
    precondition(p == 0 || rng != nil, "attention: dropout needs a random generator")
    let (b, h, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (hkv, tk) = (k.shape[1], k.shape[2])
    let group = h / hkv, start = tk - tq
    let scale = 1 / Float(d).squareRoot()
    let probs = Tensor(uninitialized: [b, h, tq, tk])
    let mask: Tensor? = p > 0 ? Tensor(uninitialized: [b, h, tq, tk]) : nil
    let dropped: Tensor? = p > 0 ? Tensor(uninitialized: [b, h, tq, tk]) : nil
    let out = Tensor(uninitialized: [b, h, tq, d])
    if let mask, let rng {
        let keep = 1 / (1 - p)
        for i in 0..<mask.count { mask.data[i] = rng.uniform() < p ? 0 : keep }
    }
    let rowBlock = 64
    let blocks = (tq + rowBlock - 1) / rowBlock
    /// Rows r0..<r1 of a head and the number of keys the last of them sees.
    func rows(_ blk: Int) -> (r0: Int, r1: Int, keys: Int) {
        let r0 = blk * rowBlock, r1 = min(tq, r0 + rowBlock)
        return (r0, r1, start + r1)
    }

    Parallel.forEachChunk(b * hkv, grain: 1) { kvHeads in
        for kvHead in kvHeads {
            let bi = kvHead / hkv
            let kh = k.data + kvHead * tk * d, vh = v.data + kvHead * tk * d
            for head in (bi * h + (kvHead % hkv) * group)..<(bi * h + (kvHead % hkv + 1) * group) {
                let qh = q.data + head * tq * d, ph = probs.data + head * tq * tk, oh = out.data + head * tq * d
                for blk in 0..<blocks {
                    let (r0, r1, n) = rows(blk)
                    // S rows r0..<r1 (cols 0..<n) = q[r0..<r1] · k[0..<n]ᵀ / √D
                    BLAS.sgemm(transposeA: false, transposeB: true, m: r1 - r0, n: n, k: d, alpha: scale,
                               qh + r0 * d, kh, ph + r0 * tk, ldc: tk)
                    for i in r0..<r1 {
                        let row = ph + i * tk, seen = start + i + 1
                        softmaxRow(row, row, seen)
                        (row + seen).update(repeating: 0, count: tk - seen)
                    }
                    var weights = UnsafePointer(ph)
                    if let mask, let dropped {
                        let mh = mask.data + head * tq * tk, dh = dropped.data + head * tq * tk
                        for i in (r0 * tk)..<(r1 * tk) { dh[i] = ph[i] * mh[i] }
                        weights = UnsafePointer(dh)
                    }
                    // out[r0..<r1] = P'[r0..<r1, 0..<n] · v[0..<n]
                    BLAS.sgemm(transposeA: false, transposeB: false, m: r1 - r0, n: d, k: n,
                               weights + r0 * tk, lda: tk, vh, oh + r0 * d)
                }
            }
        }
    }

    return Autograd.record(out, "attention", [q, k, v]) { g in
        let dq = Tensor(uninitialized: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        Parallel.forEachChunk(b * hkv, grain: 1) { kvHeads in
            let dp = Tensor(uninitialized: [rowBlock, tk])          // dP for one block of rows
            for kvHead in kvHeads {
                let bi = kvHead / hkv
                let kh = k.data + kvHead * tk * d, vh = v.data + kvHead * tk * d
                let dkh = dk.data + kvHead * tk * d, dvh = dv.data + kvHead * tk * d
                for head in (bi * h + (kvHead % hkv) * group)..<(bi * h + (kvHead % hkv + 1) * group) {
                    let gh = g.data + head * tq * d, qh = q.data + head * tq * d, dqh = dq.data + head * tq * d
                    let ph = probs.data + head * tq * tk
                    let weights = dropped.map { UnsafePointer($0.data + head * tq * tk) } ?? UnsafePointer(ph)
                    let mh = mask.map { $0.data + head * tq * tk }
                    for blk in 0..<blocks {
                        let (r0, r1, n) = rows(blk)
                        let m = r1 - r0
                        // dv[0..<n] += P'[r0..<r1, 0..<n]ᵀ · dout[r0..<r1]
                        BLAS.sgemm(transposeA: true, transposeB: false, m: n, n: d, k: m,
                                   weights + r0 * tk, lda: tk, gh + r0 * d, beta: 1, dvh)
                        // dP' (m, n) = dout[r0..<r1] · v[0..<n]ᵀ
                        BLAS.sgemm(transposeA: false, transposeB: true, m: m, n: n, k: d, gh + r0 * d, vh, dp.data, ldc: tk)
                        for i in r0..<r1 {
                            let pr = ph + i * tk, dr = dp.data + (i - r0) * tk, seen = start + i + 1
                            if let mh { for j in 0..<seen { dr[j] *= mh[i * tk + j] } }
                            let dot = vdot(pr, dr, seen)
                            for j in 0..<seen { dr[j] = pr[j] * (dr[j] - dot) * scale }
                            (dr + seen).update(repeating: 0, count: n - seen)
                        }
                        // dq[r0..<r1] = dS (m, n) · k[0..<n];  dk[0..<n] += dSᵀ (n, m) · q[r0..<r1]
                        BLAS.sgemm(transposeA: false, transposeB: false, m: m, n: d, k: n, dp.data, lda: tk, kh, dqh + r0 * d)
                        BLAS.sgemm(transposeA: true, transposeB: false, m: n, n: d, k: m, dp.data, lda: tk,
                                   qh + r0 * d, beta: 1, dkh)
                    }
                }
            }
        }
        return [dq, dk, dv]
    }
}
