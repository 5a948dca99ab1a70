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
        return Autograd.record(out, "gelu_tanh", [self]) { g in [self.geluTanhBackward(g)] }
    }

    /// GELU(tanh) as ggml's CPU backend computes it, so GGUF models give llama.cpp's numbers: the
    /// input rounded to F16 and looked up in a table of 65,536 F16 results (the formula above in
    /// Float32 on each F16 value, rounded to F16); inputs ≤ −10 give 0 and ≥ 10 themselves. It
    /// differs from `geluTanh` by up to ~1e-3 relative, and those roundings, fed to the 8-bit
    /// activations of the next product, move a model's logits by tenths. Backward as `geluTanh`'s.
    public func geluTanhHalfTable() -> Tensor {
        let out = Tensor(uninitialized: shape)
        let x = data, y = out.data
        halfGELUTable.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            Parallel.forEachChunk(count, grain: 1 << 14) { range in
                for i in range {
                    let v = x[i]
                    y[i] = v <= -10 ? 0 : v >= 10 ? v : table[Int(Float16(v).bitPattern)]
                }
            }
        }
        return Autograd.record(out, "gelu_tanh (F16 table)", [self]) { g in [self.geluTanhBackward(g)] }
    }

    /// dx = g · (0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)), one fused pass.
    private func geluTanhBackward(_ g: Tensor) -> Tensor {
        broadcastBinaryVector(g, self) { g, x in
            let x2: Float16x = x * x
            let u: Float16x = 0.7978845608 * (x + 0.044715 * x2 * x)
            let t = vtanhAbs(u)
            let du: Float16x = 0.7978845608 * (1 + 0.134145 * x2)
            let left: Float16x = 0.5 * (1 + t)
            return g * (left + 0.5 * x * (1 - t * t) * du)
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

/// GELU(tanh) of every F16 value (indexed by its bit pattern), computed in Float32 with the C
/// library's tanhf and rounded to F16, as ggml builds its table at start-up.
private let halfGELUTable: [Float] = (0..<65536).map { i in
    let x = Float(Float16(bitPattern: UInt16(i)))
    return Float(Float16(0.5 * x * (1 + tanhf(0.79788456080286535587989211986876 * x * (1 + 0.044715 * x * x)))))
}
