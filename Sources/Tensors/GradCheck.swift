/// Finite-difference gradient check: compares autograd's gradients with central differences.
///
/// The function's output is reduced to L = Σ out ⊙ w with fixed random weights w (summed in
/// Double), so every output element takes part. Each input element is nudged by ±eps and
/// (L(x + eps) − L(x − eps)) / 2eps is compared with the autograd gradient. The error of an element
/// is |analytic − numeric| / max(1, |analytic|, |numeric|): relative for large gradients, absolute
/// for small ones (float32 differences cannot resolve small gradients more finely).
public enum GradCheck {
    public struct Result: CustomStringConvertible {
        public let maxError: Float
        public let checked: Int
        /// Input index and element index of the worst element.
        public let worst: (input: Int, element: Int)
        public var description: String {
            "\(checked) elements, max error \(maxError) (input \(worst.input), element \(worst.element))"
        }
    }

    public static func run(_ inputs: [Tensor], eps: Float = 1e-2, seed: UInt64 = 7, _ f: () -> Tensor) -> Result {
        for x in inputs { x.requiresGrad = true; x.grad = nil }
        let out = f()
        let w = Tensor.randn(out.shape, rng: RandomGenerator(seed: seed))
        out.backward(w)
        func loss() -> Double {
            let o = withNoGrad { f() }
            var s = 0.0
            for i in 0..<o.count { s += Double(o.data[i]) * Double(w.data[i]) }
            return s
        }
        var maxError: Float = 0, worst = (0, 0), checked = 0
        for (k, x) in inputs.enumerated() {
            let analytic = x.grad ?? Tensor.zeros(x.shape)
            for i in 0..<x.count {
                let saved = x.data[i]
                x.data[i] = saved + eps; let up = loss()
                x.data[i] = saved - eps; let down = loss()
                x.data[i] = saved
                let numeric = Float((up - down) / Double(2 * eps))
                let a = analytic.data[i]
                let err = abs(a - numeric) / Swift.max(1, abs(a), abs(numeric))
                checked += 1
                if err > maxError || err.isNaN { maxError = err; worst = (k, i) }
            }
        }
        return Result(maxError: maxError, checked: checked, worst: worst)
    }
}
