/// Cross-entropy over logits, fused: log-softmax, the pick of the target, and the mean in one op.
///
/// logits (N, V), targets [N] → loss () = mean over rows whose target ≠ ignoreIndex of
/// (logsumexp(row) − row[target]). Keeps only the per-row logsumexp (N floats); backward
/// recomputes softmax from the logits: dlogits = (softmax − onehot) · g / count, 0 on ignored rows.
public let defaultIgnoreIndex: Int32 = -100

extension Tensor {
    public func crossEntropy(targets: [Int32], ignoreIndex: Int32 = defaultIgnoreIndex) -> Tensor {
        guard rank == 2, shape[0] == targets.count else {
            fatalError(ShapeError(op: "cross_entropy", shape, [targets.count]).description)
        }
        let (n, v) = (shape[0], shape[1])
        for (i, t) in targets.enumerated() where t != ignoreIndex && (t < 0 || Int(t) >= v) {
            fatalError("cross_entropy: target \(t) at row \(i) outside 0..<\(v)")
        }
        let valid = targets.filter { $0 != ignoreIndex }.count
        var lse = [Float](repeating: 0, count: n), rowLoss = [Double](repeating: 0, count: n)
        let px = data
        let scratch = Tensor(uninitialized: [Parallel.threads, v])
        lse.withUnsafeMutableBufferPointer { pl in rowLoss.withUnsafeMutableBufferPointer { prl in
            let pl = pl.baseAddress!, prl = prl.baseAddress!
            let chunks = min(Parallel.threads, Swift.max(1, n))
            Parallel.run(chunks) { k in
                for row in (k * n / chunks)..<((k + 1) * n / chunks) {
                    let t = targets[row]
                    if t == ignoreIndex { continue }
                    let l = softmaxRow(px + row * v, scratch.data + k * v, v)
                    pl[row] = l
                    prl[row] = Double(l - px[row * v + Int(t)])
                }
            }
        } }
        let loss = valid == 0 ? Float.nan : Float(rowLoss.reduce(0, +) / Double(valid))
        let out = Tensor(scalar: loss)
        return Autograd.record(out, "cross_entropy", [self]) { g in
            let gx = Tensor(zeros: [n, v])
            let scale = g.item / Float(valid)
            let pg = gx.data
            Parallel.forEachChunk(n, grain: Swift.max(1, 8192 / v)) { r in
                for row in r {
                    let t = targets[row]
                    if t == ignoreIndex { continue }
                    let x = px + row * v, d = pg + row * v, l = lse[row]
                    var j = 0
                    let lv = Float16x(repeating: l), sv = Float16x(repeating: scale)
                    while j + 16 <= v { store16(vexp(load16(x + j) - lv) * sv, d + j); j += 16 }
                    while j < v { d[j] = sexp(x[j] - l) * scale; j += 1 }
                    d[Int(t)] -= scale
                }
            }
            return [gx]
        }
    }
}


extension Tensor {
    /// The log-probability of each row's target, fused like `crossEntropy` but without the mean:
    /// logits (N, V), targets [N] → (N) with log softmax(row)[target], and 0 on rows whose target is
    /// `ignoreIndex`. Preference tuning sums these over a response. Backward: dlogits[row] =
    /// g[row] · (onehot(target) − softmax(row)), 0 on ignored rows.
    public func targetLogProbabilities(_ targets: [Int32], ignoreIndex: Int32 = defaultIgnoreIndex) -> Tensor {
        guard rank == 2, shape[0] == targets.count else {
            fatalError(ShapeError(op: "target_log_probabilities", shape, [targets.count]).description)
        }
        let (n, v) = (shape[0], shape[1])
        for (i, t) in targets.enumerated() where t != ignoreIndex && (t < 0 || Int(t) >= v) {
            fatalError("target_log_probabilities: target \(t) at row \(i) outside 0..<\(v)")
        }
        var lse = [Float](repeating: 0, count: n)
        let out = Tensor(zeros: [n])
        let px = data, po = out.data
        let scratch = Tensor(uninitialized: [Parallel.threads, v])
        lse.withUnsafeMutableBufferPointer { pl in
            let pl = pl.baseAddress!
            let chunks = min(Parallel.threads, Swift.max(1, n))
            Parallel.run(chunks) { k in
                for row in (k * n / chunks)..<((k + 1) * n / chunks) where targets[row] != ignoreIndex {
                    let l = softmaxRow(px + row * v, scratch.data + k * v, v)
                    pl[row] = l
                    po[row] = px[row * v + Int(targets[row])] - l
                }
            }
        }
        return Autograd.record(out, "target_log_probabilities", [self]) { g in
            let gx = Tensor(zeros: [n, v])
            let pg = gx.data, gg = g.data
            Parallel.forEachChunk(n, grain: Swift.max(1, 8192 / v)) { r in
                for row in r {
                    let t = targets[row]
                    if t == ignoreIndex || gg[row] == 0 { continue }
                    let x = px + row * v, d = pg + row * v, l = lse[row], s = gg[row]
                    var j = 0
                    let lv = Float16x(repeating: l), sv = Float16x(repeating: -s)
                    while j + 16 <= v { store16(vexp(load16(x + j) - lv) * sv, d + j); j += 16 }
                    while j < v { d[j] = -sexp(x[j] - l) * s; j += 1 }
                    d[Int(t)] += s
                }
            }
            return [gx]
        }
    }
}
