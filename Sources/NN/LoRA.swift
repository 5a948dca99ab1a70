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

    /// A fresh adapter: A drawn from `rng`; dropout masks from `dropoutRNG` (default: `rng`).
    public init(base: any LinearLayer, rank: Int, alpha: Float, dropout: Float = 0, rng: RandomGenerator, dropoutRNG: RandomGenerator? = nil) {
        precondition(rank > 0, "LoRA: rank \(rank) must be positive")
        self.base = base
        let bound = 1 / Float(base.inFeatures).squareRoot()
        loraA = Tensor.uniform([rank, base.inFeatures], -bound, bound, rng: rng, requiresGrad: true)
        loraB = Tensor.zeros([base.outFeatures, rank], requiresGrad: true)
        self.alpha = alpha
        self.dropout = Dropout(dropout, rng: dropoutRNG ?? rng)
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

    /// One recorded op, so training keeps one (..., out) tensor per adapted projection (not the
    /// base's output, the update and their sum): the update is added into the base's output by
    /// sgemm (beta = 1), and the backward needs only the input, the dropout mask and the small
    /// (..., r) product. The base's own input gradient comes from `inputGradient` (its weights are
    /// frozen), so a quantized base never yields a Float32 copy of its matrix.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard enabled else { return base(x) }
        let (inF, outF, r, s) = (inFeatures, outFeatures, rank, scale)
        let rows = x.count / max(inF, 1)
        let (a, b) = (loraA, loraB)
        var mask: DropoutMask? = nil
        let (y, low) = withNoGrad { () -> (Tensor, Tensor) in
            let y = self.base(x)                                         // (..., out), a fresh tensor
            var xd = x
            if dropout.training && dropout.p > 0 {
                let m = DropoutMask(count: x.count, p: dropout.p, rng: dropout.rng)
                mask = m
                xd = m.apply(x)
            }
            let low = linear(xd, a) * s                                  // (..., r)
            BLAS.sgemm(transposeA: false, transposeB: true, m: rows, n: outF, k: r, low.data, b.data, beta: 1, y.data)
            return (y, low)
        }
        guard Autograd.isEnabled, x.requiresGrad || a.requiresGrad || b.requiresGrad else { return y }
        let frozenBase = base
        return Autograd.custom(y, op: "lora", inputs: [x, a, b]) { g in   // g (..., out)
            var gB: Tensor? = nil, gA: Tensor? = nil, gx: Tensor? = nil
            if b.requiresGrad {                                          // dB (out, r) = gᵀ · low
                let t = Tensor.zeros([outF, r])
                BLAS.sgemm(transposeA: true, transposeB: false, m: outF, n: r, k: rows, g.data, low.data, t.data)
                gB = t
            }
            let dLow = Tensor.zeros([rows, r])                  // (rows, r) = g · B · scale
            BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: r, k: outF, alpha: s, g.data, b.data, dLow.data)
            if a.requiresGrad {                                          // dA (r, in) = dLowᵀ · dropout(x)
                let xd = mask.map { $0.apply(x) } ?? x
                let t = Tensor.zeros([r, inF])
                BLAS.sgemm(transposeA: true, transposeB: false, m: r, n: inF, k: rows, dLow.data, xd.data, t.data)
                gA = t
            }
            if x.requiresGrad {                                          // dx = g·W + (dLow · A) ⊙ mask
                let t = frozenBase.inputGradient(g)
                if let mask {
                    let u = Tensor.zeros([rows, inF])
                    BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: inF, k: r, dLow.data, a.data, u.data)
                    mask.addMasked(u, into: t)
                } else {
                    BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: inF, k: r, dLow.data, a.data, beta: 1, t.data)
                }
                gx = t
            }
            return [gx, gA, gB]
        }
    }

    /// Frozen adapters (a merged view): the base's input gradient plus the adapter's.
    public func inputGradient(_ g: Tensor) -> Tensor {
        let t = base.inputGradient(g)
        guard enabled else { return t }
        let rows = g.count / max(outFeatures, 1)
        withNoGrad {
            let dLow = Tensor.zeros([rows, rank])
            BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: rank, k: outFeatures, alpha: scale, g.data, loraB.data, dLow.data)
            BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: rank, dLow.data, loraA.data, beta: 1, t.data)
        }
        return t
    }

    /// The update the adapter adds to the base weight: (alpha / r) · B·A, (out, in).
    public func delta() -> Tensor { withNoGrad { matmul(loraB, loraA) * scale } }
}

/// Which inputs dropout keeps, one byte each (a Float mask would be 4), drawn 16 bits at a time
/// (four per 64-bit draw): an element is dropped when its 16 bits fall below p·65536. Kept
/// elements are scaled by 1/(1 − p) where the mask is applied.
struct DropoutMask {
    let keep: [UInt8]
    let scale: Float

    init(count: Int, p: Float, rng: RandomGenerator) {
        let threshold = UInt64((p * 65536).rounded())
        var keep = [UInt8](repeating: 0, count: count)
        keep.withUnsafeMutableBufferPointer { k in
            var i = 0
            while i < count {
                let bits = rng.next()
                for j in 0..<Swift.min(4, count - i) { k[i + j] = (bits >> (16 * UInt64(j))) & 0xFFFF < threshold ? 0 : 1 }
                i += 4
            }
        }
        self.keep = keep
        scale = 1 / (1 - p)
    }

    /// x with dropped elements zeroed and kept ones scaled.
    func apply(_ x: Tensor) -> Tensor {
        let out = Tensor.zeros(x.shape)
        let (src, dst, s) = (x.data, out.data, scale)
        keep.withUnsafeBufferPointer { k in
            let kp = k.baseAddress!
            Parallel.forEachChunk(x.count, grain: 1 << 15) { r in
                for i in r { dst[i] = kp[i] == 0 ? 0 : src[i] * s }
            }
        }
        return out
    }

    /// into += u masked and scaled (the gradient through dropout).
    func addMasked(_ u: Tensor, into t: Tensor) {
        let (src, dst, s) = (u.data, t.data, scale)
        keep.withUnsafeBufferPointer { k in
            let kp = k.baseAddress!
            Parallel.forEachChunk(t.count, grain: 1 << 15) { r in
                for i in r where kp[i] != 0 { dst[i] += src[i] * s }
            }
        }
    }
}
