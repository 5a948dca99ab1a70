/// Shape arithmetic and the shape errors every op reports.
///
/// Each op validates its operands through a throwing function here (`Shape.broadcast`,
/// `Shape.matmul`, ...). The op itself traps with that message (a programming error, like an
/// out-of-range array index), while code that handles user input — model loaders, the CLI — can
/// call the same validators first and turn a bad shape into an ordinary thrown error.
public enum Shape {
    /// `(4, 16, 128)`; a scalar is `()`.
    public static func describe(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Row-major strides in elements.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// NumPy broadcasting of two shapes.
    public static func broadcast(_ a: [Int], _ b: [Int], op: String) throws(ShapeError) -> [Int] {
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            guard da == db || da == 1 || db == 1 else { throw ShapeError(op: op, a, b) }
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// Strides (in elements) that read a contiguous tensor of shape `from` as if it had shape `to`
    /// (which `from` broadcasts to): 0 along broadcast dimensions.
    static func broadcastStrides(from: [Int], to: [Int]) -> [Int] {
        let s = strides(from)
        let pad = to.count - from.count
        return (0..<to.count).map { i in i < pad || from[i - pad] == 1 && to[i] != 1 ? 0 : s[i - pad] }
    }

    /// Resolves one `-1` in a requested shape.
    public static func resolve(_ shape: [Int], count: Int, op: String = "reshape", from: [Int]) throws(ShapeError) -> [Int] {
        var out = shape
        let known = shape.filter { $0 != -1 }.reduce(1, *)
        let holes = shape.indices.filter { shape[$0] == -1 }
        if holes.count > 1 || shape.contains(where: { $0 < -1 }) { throw ShapeError(op: op, from, shape) }
        if let h = holes.first {
            guard known > 0, count % known == 0 else { throw ShapeError(op: op, from, shape) }
            out[h] = count / known
        }
        guard Shape.count(out) == count else { throw ShapeError(op: op, from, shape) }
        return out
    }

    /// Normalizes a possibly negative axis.
    public static func axis(_ axis: Int, rank: Int, op: String) throws(ShapeError) -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < max(rank, 1) else {
            throw ShapeError(op: op, message: "axis \(axis) out of range for rank \(rank)")
        }
        return a
    }
}

/// A shape mismatch, naming the op and the shapes: `matmul: (4, 16, 128) vs (4, 12, 128)`.
public struct ShapeError: Error, CustomStringConvertible, Equatable {
    public let op: String
    public let message: String

    public init(op: String, message: String) { self.op = op; self.message = message }
    public init(op: String, _ a: [Int], _ b: [Int]) {
        self.init(op: op, message: "\(Shape.describe(a)) vs \(Shape.describe(b))")
    }
    public var description: String { "\(op): \(message)" }
}

/// Runs a shape validation inside an op; a failure stops the program with the error's message.
@inline(__always)
func validate<T>(_ body: () throws(ShapeError) -> T) -> T {
    do { return try body() } catch { fatalError(error.description) }
}
