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
/// The matrix products go to sgemm one head at a time; the softmax runs on both cores.
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

    for bi in 0..<b {
        for hi in 0..<h {
            let qh = q.data + (bi * h + hi) * tq * d
            let kh = k.data + (bi * hkv + hi / group) * tk * d
            let vh = v.data + (bi * hkv + hi / group) * tk * d
            let ph = probs.data + (bi * h + hi) * tq * tk
            BLAS.sgemm(transposeA: false, transposeB: true, m: tq, n: tk, k: d, alpha: scale, qh, kh, ph)
            Parallel.forEachChunk(tq, grain: max(1, 4096 / tk)) { rows in
                for i in rows {
                    let row = ph + i * tk, seen = start + i + 1
                    softmaxRow(row, row, seen)
                    (row + seen).update(repeating: 0, count: tk - seen)
                }
            }
            var weights = UnsafePointer(ph)
            if let mask, let dropped {
                let mh = mask.data + (bi * h + hi) * tq * tk, dh = dropped.data + (bi * h + hi) * tq * tk
                for i in 0..<(tq * tk) { dh[i] = ph[i] * mh[i] }
                weights = UnsafePointer(dh)
            }
            BLAS.sgemm(transposeA: false, transposeB: false, m: tq, n: d, k: tk, weights, vh,
                       out.data + (bi * h + hi) * tq * d)
        }
    }

    return Autograd.record(out, "attention", [q, k, v]) { g in
        let dq = Tensor(uninitialized: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        let dp = Tensor(uninitialized: [tq, tk])
        for bi in 0..<b {
            for hi in 0..<h {
                let head = (bi * h + hi), kvHead = bi * hkv + hi / group
                let gh = g.data + head * tq * d
                let ph = probs.data + head * tq * tk
                let weights = dropped.map { UnsafePointer($0.data + head * tq * tk) } ?? UnsafePointer(ph)
                // dv (Tk, D) += P'ᵀ (Tk, Tq) · dout (Tq, D)
                BLAS.sgemm(transposeA: true, transposeB: false, m: tk, n: d, k: tq, weights, gh,
                           beta: 1, dv.data + kvHead * tk * d)
                // dP' (Tq, Tk) = dout (Tq, D) · vᵀ (D, Tk)
                BLAS.sgemm(transposeA: false, transposeB: true, m: tq, n: tk, k: d, gh, v.data + kvHead * tk * d, dp.data)
                let mh = mask.map { $0.data + head * tq * tk }
                Parallel.forEachChunk(tq, grain: max(1, 4096 / tk)) { rows in
                    for i in rows {
                        let pr = ph + i * tk, dr = dp.data + i * tk, seen = start + i + 1
                        if let mh { for j in 0..<seen { dr[j] *= mh[i * tk + j] } }
                        let dot = vdot(pr, dr, seen)
                        for j in 0..<seen { dr[j] = pr[j] * (dr[j] - dot) * scale }
                        (dr + seen).update(repeating: 0, count: tk - seen)
                    }
                }
                // dq (Tq, D) = dS (Tq, Tk) · k (Tk, D);  dk (Tk, D) += dSᵀ (Tk, Tq) · q (Tq, D)
                BLAS.sgemm(transposeA: false, transposeB: false, m: tq, n: d, k: tk, dp.data,
                           k.data + kvHead * tk * d, dq.data + head * tq * d)
                BLAS.sgemm(transposeA: true, transposeB: false, m: tk, n: d, k: tq, dp.data,
                           q.data + head * tq * d, beta: 1, dk.data + kvHead * tk * d)
            }
        }
        return [dq, dk, dv]
    }
}
