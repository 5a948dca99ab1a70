import Tensors

/// Sliding windows over a token range: window i starts at start + i·stride and holds context + 1
/// tokens; inputs are its first `context`, targets the same shifted by one. Windows are visited in
/// a shuffled order (a fresh permutation each epoch, from a seeded generator), so the same seed
/// gives the same batches.
public struct SlidingWindowBatches {
    public let file: TokenFile
    public let range: Range<Int>
    public let context: Int, stride: Int, batch: Int
    public let rng: RandomGenerator
    public private(set) var epoch = 0
    public private(set) var cursor = 0
    private var order: [Int] = []

    public init(file: TokenFile, range: Range<Int>, context: Int, stride: Int? = nil, batch: Int, seed: UInt64) throws {
        guard range.count >= context + 1 else {
            throw TrainingError.config("\(range.count) tokens are too few for one window of context \(context) + 1")
        }
        self.file = file; self.range = range; self.context = context; self.stride = stride ?? context; self.batch = batch
        rng = RandomGenerator(seed: seed)
        order = rng.permutation(windowCount)
    }

    public var windowCount: Int { (range.count - context - 1) / stride + 1 }

    /// The next batch: inputs and targets, each B·T ids (row-major (B, T)).
    public mutating func next() -> (inputs: [Int32], targets: [Int32]) { next(rows: 0..<batch) }

    /// Rows `rows` of the next batch (R·T ids each): the iterator moves past the whole batch, so
    /// processes that each take their rows of it together see what one process would.
    public mutating func next(rows: Range<Int>) -> (inputs: [Int32], targets: [Int32]) {
        var inputs: [Int32] = [], targets: [Int32] = []
        inputs.reserveCapacity(rows.count * context); targets.reserveCapacity(rows.count * context)
        for row in 0..<batch {
            if cursor == order.count { epoch += 1; cursor = 0; order = rng.permutation(windowCount) }
            let start = range.lowerBound + order[cursor] * stride
            cursor += 1
            guard rows.contains(row) else { continue }
            let w = file.tokens(start..<(start + context + 1))
            inputs += w[..<context]
            targets += w[1...]
        }
        return (inputs, targets)
    }

    /// Where the iterator stands, for a checkpoint: the generator's state, epoch, cursor and order.
    public var state: [String: [UInt64]] {
        ["rng": rng.snapshot, "epoch": [UInt64(epoch)], "cursor": [UInt64(cursor)], "order": order.map { UInt64($0) }]
    }

    public mutating func restore(_ s: [String: [UInt64]]) throws {
        guard let r = s["rng"], r.count == 4, let e = s["epoch"]?.first, let c = s["cursor"]?.first, let o = s["order"], o.count == windowCount else {
            throw TrainingError.config("checkpoint's batch state does not fit this data (different file, context or stride?)")
        }
        rng.restore(from: RandomGenerator(snapshot: r))
        epoch = Int(e); cursor = Int(c); order = o.map { Int($0) }
    }
}
