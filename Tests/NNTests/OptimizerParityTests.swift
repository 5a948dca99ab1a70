import Foundation
import Models
import NN
import Testing
import Tensors

/// Optimizers and modules against PyTorch (fixtures from scripts/fixtures/make_tensor_fixtures.py).
@Suite struct OptimizerParity {
    static let root: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tensor_ops.json")
        let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return json["cases"] as! [String: Any]
    }()

    static func tensor(_ c: String, _ section: String, _ name: String) -> Tensor {
        let t = ((root[c] as! [String: Any])[section] as! [String: Any])[name] as! [String: Any]
        return Tensor(shape: t["shape"] as! [Int], (t["data"] as! [Double]).map { Float($0) })
    }
    static func extra(_ c: String) -> [String: Any] { (root[c] as! [String: Any])["extra"] as! [String: Any] }

    /// Linear(4,16) → tanh → Linear(16,3) with the fixture's starting weights.
    final class TwoLayer: Module {
        var fc1: Linear, fc2: Linear
        init(_ c: String) {
            let rng = RandomGenerator(seed: 0)
            fc1 = Linear(4, 16, rng: rng); fc2 = Linear(16, 3, rng: rng)
            super.init()
            try! load(["fc1.weight": tensor(c, "inputs", "fc1_w"), "fc1.bias": tensor(c, "inputs", "fc1_b"),
                       "fc2.weight": tensor(c, "inputs", "fc2_w"), "fc2.bias": tensor(c, "inputs", "fc2_b")])
        }
        func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1(x).tanh()) }
    }

    static func targets(_ c: String) -> [Int32] {
        let t = ((root[c] as! [String: Any])["inputs"] as! [String: Any])["targets"] as! [String: Any]
        return (t["data"] as! [Int]).map { Int32($0) }
    }

    /// Norm-wise relative error max|a − b| / max|b|: for weights after many steps, where an element
    /// that passed near zero carries the rounding of the larger values it came from.
    static func normError(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = b.scalars.map(abs).max() ?? 0
        return (zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0) / scale
    }

    /// Element-wise relative error, floored at 1 % of b's largest magnitude.
    static func relError(_ a: Tensor, _ b: Tensor) -> Float {
        let floor = (b.scalars.map(abs).max() ?? 0) * 1e-2
        return zip(a.scalars, b.scalars).map { abs($0 - $1) / max(abs($1), floor) }.max() ?? 0
    }

    @Test func adamWWithWeightDecayAndClippingMatchesPyTorch() {
        let c = "adamw", e = Self.extra(c)
        let model = TwoLayer(c)
        let x = Self.tensor(c, "inputs", "x"), y = Self.targets(c)
        let betas = e["betas"] as! [Double]
        let opt = AdamW([ParameterGroup([model.fc1.weight, model.fc2.weight], weightDecay: Float(e["weight_decay"] as! Double)),
                         ParameterGroup([model.fc1.bias!, model.fc2.bias!], weightDecay: 0)],
                        learningRate: Float(e["lr"] as! Double), beta1: betas[0], beta2: betas[1],
                        eps: e["eps"] as! Double)
        var losses: [Float] = [], norms: [Float] = []
        for _ in 0..<(e["steps"] as! Int) {
            opt.zeroGrad()
            let loss = model(x).crossEntropy(targets: y)
            loss.backward()
            norms.append(clipGradNorm(model.parameters, maxNorm: Float(e["max_norm"] as! Double)))
            opt.step()
            losses.append(loss.item)
        }
        #expect(Self.relError(Tensor(losses), Self.tensor(c, "outputs", "losses")) < 1e-5)
        #expect(Self.relError(Tensor(norms), Self.tensor(c, "outputs", "grad_norms")) < 1e-5)
        for (name, t) in [("fc1_w", model.fc1.weight), ("fc1_b", model.fc1.bias!), ("fc2_w", model.fc2.weight), ("fc2_b", model.fc2.bias!)] {
            let err = Self.normError(t, Self.tensor(c, "outputs", name))
            #expect(err < 1e-6, "\(name): max rel error \(err)")
        }
    }

    /// The optimizer arithmetic alone: fed PyTorch's own gradients at every step, our clipping and
    /// AdamW must land on PyTorch's weights to 1e-6 relative.
    @Test func adamWStepsOnPyTorchGradientsMatchTo1e6() {
        let c = "adamw", e = Self.extra(c)
        let model = TwoLayer(c)
        let betas = e["betas"] as! [Double]
        let opt = AdamW([ParameterGroup([model.fc1.weight, model.fc2.weight], weightDecay: Float(e["weight_decay"] as! Double)),
                         ParameterGroup([model.fc1.bias!, model.fc2.bias!], weightDecay: 0)],
                        learningRate: Float(e["lr"] as! Double), beta1: betas[0], beta2: betas[1], eps: e["eps"] as! Double)
        let named = [("fc1_w", model.fc1.weight), ("fc1_b", model.fc1.bias!), ("fc2_w", model.fc2.weight), ("fc2_b", model.fc2.bias!)]
        var norms: [Float] = []
        for step in 0..<(e["steps"] as! Int) {
            for (name, p) in named { p.grad = Self.tensor(c, "outputs", "step_grads_" + name).select(axis: 0, step).copy() }
            norms.append(clipGradNorm(model.parameters, maxNorm: Float(e["max_norm"] as! Double)))
            opt.step()
        }
        #expect(Self.relError(Tensor(norms), Self.tensor(c, "outputs", "grad_norms")) < 1e-6)
        for (name, t) in named {
            let err = Self.normError(t, Self.tensor(c, "outputs", name))
            #expect(err < 1e-6, "\(name): max rel error \(err)")
        }
    }

    @Test func sgdStepsOnPyTorchGradientsMatchTo1e6() {
        let c = "sgd", e = Self.extra(c)
        let model = TwoLayer(c)
        let opt = SGD(model.parameters, learningRate: Float(e["lr"] as! Double), momentum: Float(e["momentum"] as! Double))
        let named = [("fc1_w", model.fc1.weight), ("fc1_b", model.fc1.bias!), ("fc2_w", model.fc2.weight), ("fc2_b", model.fc2.bias!)]
        for step in 0..<(e["steps"] as! Int) {
            for (name, p) in named { p.grad = Self.tensor(c, "outputs", "step_grads_" + name).select(axis: 0, step).copy() }
            opt.step()
        }
        for (name, t) in named {
            let err = Self.normError(t, Self.tensor(c, "outputs", name))
            #expect(err < 1e-6, "\(name): max rel error \(err)")
        }
    }

    @Test func sgdWithMomentumMatchesPyTorch() {
        let c = "sgd", e = Self.extra(c)
        let model = TwoLayer(c)
        let x = Self.tensor(c, "inputs", "x"), y = Self.targets(c)
        let opt = SGD(model.parameters, learningRate: Float(e["lr"] as! Double), momentum: Float(e["momentum"] as! Double))
        var losses: [Float] = []
        for _ in 0..<(e["steps"] as! Int) {
            opt.zeroGrad()
            let loss = model(x).crossEntropy(targets: y)
            loss.backward()
            opt.step()
            losses.append(loss.item)
        }
        #expect(Self.relError(Tensor(losses), Self.tensor(c, "outputs", "losses")) < 1e-5)
        for (name, t) in [("fc1_w", model.fc1.weight), ("fc1_b", model.fc1.bias!), ("fc2_w", model.fc2.weight), ("fc2_b", model.fc2.bias!)] {
            let err = Self.normError(t, Self.tensor(c, "outputs", name))
            #expect(err < 1e-6, "\(name): max rel error \(err)")
        }
    }

    /// The Models block's attention module, loaded with the fixture's weights, equals PyTorch's
    /// LayerNorm + attention block (output and every parameter gradient).
    @Test func attentionModuleMatchesPyTorchBlock() {
        let c = "ln_attention_block"
        func t(_ n: String) -> Tensor { Self.tensor(c, "inputs", n) }
        let d = t("x").shape[2]
        let ln = LayerNorm(d)
        let heads = Self.extra(c)["n_head"] as! Int
        try! ln.load(["weight": t("ln_w"), "bias": t("ln_b")])
        // PyTorch's fused q|k|v projection, split into the decoder's q, k and v slots.
        let w = t("qkv_w").split([d, d, d], axis: 0).map { $0.copy() }, b = t("qkv_b").split([d, d, d], axis: 0).map { $0.copy() }
        let (q, k, v) = (Linear(weight: w[0], bias: b[0]), Linear(weight: w[1], bias: b[1]), Linear(weight: w[2], bias: b[2]))
        let proj = Linear(weight: t("proj_w"), bias: t("proj_b"))
        let attn = Attention(q: q, k: k, v: v, o: proj, heads: heads, kvHeads: heads, headSize: d / heads, rope: nil, rng: RandomGenerator(seed: 0))
        let x = t("x"); x.requiresGrad = true
        let out = x + attn(ln(x))
        #expect(Self.relError(out, Self.tensor(c, "outputs", "out")) < 1e-5)
        out.backward(t("gout"))
        let qkvW = Tensor.concat([q.weight.grad!, k.weight.grad!, v.weight.grad!], axis: 0)
        let qkvB = Tensor.concat([q.bias!.grad!, k.bias!.grad!, v.bias!.grad!], axis: 0)
        let grads: [(String, Tensor)] = [("x", x), ("ln_w", ln.weight), ("ln_b", ln.bias!), ("proj_w", proj.weight), ("proj_b", proj.bias!)]
        #expect(Self.relError(qkvW, Self.tensor(c, "grads", "qkv_w")) < 1e-5)
        #expect(Self.relError(qkvB, Self.tensor(c, "grads", "qkv_b")) < 1e-5)
        for (name, p) in grads {
            let err = Self.relError(p.grad!, Self.tensor(c, "grads", name))
            #expect(err < 1e-5, "grad \(name): \(err)")
        }
    }

    @Test func mlpModuleMatchesPyTorch() {
        let c = "mlp_block"
        func t(_ n: String) -> Tensor { Self.tensor(c, "inputs", n) }
        let fc = Linear(weight: t("fc_w"), bias: t("fc_b"))
        let mlp = FeedForward(gate: nil, up: fc, down: Linear(weight: t("proj_w"), bias: t("proj_b")), activation: .gelu, rng: RandomGenerator(seed: 0))
        let x = t("x"); x.requiresGrad = true
        let out = mlp(x)
        #expect(Self.relError(out, Self.tensor(c, "outputs", "out")) < 1e-5)
        out.backward(t("gout"))
        #expect(Self.relError(x.grad!, Self.tensor(c, "grads", "x")) < 1e-5)
        #expect(Self.relError(fc.weight.grad!, Self.tensor(c, "grads", "fc_w")) < 1e-5)
    }
}
