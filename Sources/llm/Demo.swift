import ArgumentParser
import Foundation
import NN
import Tensors

/// `llm demo`: trains a small MLP with the engine on a generated task (three interleaved spirals),
/// printing the falling loss, then checks its gradients against finite differences.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a small MLP on a generated task and check its gradients by finite differences.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Training steps.") var steps = 600
    @Option(help: "Points per class.") var points = 200
    @Option(help: "Hidden width.") var hidden = 64
    @Option(help: "Peak learning rate.") var lr: Float = 0.01
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func validate() throws {
        try positive(steps, "--steps", max: 1 << 30)
        try positive(points, "--points", max: 1 << 20)
        try positive(hidden, "--hidden", max: 1 << 14)
        try positive(lr, "--lr")
    }

    func run() throws {
        global.apply()
        let rng = RandomGenerator(seed: seed)
        let (x, y) = spirals(classes: 3, perClass: points, rng: rng)             // x (N, 2), y [N]
        print("task: \(3 * points) points on 3 interleaved spirals, classify each point's arm")

        let model = Sequential([Linear(2, hidden, rng: rng), Linear(hidden, hidden, rng: rng), Linear(hidden, 3, rng: rng)])
        print("model: 2 → \(hidden) → \(hidden) → 3 MLP with tanh, \(model.parameterCount) parameters")
        for (name, t) in model.namedParameters() { print("  \(name.padding(14)) \(Shape.describe(t.shape))") }

        let optimizer = AdamW(ParameterGroup.decayMatrices(of: model, weightDecay: 1e-4), learningRate: lr)
        let schedule = WarmupCosineLR(maxLR: lr, minLR: lr / 10, warmupSteps: steps / 20, decaySteps: steps)
        let start = Date()
        for step in 0..<steps {
            optimizer.learningRate = schedule.learningRate(at: step)
            let loss = model(x).crossEntropy(targets: y)
            optimizer.zeroGrad()
            loss.backward()
            let norm = clipGradNorm(model.parameters, maxNorm: 1)
            optimizer.step()
            if step % max(1, steps / 12) == 0 || step == steps - 1 {
                let acc = accuracy(model(x), y)
                print("step \(String(step).padding(5, left: true))  loss \(fmt(loss.item))  accuracy \(fmt(acc * 100, 1))%  grad norm \(fmt(norm))  lr \(fmt(optimizer.learningRate, 5))")
            }
        }
        print("trained in \(fmt(Float(Date().timeIntervalSince(start)), 2)) s (unigram baseline loss \(fmt(Foundation.log(3))))")

        print("\nfinite-difference gradient check (central differences, eps 1e-2, error = |autograd − numeric| / max(1, |·|)):")
        let small = Sequential([Linear(2, 8, rng: rng), Linear(8, 8, rng: rng), Linear(8, 3, rng: rng)])
        let xs = x.slice(axis: 0, 0..<16).copy()
        let ys = Array(y[0..<16])
        let report = GradCheck.run(small.parameters + [xs]) { small(xs).crossEntropy(targets: ys) }
        print("  MLP + cross-entropy: \(report)")
        for (name, check) in opChecks(rng) { print("  \(name.padding(22)) max error \(check.maxError)") }
    }

    /// A few ops checked the same way, so the demo shows the engine's calculus at work.
    func opChecks(_ rng: RandomGenerator) -> [(String, GradCheck.Result)] {
        let a = Tensor.randn([3, 5], rng: rng), b = Tensor.randn([5], rng: rng)
        let q = Tensor.randn([1, 2, 4, 3], rng: rng), k = Tensor.randn([1, 2, 4, 3], rng: rng), v = Tensor.randn([1, 2, 4, 3], rng: rng)
        let w = Tensor.randn([5], rng: rng)
        return [
            ("broadcast mul + sum", GradCheck.run([a, b]) { (a * b).sum(axis: 0) }),
            ("softmax", GradCheck.run([a]) { a.softmax() }),
            ("layer norm", GradCheck.run([a, w, b]) { a.layerNorm(weight: w, bias: b) }),
            ("gelu (tanh)", GradCheck.run([a]) { a.geluTanh() }),
            ("causal attention", GradCheck.run([q, k, v]) { causalAttention(q, k, v) }),
        ]
    }
}

/// Linear layers with tanh between them.
final class Sequential: Module {
    var layers: [Linear]
    init(_ layers: [Linear]) { self.layers = layers }
    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for (i, layer) in layers.enumerated() { h = layer(h); if i < layers.count - 1 { h = h.tanh() } }
        return h
    }
}

/// `classes` spiral arms with noise: x (classes·perClass, 2), labels [classes·perClass].
func spirals(classes: Int, perClass: Int, rng: RandomGenerator) -> (Tensor, [Int32]) {
    var xs: [Float] = [], ys: [Int32] = []
    for c in 0..<classes {
        for i in 0..<perClass {
            let r = Float(i) / Float(perClass)
            let theta = Float(c) * 2 * .pi / Float(classes) + r * 4 + rng.normal() * 0.15
            xs += [r * Foundation.cos(theta), r * Foundation.sin(theta)]
            ys.append(Int32(c))
        }
    }
    return (Tensor(shape: [classes * perClass, 2], xs), ys)
}

func accuracy(_ logits: Tensor, _ y: [Int32]) -> Float {
    let v = logits.shape[1]
    var right = 0
    for (i, t) in y.enumerated() {
        let row = Array(logits.scalars[(i * v)..<((i + 1) * v)])
        if row.firstIndex(of: row.max()!) == Int(t) { right += 1 }
    }
    return Float(right) / Float(y.count)
}

func fmt(_ x: Float, _ digits: Int = 4) -> String { String(format: "%.\(digits)f", x) }

extension String {
    /// Pads with spaces to `width` (String(format: "%-20s") prints nothing on Linux).
    func padding(_ width: Int, left: Bool = false) -> String {
        count >= width ? self : (left ? String(repeating: " ", count: width - count) + self
                                      : self + String(repeating: " ", count: width - count))
    }
}
