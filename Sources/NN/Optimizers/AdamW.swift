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
    /// First and second moments, one pair per parameter, in group order: the parameter's shape,
    /// or with `owned`, one dimension holding its owned elements only.
    public private(set) var m: [Tensor], v: [Tensor]
    /// Optimizer-state sharding (ZeRO stage 1): the elements this optimizer updates and keeps
    /// moments for, counted over all its parameters laid end to end in group order; nil: all.
    /// Processes that each own a part update their parts and then exchange the new values.
    public let owned: Range<Int>?
    /// The owned elements of each parameter, as a range of its own flat indices (all of them
    /// without sharding; empty where it lies outside the owned range).
    public let ownedElements: [Range<Int>]

    public init(_ groups: [ParameterGroup], learningRate: Float = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                owned: Range<Int>? = nil) {
        self.groups = groups
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.owned = owned
        let all = groups.flatMap(\.parameters)
        var start = 0, elements: [Range<Int>] = []
        for p in all {
            let mine = owned.map { $0.clamped(to: start..<(start + p.count)) } ?? start..<(start + p.count)
            elements.append((mine.lowerBound - start)..<(mine.upperBound - start))
            start += p.count
        }
        ownedElements = elements
        m = zip(all, elements).map { p, r in owned == nil ? Tensor.zeros(p.shape) : Tensor.zeros([r.count]) }
        v = zip(all, elements).map { p, r in owned == nil ? Tensor.zeros(p.shape) : Tensor.zeros([r.count]) }
    }

    /// Bytes the moments take.
    public var stateBytes: Int { (m + v).reduce(0) { $0 + $1.count * 4 } }

    public convenience init(_ parameters: [Tensor], learningRate: Float = 1e-3, beta1: Double = 0.9,
                            beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Float = 0.01) {
        self.init([ParameterGroup(parameters, weightDecay: weightDecay)], learningRate: learningRate,
                  beta1: beta1, beta2: beta2, eps: eps)
    }

    /// Restores moments and step count (from a checkpoint): whole moments, of which a sharded
    /// optimizer keeps its owned elements.
    public func restore(step: Int, m: [Tensor], v: [Tensor]) {
        precondition(m.count == self.m.count && v.count == self.v.count, "AdamW.restore: state for a different parameter list")
        for (i, r) in ownedElements.enumerated() {
            for (dst, src) in [(self.m[i], m[i]), (self.v[i], v[i])] {
                if owned == nil { dst.assign(src) } else { (dst.data).update(from: src.data + r.lowerBound, count: r.count) }
            }
        }
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
                let mine = ownedElements[index]
                guard let grad = p.grad, !mine.isEmpty else { continue }
                let pp = p.data + mine.lowerBound, pg = grad.data + mine.lowerBound, pm = m[index].data, pv = v[index].data
                Parallel.forEachChunk(mine.count, grain: 1 << 14) { r in
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
