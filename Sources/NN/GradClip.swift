import Tensors

/// Clips gradients by their global L2 norm, as `torch.nn.utils.clip_grad_norm_`: the norm of the
/// per-tensor norms; if it exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6).
/// Returns the norm before clipping (what training logs show).
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    let norm = gradNorm(parameters)
    let coef = min(maxNorm / (norm + 1e-6), 1)
    if coef < 1 {
        for p in parameters { if let g = p.grad { let d = g.data; for i in 0..<g.count { d[i] *= coef } } }
    }
    return norm
}

/// Global L2 norm of the gradients (parameters without a gradient count as zero).
public func gradNorm(_ parameters: [Tensor]) -> Float {
    var total: Double = 0
    for p in parameters {
        guard let g = p.grad else { continue }
        var s: Double = 0
        let d = g.data
        for i in 0..<g.count { s += Double(d[i]) * Double(d[i]) }
        total += s
    }
    return Float(total.squareRoot())
}
