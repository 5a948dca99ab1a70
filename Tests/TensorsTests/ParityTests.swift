import Testing
import Tensors

/// Every op against PyTorch: forward output and input gradients (for the upstream gradient `gout`
/// that the fixture script drew) must agree to 1e-5 relative (see `relativeError`).
@Suite struct PyTorchParity {
    static let cases = Fixtures.load("tensor_ops.json")

    /// Each case's computation in our engine, from its named inputs.
    static let ops: [String: (FixtureCase, [String: Tensor]) -> Tensor] = [
        "add": { _, t in t["a"]! + t["b"]! },
        "add_bcast2": { _, t in t["a"]! + t["b"]! },
        "sub": { _, t in t["a"]! - t["b"]! },
        "mul": { _, t in t["a"]! * t["b"]! },
        "div": { _, t in t["a"]! / t["b"]! },
        "matmul": { _, t in matmul(t["a"]!, t["b"]!) },
        "matmul_batched": { _, t in matmul(t["a"]!, t["b"]!) },
        "matmul_bcast": { _, t in matmul(t["a"]!, t["b"]!) },
        "linear": { _, t in linear(t["x"]!, t["w"]!, t["b"]!) },
        "sum_axis": { _, t in t["x"]!.sum(axis: 1) },
        "sum_all": { _, t in t["x"]!.sum() },
        "mean_axes": { _, t in t["x"]!.mean(axes: [0, 2], keepDim: true) },
        "max_axis": { _, t in t["x"]!.amax(axis: 2) },
        "var_axis": { _, t in t["x"]!.variance(axis: -1) },
        "var_biased": { _, t in t["x"]!.variance(axis: 1, correction: 0) },
        "exp": { _, t in t["x"]!.exp() },
        "log": { _, t in t["x"]!.log() },
        "sqrt": { _, t in t["x"]!.sqrt() },
        "tanh": { _, t in t["x"]!.tanh() },
        "pow3": { _, t in t["x"]!.pow(3) },
        "pow_half": { _, t in t["x"]!.pow(0.5) },
        "softmax": { _, t in t["x"]!.softmax() },
        "log_softmax": { _, t in t["x"]!.logSoftmax() },
        "gelu_tanh": { _, t in t["x"]!.geluTanh() },
        "gelu_erf": { _, t in t["x"]!.geluErf() },
        "relu": { _, t in t["x"]!.relu() },
        "silu": { _, t in t["x"]!.silu() },
        "layernorm": { _, t in t["x"]!.layerNorm(weight: t["weight"]!, bias: t["bias"]!, eps: 1e-5) },
        "rmsnorm": { _, t in t["x"]!.rmsNorm(weight: t["weight"]!, eps: 1e-6) },
        "cross_entropy": { c, t in t["logits"]!.crossEntropy(targets: c.ints("targets")) },
        "attention": { _, t in causalAttention(t["q"]!, t["k"]!, t["v"]!) },
        "attention_long": { _, t in causalAttention(t["q"]!, t["k"]!, t["v"]!) },
        "attention_gqa": { _, t in causalAttention(t["q"]!, t["k"]!, t["v"]!) },
        "attention_cache": { _, t in causalAttention(t["q"]!, t["k"]!, t["v"]!) },
        "embedding": { c, t in t["weight"]!.gatherRows(c.ints("ids"), shape: [2, 3]) },
        "concat": { _, t in Tensor.concat([t["a"]!, t["b"]!], axis: 1) },
        "stack": { _, t in Tensor.stack([t["a"]!, t["b"]!], axis: 0) },
        "transpose": { _, t in t["x"]!.transposed(1, 2) },
        "permute": { _, t in t["x"]!.permuted(0, 2, 1, 3) },
        "slice": { _, t in t["x"]!.slice(axis: 1, 2..<5) },
        "slice0": { _, t in t["x"]!.slice(axis: 0, 1..<3) },
        "masked_fill": { c, t in t["x"]!.maskedFill(Tensor(shape: [3, 4], c.ints("mask").map(Float.init)), -5) },
        "mlp_block": { _, t in linear(linear(t["x"]!, t["fc_w"]!, t["fc_b"]!).geluTanh(), t["proj_w"]!, t["proj_b"]!) },
        "ln_attention_block": { c, t in
            let x = t["x"]!
            let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
            let heads = c.extra["n_head"] as! Int, hs = d / heads
            let h = x.layerNorm(weight: t["ln_w"]!, bias: t["ln_b"]!)
            let qkv = linear(h, t["qkv_w"]!, t["qkv_b"]!).split([d, d, d], axis: 2)     // 3 × (B, T, C)
            let (q, k, v) = (qkv[0], qkv[1], qkv[2])
            func split(_ z: Tensor) -> Tensor { z.reshaped(b, n, heads, hs).transposed(1, 2) }   // (B, nh, T, hs)
            let y = causalAttention(split(q), split(k), split(v)).transposed(1, 2).reshaped(b, n, d)
            return x + linear(y, t["proj_w"]!, t["proj_b"]!)
        },
    ]

    @Test func everyFixtureCaseHasAnOp() {
        let differentiable = Set(Self.cases.keys).subtracting(["adamw", "sgd"])
        #expect(differentiable == Set(Self.ops.keys))
    }

    @Test(arguments: ops.keys.sorted())
    func forwardAndBackward(_ name: String) {
        let c = Self.cases[name]!
        var inputs: [String: Tensor] = [:]
        for key in c.inputs.keys where !["gout", "targets", "ids", "mask"].contains(key) {
            inputs[key] = c.input(key)
            inputs[key]!.requiresGrad = true
        }
        let out = Self.ops[name]!(c, inputs)
        let outError = relativeError(out, c.output())
        #expect(outError <= 1e-5, "\(name) forward: shape \(out.shape) vs \(c.output().shape), max rel error \(outError)")
        out.backward(c.input("gout").reshaped(out.shape))
        for g in c.gradNames {
            let ours = inputs[g]!.grad ?? Tensor.zeros(inputs[g]!.shape)
            let err = relativeError(ours, c.grad(g))
            #expect(err <= 1e-5, "\(name) grad \(g): max rel error \(err)")
        }
    }
}
