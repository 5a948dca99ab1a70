import Tensors

/// Stochastic gradient descent with momentum, as `torch.optim.SGD` (no dampening):
///   b ← g on the first step, then b ← μ·b + g;   p ← p − lr·b
/// (with weight decay wd, g is first replaced by g + wd·p).
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float
    public private(set) var groups: [ParameterGroup]
    private var buffers: [Tensor?]

    public init(_ groups: [ParameterGroup], learningRate: Float, momentum: Float = 0) {
        self.groups = groups
        self.learningRate = learningRate
        self.momentum = momentum
        buffers = Array(repeating: nil, count: groups.reduce(0) { $0 + $1.parameters.count })
    }

    public convenience init(_ parameters: [Tensor], learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) {
        self.init([ParameterGroup(parameters, weightDecay: weightDecay)], learningRate: learningRate, momentum: momentum)
    }

    public func step() {
        var index = 0
        for group in groups {
            for p in group.parameters {
                defer { index += 1 }
                guard let grad = p.grad else { continue }
                let pp = p.data, pg = grad.data, wd = group.weightDecay, lr = learningRate, mu = momentum
                if mu == 0 {
                    for i in 0..<p.count { pp[i] -= lr * (pg[i] + wd * pp[i]) }
                    continue
                }
                if let b = buffers[index] {
                    let pb = b.data
                    for i in 0..<p.count { pb[i] = mu * pb[i] + (pg[i] + wd * pp[i]); pp[i] -= lr * pb[i] }
                } else {
                    let b = Tensor.zeros(p.shape)
                    for i in 0..<p.count { b.data[i] = pg[i] + wd * pp[i]; pp[i] -= lr * b.data[i] }
                    buffers[index] = b
                }
            }
        }
    }
}
