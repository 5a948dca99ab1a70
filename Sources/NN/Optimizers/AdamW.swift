import Tensors

/// Adam with decoupled weight decay (Loshchilov & Hutter), step for step as `torch.optim.AdamW`:
///   p ← p·(1 − lr·wd)
///   m ← m + (1 − β1)·(g − m);   v ← β2·v + (1 − β2)·g²
///   p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
/// Hyperparameters are Doubles and the per-step scalars are formed in Double, then rounded once to
/// Float, as PyTorch does with its Python-float hyperparameters; the element-wise updates use the
/// same operation order as PyTorch's kernels (lerp, addcmul, addcdiv).
public final class AdamW: Optimizer {
    public var learningRate: Float
    public let beta1: Double, beta2: Double, eps: Double
    public private(set) var groups: [ParameterGroup]
    /// Steps taken so far (t in the bias corrections).
    public private(set) var stepCount = 0
    /// First and second moments, one pair per parameter, in group order.
    public private(set) var m: [Tensor], v: [Tensor]

    public init(_ groups: [ParameterGroup], learningRate: Float = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
        self.groups = groups
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        let all = groups.flatMap(\.parameters)
        m = all.map { Tensor.zeros($0.shape) }
        v = all.map { Tensor.zeros($0.shape) }
    }

    public convenience init(_ parameters: [Tensor], learningRate: Float = 1e-3, beta1: Double = 0.9,
                            beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Float = 0.01) {
        self.init([ParameterGroup(parameters, weightDecay: weightDecay)], learningRate: learningRate,
                  beta1: beta1, beta2: beta2, eps: eps)
    }

    /// Restores moments and step count (from a checkpoint).
    public func restore(step: Int, m: [Tensor], v: [Tensor]) {
        precondition(m.count == self.m.count && v.count == self.v.count, "AdamW.restore: state for a different parameter list")
        for (dst, src) in zip(self.m + self.v, m + v) { dst.assign(src) }
        stepCount = step
    }

    public func step() {
        stepCount += 1
        let t = Double(stepCount), lr = Double(learningRate)
        let stepSize = Float(lr / (1 - Foundation.pow(beta1, t)))
        let bc2Sqrt = Float((1 - Foundation.pow(beta2, t)).squareRoot())
        let (b2, oneMinusB1, oneMinusB2, eps) = (Float(beta2), Float(1 - beta1), Float(1 - beta2), Float(self.eps))
        var index = 0
        for group in groups {
            let decay = Float(1 - lr * Double(group.weightDecay))
            for p in group.parameters {
                defer { index += 1 }
                guard let grad = p.grad else { continue }
                let pp = p.data, pg = grad.data, pm = m[index].data, pv = v[index].data
                Parallel.forEachChunk(p.count, grain: 1 << 14) { r in
                    for i in r {
                        let g = pg[i]
                        pm[i] = pm[i] + oneMinusB1 * (g - pm[i])
                        pv[i] = pv[i] * b2 + oneMinusB2 * g * g
                        let denom = pv[i].squareRoot() / bc2Sqrt + eps
                        pp[i] = pp[i] * decay + (-stepSize * pm[i]) / denom
                    }
                }
            }
        }
    }
}

import Foundation
