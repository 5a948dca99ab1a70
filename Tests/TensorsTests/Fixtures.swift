import Foundation
import Tensors

/// Reference fixtures written by scripts/fixtures/*.py (PyTorch), loaded without any Python.
struct FixtureCase {
    let inputs: [String: Any]
    let outputs: [String: Any]
    let grads: [String: Any]
    let extra: [String: Any]

    func tensor(_ name: String, in dict: [String: Any]? = nil) -> Tensor {
        guard let t = (dict ?? inputs)[name] as? [String: Any],
              let shape = t["shape"] as? [Int], let data = t["data"] as? [Double] else {
            fatalError("fixture: no tensor '\(name)'")
        }
        return Tensor(shape: shape, data.map { Float($0) })
    }
    func input(_ name: String) -> Tensor { tensor(name) }
    func output(_ name: String = "out") -> Tensor { tensor(name, in: outputs) }
    func grad(_ name: String) -> Tensor { tensor(name, in: grads) }
    func ints(_ name: String) -> [Int32] {
        guard let t = inputs[name] as? [String: Any], let data = t["data"] as? [Int] else { fatalError("fixture: no ints '\(name)'") }
        return data.map { Int32($0) }
    }
    var gradNames: [String] { grads.keys.sorted() }
}

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    nonisolated(unsafe) static var cache: [String: [String: FixtureCase]] = [:]
    static let lock = NSLock()

    static func load(_ file: String) -> [String: FixtureCase] {
        lock.lock(); defer { lock.unlock() }
        if let c = cache[file] { return c }
        let data = try! Data(contentsOf: directory.appendingPathComponent(file))
        let root = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        var out: [String: FixtureCase] = [:]
        for (name, value) in root["cases"] as! [String: Any] {
            let c = value as! [String: Any]
            out[name] = FixtureCase(inputs: c["inputs"] as? [String: Any] ?? [:], outputs: c["outputs"] as? [String: Any] ?? [:],
                                    grads: c["grads"] as? [String: Any] ?? [:], extra: c["extra"] as? [String: Any] ?? [:])
        }
        cache[file] = out
        return out
    }
}

/// Largest element-wise relative error of `a` against the reference `b`: |a − b| / max(|b|, floor),
/// with the floor at 10 % of b's largest magnitude. Elements far below the tensor's scale come out of
/// sums of larger terms and carry their float32 rounding (over a 130-key attention row PyTorch's own
/// float32 result is 1e-5 off its float64 one at such elements), so they are judged at that scale.
/// Shapes must match.
func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    let scale = b.scalars.map(abs).max() ?? 0
    let floor = Swift.max(scale * 1e-1, Float.leastNormalMagnitude)
    var worst: Float = 0
    for i in 0..<a.count {
        let e = abs(a.data[i] - b.data[i]) / Swift.max(abs(b.data[i]), floor)
        if !(e <= worst) { worst = e }
    }
    return worst
}
