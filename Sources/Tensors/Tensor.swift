/// An n-dimensional array of Float32 in contiguous row-major order, with reverse-mode autograd.
///
/// A tensor is a reference (like a PyTorch tensor): ops return new tensors and record, when grad
/// mode is on and an input requires grad, how to send gradients back (see Autograd.swift).
/// `reshaped` and slices along the first axis are views that share storage; everything else copies.
public final class Tensor: @unchecked Sendable {
    public let storage: Storage
    /// Index of this tensor's first element inside `storage`.
    public let offset: Int
    public let shape: [Int]
    public let count: Int

    /// Leaves set this to ask for `.grad`; op results inherit it from their inputs.
    public var requiresGrad: Bool
    /// Accumulated gradient (same shape), filled by `backward()`.
    public var grad: Tensor?
    /// How this tensor was made, when autograd recorded it (nil for leaves).
    var node: Node?

    public init(storage: Storage, offset: Int = 0, shape: [Int], requiresGrad: Bool = false) {
        let n = Shape.count(shape)
        precondition(shape.allSatisfy { $0 >= 0 } && offset + n <= storage.count,
                     "Tensor: shape \(Shape.describe(shape)) at offset \(offset) does not fit \(storage.count) floats")
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.count = n
        self.requiresGrad = requiresGrad
    }

    /// Zero-filled tensor.
    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(storage: Storage(count: Shape.count(shape)), shape: shape, requiresGrad: requiresGrad)
    }

    /// A tensor for a kernel to fill: every element must be written before it is read.
    convenience init(uninitialized shape: [Int]) {
        self.init(storage: Storage(uninitializedCount: Shape.count(shape)), shape: shape)
    }

    /// From row-major values.
    public convenience init(shape: [Int], _ values: [Float], requiresGrad: Bool = false) {
        let n = Shape.count(shape)
        precondition(values.count == n, "Tensor: \(values.count) values for shape \(Shape.describe(shape))")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: n) }
        self.requiresGrad = requiresGrad
    }

    public convenience init(_ values: [Float], requiresGrad: Bool = false) {
        self.init(shape: [values.count], values, requiresGrad: requiresGrad)
    }

    /// A 0-dimensional tensor.
    public convenience init(scalar: Float, requiresGrad: Bool = false) {
        self.init(shape: [], [scalar], requiresGrad: requiresGrad)
    }

    /// Pointer to the first element.
    @inlinable public var data: UnsafeMutablePointer<Float> { storage.pointer + offset }
    public var rank: Int { shape.count }
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    /// The values, row-major.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(Shape.describe(shape)) has \(count) elements")
        return data[0]
    }

    /// Element at a full index.
    public subscript(index: Int...) -> Float {
        get { data[flatIndex(index)] }
        set { data[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == rank, "index: \(index.count) indices for shape \(Shape.describe(shape))")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index: \(index) out of range for shape \(Shape.describe(shape))")
            flat = flat * d + i
        }
        return flat
    }

    /// A new tensor with its own copy of the values (not recorded by autograd).
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// The same values, cut off from the graph: no gradient flows through the result.
    public func detached() -> Tensor { Tensor(storage: storage, offset: offset, shape: shape) }

    /// Clears the accumulated gradient.
    public func zeroGrad() { grad = nil }

    /// Fills every element with `value` in place (not recorded by autograd).
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies `source`'s values into this tensor in place; shapes must hold the same count.
    public func assign(_ source: Tensor) {
        precondition(source.count == count, "assign: \(Shape.describe(source.shape)) vs \(Shape.describe(shape))")
        data.update(from: source.data, count: count)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor\(Shape.describe(shape)) [\(shown)\(count > 8 ? ", …" : "")]"
    }
}

// MARK: - Creation

extension Tensor {
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(zeros: shape, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.fill(value)
        t.requiresGrad = requiresGrad
        return t
    }

    /// `start, start+step, ...` below `end`, as in `torch.arange`.
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
        precondition(step != 0, "arange: step 0")
        let n = max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor(shape: [n], (0..<n).map { start + Float($0) * step })
    }

    public static func arange(_ n: Int) -> Tensor { arange(0, Float(n)) }

    /// Standard normal values (times `std`) from our seeded generator.
    public static func randn(_ shape: [Int], std: Float = 1, rng: RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t.data[i] = rng.normal() * std }
        t.requiresGrad = requiresGrad
        return t
    }

    /// Uniform values in `[low, high)` from our seeded generator.
    public static func uniform(_ shape: [Int], _ low: Float, _ high: Float, rng: RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        for i in 0..<t.count { t.data[i] = low + (high - low) * rng.uniform() }
        t.requiresGrad = requiresGrad
        return t
    }
}
