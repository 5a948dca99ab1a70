import Foundation

/// Activations: GELU (tanh approximation, as GPT-2 uses, and exact erf), ReLU, SiLU.
/// x (any shape) → out (same shape); backward from the saved input.
extension Tensor {
    /// GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    public func geluTanh() -> Tensor {
        let out = mapVector { x in
            let u: Float16x = 0.7978845608 * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + vtanhAbs(u))
        }
        return Autograd.record(out, "gelu_tanh", [self]) { g in
            // dx = g · (0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)), one fused pass
            [broadcastBinaryVector(g, self) { g, x in
                let x2: Float16x = x * x
                let u: Float16x = 0.7978845608 * (x + 0.044715 * x2 * x)
                let t = vtanhAbs(u)
                let du: Float16x = 0.7978845608 * (1 + 0.134145 * x2)
                let left: Float16x = 0.5 * (1 + t)
                return g * (left + 0.5 * x * (1 - t * t) * du)
            }]
        }
    }

    /// GELU, exact: x·Φ(x) = 0.5·x·(1 + erf(x/√2)).
    public func geluErf() -> Tensor {
        let out = map { 0.5 * $0 * (1 + erf($0 * 0.70710678)) }
        return Autograd.record(out, "gelu_erf", [self]) { g in
            // d/dx = Φ(x) + x·φ(x)
            let dx = self.map { x in
                let d = Double(x)
                return Float(0.5 * (1 + erf(d * 0.7071067811865476)) + d * 0.3989422804014327 * Foundation.exp(-0.5 * d * d))
            }
            return [g * dx]
        }
    }

    public func relu() -> Tensor {
        let out = map { max($0, 0) }
        return Autograd.record(out, "relu", [self]) { g in [g * self.map { $0 > 0 ? 1 : 0 }] }
    }

    /// SiLU (swish): x·σ(x).
    public func silu() -> Tensor {
        let out = mapVector { x in x / (1 + vexp(-x)) }
        return Autograd.record(out, "silu", [self]) { g in
            // dx = g · σ(x)·(1 + x·(1 − σ(x)))
            [broadcastBinaryVector(g, self) { g, x in
                let s = 1 / (1 + vexp(-x))
                return g * s * (1 + x * (1 - s))
            }]
        }
    }

    public func sigmoid() -> Tensor {
        let out = mapVector { x in 1 / (1 + vexp(-x)) }
        return Autograd.record(out, "sigmoid", [self]) { g in [g * out * (1 - out)] }
    }
}
