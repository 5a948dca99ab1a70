/// Reverse-mode automatic differentiation.
///
/// Every op that sees an input with `requiresGrad` (while grad mode is on) gives its result a
/// `Node`: the inputs, and a closure that maps the result's gradient to the inputs' gradients.
/// `backward()` orders the recorded graph with an explicit stack (no recursion, so a graph of any
/// depth is safe), walks it from the output back, sums the gradients that meet at a tensor, and
/// adds what reaches a leaf into its `.grad`. Saved tensors are released as the walk passes them.
final class Node {
    let op: String
    let inputs: [Tensor]
    /// Given d(loss)/d(output), returns d(loss)/d(input) for each input (nil: not needed).
    let backward: (Tensor) -> [Tensor?]

    init(op: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.op = op
        self.inputs = inputs
        self.backward = backward
    }
}

public enum Autograd {
    /// Grad mode is per task (and per thread outside tasks), so one model can train while another
    /// thread runs inference under `withNoGrad`.
    @TaskLocal static var recording = true

    /// Whether ops record the graph. Off inside `withNoGrad` and during `backward()`.
    public static var isEnabled: Bool { recording }

    /// Runs `body` without recording anything: for inference and for parameter updates.
    public static func withNoGrad<T>(_ body: () throws -> T) rethrows -> T {
        try $recording.withValue(false) { try body() }
    }

    /// Runs `body` with recording back on (inside a `withNoGrad`).
    public static func withGrad<T>(_ body: () throws -> T) rethrows -> T {
        try $recording.withValue(true) { try body() }
    }

    /// Attaches a backward closure to `output` when any input needs a gradient.
    @inline(__always)
    static func record(_ output: Tensor, _ op: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            output.requiresGrad = true
            output.node = Node(op: op, inputs: inputs, backward: backward)
        }
        return output
    }
}

public func withNoGrad<T>(_ body: () throws -> T) rethrows -> T { try Autograd.withNoGrad(body) }

extension Autograd {
    /// A differentiable op written outside this module: `output` was computed by the caller (with
    /// grad mode off), `backward` maps its gradient to a gradient for each of `inputs` (nil: none).
    /// The closure keeps alive only what it captures; record as little as the backward needs.
    public static func custom(_ output: Tensor, op: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        record(output, op, inputs, backward)
    }
}

extension Tensor {
    /// The name of the op that made this tensor, if autograd recorded it.
    public var gradFunction: String? { node?.op }

    /// Back-propagates from this tensor. `gradient` is d(loss)/d(self); it defaults to 1 for a
    /// one-element tensor. Gradients add into the leaves' `.grad`; the graph is freed afterwards.
    /// `leafReady`, when given, is called with each leaf (a parameter) the moment its gradient is
    /// final, that is right after the last node that feeds it has run: data-parallel training
    /// starts averaging a bucket of gradients across processes while the rest of the backward
    /// pass goes on.
    public func backward(_ gradient: Tensor? = nil, leafReady: ((Tensor) -> Void)? = nil) {
        precondition(requiresGrad, "backward: tensor does not require grad")
        let seed = gradient ?? Tensor.ones(shape)
        precondition(seed.shape == shape || (gradient == nil && count == 1),
                     "backward: gradient \(Shape.describe(seed.shape)) vs output \(Shape.describe(shape))")

        // 1. Topological order of the recorded nodes (post-order, iterative).
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, expanded: Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            guard t.node != nil, visited.insert(ObjectIdentifier(t)).inserted else { continue }
            stack.append((t, true))
            for input in t.node!.inputs where input.node != nil && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }

        // With a leafReady hook: the leaves each backward step is the last to feed.
        let steps = Array(order.reversed())
        var completes: [[Tensor]] = []
        if leafReady != nil {
            // (In input order within a step, so every process that runs the same graph sees the
            // leaves in the same order.)
            var last: [ObjectIdentifier: Int] = [:]
            for (i, t) in steps.enumerated() {
                for input in t.node?.inputs ?? [] where input.node == nil && input.requiresGrad { last[ObjectIdentifier(input)] = i }
            }
            completes = Array(repeating: [], count: steps.count)
            for (i, t) in steps.enumerated() {
                for input in t.node?.inputs ?? [] where last[ObjectIdentifier(input)] == i {
                    last[ObjectIdentifier(input)] = -1                  // once, even if a node takes it twice
                    completes[i].append(input)
                }
            }
        }

        // 2. Walk from the output back to the leaves.
        Autograd.withNoGrad {
            if node == nil { accumulateGrad(seed); leafReady?(self); return }
            var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
            for (i, t) in steps.enumerated() {
                defer { if let leafReady { for leaf in completes[i] { leafReady(leaf) } } }
                guard let node = t.node else { continue }
                t.node = nil                     // free saved tensors as we go
                t.requiresGrad = false
                guard let g = pending.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                let inputGrads = node.backward(g)
                for (input, ig) in zip(node.inputs, inputGrads) {
                    guard let ig, input.requiresGrad else { continue }
                    precondition(ig.shape == input.shape,
                                 "\(node.op) backward: gradient \(Shape.describe(ig.shape)) vs input \(Shape.describe(input.shape))")
                    if input.node == nil {
                        input.accumulateGrad(ig)
                    } else {
                        let key = ObjectIdentifier(input)
                        pending[key] = pending[key].map { $0 + ig } ?? ig
                    }
                }
            }
        }
    }

    /// Adds `g` into `.grad` (a private copy on first arrival, since `g` may be shared).
    func accumulateGrad(_ g: Tensor) {
        if let existing = grad {
            let d = existing.data, s = g.data
            for i in 0..<count { d[i] += s[i] }
        } else {
            grad = g.copy()
        }
    }
}
