import Tensors

/// Low-rank adaptation around a frozen projection (Hu et al. 2021):
///
///   y = base(x) + (alpha / r) · B (A (dropout(x)))        A (r, in), B (out, r)
///
/// A starts Kaiming-uniform (±1/√in, as PEFT's `kaiming_uniform_(a=√5)`), B at zero, so a fresh
/// adapter changes nothing. The base may be a float `Linear` or a `QuantizedLinear` (QLoRA): it
/// stays as it is, frozen, and gradients reach the input through it. Only A and B train.
/// With `enabled` false the layer is its base (DPO's reference model without a second copy).
public final class LoRALinear: Module, LinearLayer {
    public var base: any LinearLayer
    public var loraA: Tensor                 // (r, in)
    public var loraB: Tensor                 // (out, r)
    public let alpha: Float
    public var dropout: Dropout
    public var enabled = true

    public init(base: any LinearLayer, rank: Int, alpha: Float, dropout: Float = 0, rng: RandomGenerator) {
        precondition(rank > 0, "LoRA: rank \(rank) must be positive")
        self.base = base
        let bound = 1 / Float(base.inFeatures).squareRoot()
        loraA = Tensor.uniform([rank, base.inFeatures], -bound, bound, rng: rng, requiresGrad: true)
        loraB = Tensor.zeros([base.outFeatures, rank], requiresGrad: true)
        self.alpha = alpha
        self.dropout = Dropout(dropout, rng: rng)
        super.init()
        base.freeze()
    }

    /// An adapter with given matrices (a saved one): A (r, in), B (out, r).
    public init(base: any LinearLayer, a: Tensor, b: Tensor, alpha: Float, dropout: Float = 0, rng: RandomGenerator) {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[0] == b.shape[1] && a.shape[1] == base.inFeatures && b.shape[0] == base.outFeatures,
                     "LoRA: A \(Shape.describe(a.shape)) and B \(Shape.describe(b.shape)) do not fit a \(base.outFeatures)×\(base.inFeatures) layer")
        self.base = base
        loraA = a; loraB = b
        a.requiresGrad = true; b.requiresGrad = true
        self.alpha = alpha
        self.dropout = Dropout(dropout, rng: rng)
        super.init()
        base.freeze()
    }

    public var rank: Int { loraA.shape[0] }
    public var scale: Float { alpha / Float(rank) }
    public var inFeatures: Int { base.inFeatures }
    public var outFeatures: Int { base.outFeatures }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = base(x)                                           // (..., out)
        guard enabled else { return y }
        let low = linear(dropout(x), loraA) * scale               // (..., r)
        return y + linear(low, loraB)                             // (..., out)
    }

    /// The update the adapter adds to the base weight: (alpha / r) · B·A, (out, in).
    public func delta() -> Tensor { withNoGrad { matmul(loraB, loraA) * scale } }
}
