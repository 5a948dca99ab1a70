import Foundation

/// LayerNorm and RMSNorm over the last axis, as fused kernels with hand-written backward.
///
/// layerNorm: x (..., C), weight (C), bias (C) → out (..., C); keeps mean, rstd (rows) for backward.
///   out = (x − mean) · rstd · weight + bias,  rstd = 1/√(var + eps)   (biased variance)
/// rmsNorm:   x (..., C), weight (C) → out (..., C); keeps rstd (rows).
///   out = x · rstd · weight,  rstd = 1/√(mean(x²) + eps)
extension Tensor {
    public func layerNorm(weight: Tensor, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        let c = shape.last ?? 1, rows = count / max(c, 1)
        guard weight.shape == [c], bias == nil || bias!.shape == [c] else {
            fatalError(ShapeError(op: "layer_norm", shape, weight.shape).description)
        }
        let out = Tensor(uninitialized: shape)
        var meanV = [Float](repeating: 0, count: rows), rstdV = [Float](repeating: 0, count: rows)
        let px = data, po = out.data, pw = weight.data, pb = bias?.data
        meanV.withUnsafeMutableBufferPointer { pm in rstdV.withUnsafeMutableBufferPointer { pr in
            let pm = pm.baseAddress!, pr = pr.baseAddress!
            Parallel.forEachChunk(rows, grain: max(1, 8192 / max(c, 1))) { r in
                for row in r {
                    let x = px + row * c, o = po + row * c
                    let mean = vsum(x, c) / Float(c)
                    var v: Float = 0
                    for j in 0..<c { let d = x[j] - mean; v += d * d }
                    let rstd = 1 / (v / Float(c) + eps).squareRoot()
                    if let pb { for j in 0..<c { o[j] = (x[j] - mean) * rstd * pw[j] + pb[j] } }
                    else { for j in 0..<c { o[j] = (x[j] - mean) * rstd * pw[j] } }
                    pm[row] = mean; pr[row] = rstd
                }
            }
        } }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        return Autograd.record(out, "layer_norm", inputs) { g in
            let gx = Tensor(uninitialized: self.shape)
            let (gw, gb) = normBackward(g: g, x: self, weight: weight, mean: meanV, rstd: rstdV,
                                        gx: gx, withBias: bias != nil, centered: true)
            return [gx, weight.requiresGrad ? gw : nil] + (bias == nil ? [] : [bias!.requiresGrad ? gb : nil])
        }
    }

    public func rmsNorm(weight: Tensor, eps: Float = 1e-6) -> Tensor {
        let c = shape.last ?? 1, rows = count / max(c, 1)
        guard weight.shape == [c] else { fatalError(ShapeError(op: "rms_norm", shape, weight.shape).description) }
        let out = Tensor(uninitialized: shape)
        var rstdV = [Float](repeating: 0, count: rows)
        let px = data, po = out.data, pw = weight.data
        rstdV.withUnsafeMutableBufferPointer { pr in
            let pr = pr.baseAddress!
            Parallel.forEachChunk(rows, grain: max(1, 8192 / max(c, 1))) { r in
                for row in r {
                    let x = px + row * c, o = po + row * c
                    let rstd = 1 / (vdot(x, x, c) / Float(c) + eps).squareRoot()
                    for j in 0..<c { o[j] = x[j] * rstd * pw[j] }
                    pr[row] = rstd
                }
            }
        }
        let zeros = [Float](repeating: 0, count: rows)
        return Autograd.record(out, "rms_norm", [self, weight]) { g in
            let gx = Tensor(uninitialized: self.shape)
            let (gw, _) = normBackward(g: g, x: self, weight: weight, mean: zeros, rstd: rstdV,
                                       gx: gx, withBias: false, centered: false)
            return [gx, weight.requiresGrad ? gw : nil]
        }
    }
}

/// Shared backward of both norms. With n̂ = (x − mean)·rstd and d = g·weight per row:
///   LayerNorm: dx = rstd · (d − mean(d) − n̂ · mean(d·n̂))
///   RMSNorm:   dx = rstd · (d − n̂ · mean(d·n̂))          (mean = 0, no centering term)
///   dweight = Σ_rows g·n̂,  dbias = Σ_rows g  (summed per thread, then across threads)
private func normBackward(g: Tensor, x: Tensor, weight: Tensor, mean: [Float], rstd: [Float],
                          gx: Tensor, withBias: Bool, centered: Bool) -> (Tensor, Tensor) {
    let c = x.shape.last ?? 1, rows = x.count / max(c, 1)
    let chunks = min(Parallel.threads, max(1, rows / 16))
    let partW = Tensor(zeros: [chunks, c]), partB = Tensor(zeros: [chunks, c])
    let pg = g.data, px = x.data, pw = weight.data, pdx = gx.data
    mean.withUnsafeBufferPointer { pm in rstd.withUnsafeBufferPointer { pr in
        let pm = pm.baseAddress!, pr = pr.baseAddress!
        Parallel.run(chunks) { k in
            let aw = partW.data + k * c, ab = partB.data + k * c
            var dn = [Float](repeating: 0, count: c)
            for row in (k * rows / chunks)..<((k + 1) * rows / chunks) {
                let gr = pg + row * c, xr = px + row * c, dxr = pdx + row * c
                let m = pm[row], s = pr[row]
                var sumD: Float = 0, sumDN: Float = 0
                for j in 0..<c {
                    let nh = (xr[j] - m) * s
                    let d = gr[j] * pw[j]
                    dn[j] = nh
                    sumD += d; sumDN += d * nh
                    aw[j] += gr[j] * nh
                    ab[j] += gr[j]
                }
                let meanD = centered ? sumD / Float(c) : 0, meanDN = sumDN / Float(c)
                for j in 0..<c { dxr[j] = s * (gr[j] * pw[j] - meanD - dn[j] * meanDN) }
            }
        }
    } }
    return (partW.sum(axis: 0), partB.sum(axis: 0))
}
