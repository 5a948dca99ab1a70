import Tensors

/// y = x·Wᵀ + b with W stored (out, in), as in PyTorch. x (..., in) → y (..., out).
/// Initialized like `torch.nn.Linear`: W and b uniform in ±1/√in.
public final class Linear: Module {
    public var weight: Tensor
    public var bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: RandomGenerator) {
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Tensor.uniform([outFeatures, inFeatures], -bound, bound, rng: rng, requiresGrad: true)
        self.bias = bias ? Tensor.uniform([outFeatures], -bound, bound, rng: rng, requiresGrad: true) : nil
    }

    /// A layer around given weights (a checkpoint's): W (out, in), b (out). They become trainable.
    public init(weight: Tensor, bias: Tensor? = nil) {
        precondition(weight.rank == 2 && (bias.map { $0.shape == [weight.shape[0]] } ?? true),
                     "Linear: weight \(Shape.describe(weight.shape)), bias \(bias.map { Shape.describe($0.shape) } ?? "none")")
        self.weight = weight
        self.bias = bias
        weight.requiresGrad = true
        bias?.requiresGrad = true
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight, bias) }
}

/// A table of vectors looked up by id. ids (shape S) → (S..., dim). Initialized N(0, std²).
public final class Embedding: Module {
    public var weight: Tensor

    public init(_ count: Int, _ dim: Int, std: Float = 1, rng: RandomGenerator) {
        weight = Tensor.randn([count, dim], std: std, rng: rng, requiresGrad: true)
    }

    /// A table around given weights (count, dim), trainable.
    public init(weight: Tensor) {
        precondition(weight.rank == 2, "Embedding: table \(Shape.describe(weight.shape)) is not 2-D")
        self.weight = weight
        weight.requiresGrad = true
    }

    public func callAsFunction(_ ids: [Int32], shape: [Int]? = nil) -> Tensor { weight.gatherRows(ids, shape: shape) }
}

/// Layer normalization over the last axis. x (..., dim) → (..., dim).
public final class LayerNorm: Module {
    public var weight: Tensor
    public var bias: Tensor?
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5, bias: Bool = true) {
        weight = Tensor.ones([dim], requiresGrad: true)
        self.bias = bias ? Tensor.zeros([dim], requiresGrad: true) : nil
        self.eps = eps
    }

    /// A norm around given weights (dim) and bias, trainable.
    public init(weight: Tensor, bias: Tensor?, eps: Float = 1e-5) {
        self.weight = weight
        self.bias = bias
        self.eps = eps
        weight.requiresGrad = true
        bias?.requiresGrad = true
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, eps: eps) }
}

/// Root-mean-square normalization over the last axis (no centering, no bias). x (..., dim) → (..., dim).
public final class RMSNorm: Module {
    public var weight: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-6) {
        weight = Tensor.ones([dim], requiresGrad: true)
        self.eps = eps
    }

    /// A norm around given weights (dim), trainable.
    public init(weight: Tensor, eps: Float = 1e-6) {
        self.weight = weight
        self.eps = eps
        weight.requiresGrad = true
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.rmsNorm(weight: weight, eps: eps) }
}

/// Dropout in train mode, identity in eval mode.
public final class Dropout: Module {
    public let p: Float
    let rng: RandomGenerator

    public init(_ p: Float, rng: RandomGenerator) {
        self.p = p
        self.rng = rng
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { training && p > 0 ? x.dropout(p, rng: rng) : x }

    /// The state of the generator the masks are drawn from (to replay a mask in a test).
    public var rngSnapshot: [UInt64] { rng.snapshot }
}
