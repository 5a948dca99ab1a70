import Foundation
import Tensors

/// The keys and values one attention layer has computed for one sequence, so that generation
/// feeds each new token once instead of re-running the whole prefix.
///
/// Rows are token-major: row r holds the keys (or values) of every kv head of one position,
/// (Hkv·D) floats, exactly as the k and v projections produce them, so writing is one copy and
/// the attention kernel reads heads with strides.
public protocol LayerCache: AnyObject {
    /// Positions written so far.
    var length: Int { get }
    /// Positions whose keys are still held (a sliding window drops the oldest).
    var stored: Int { get }
    /// Writes `count` rows of keys and values ((count, Hkv·D) each) for positions
    /// length..<length+count and returns the rows attention reads: keys and values (rows, Hkv·D),
    /// the last `count` of them the new ones, in position order.
    func append(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int)
        -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, rows: Int)
    /// Whether the positions from `newLength` on can be forgotten and recomputed (a sliding
    /// window cannot go back past what it has dropped).
    func canTruncate(to newLength: Int) -> Bool
    func truncate(to newLength: Int)
    /// Forgets every position (always possible; the buffers are kept).
    func reset()
    /// Bytes held by the buffers.
    var bytes: Int { get }
}

/// Rows in a growable buffer, shared by both caches: room doubles when full.
struct CacheRows {
    let width: Int                       // Hkv·D
    private(set) var keys: Tensor, values: Tensor       // (room, width)
    var room: Int { keys.shape[0] }

    init(width: Int, room: Int) {
        self.width = width
        keys = Tensor.zeros([max(room, 1), width])
        values = Tensor.zeros([max(room, 1), width])
    }

    /// Makes room for `needed` rows after `begin`, keeping rows begin..<begin+count; returns true
    /// when it moved them to the front (the caller's `begin` becomes 0).
    mutating func reserve(_ needed: Int, keeping begin: Int, _ count: Int, limit: Int) -> Bool {
        if begin + needed <= room { return false }
        if needed <= room {                                     // enough room: slide the kept rows to the front
            for t in [keys, values] { memmove(t.data, t.data + begin * width, count * width * 4) }
            return true
        }
        var newRoom = room
        while newRoom < needed { newRoom *= 2 }
        newRoom = min(max(newRoom, needed), max(limit, needed))
        let k = Tensor.zeros([newRoom, width]), v = Tensor.zeros([newRoom, width])
        k.data.update(from: keys.data + begin * width, count: count * width)
        v.data.update(from: values.data + begin * width, count: count * width)
        keys = k; values = v
        return true
    }

    func write(at row: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count: Int) {
        (keys.data + row * width).update(from: k, count: count * width)
        (values.data + row * width).update(from: v, count: count * width)
    }

    var bytes: Int { 2 * room * width * 4 }
}

/// Every position of the sequence, up to `capacity`. Buffers start small (64 positions) and
/// double when full, so a model with an 8192 context does not pay for 8192 positions to answer a
/// short prompt.
public final class FullLayerCache: LayerCache {
    public let capacity: Int
    public private(set) var length = 0
    private var rows: CacheRows

    public init(width: Int, capacity: Int, initial: Int = 64) {
        self.capacity = capacity
        rows = CacheRows(width: width, room: min(capacity, initial))
    }

    public var stored: Int { length }
    public var bytes: Int { rows.bytes }

    public func append(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int)
        -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, rows: Int) {
        precondition(length + count <= capacity, "cache: \(length) + \(count) positions exceed the capacity \(capacity)")
        _ = rows.reserve(length + count, keeping: 0, length, limit: capacity)
        rows.write(at: length, keys: keys, values: values, count: count)
        length += count
        return (UnsafePointer(rows.keys.data), UnsafePointer(rows.values.data), length)
    }

    public func canTruncate(to newLength: Int) -> Bool { newLength >= 0 && newLength <= length }
    public func truncate(to newLength: Int) {
        precondition(canTruncate(to: newLength), "cache: cannot truncate \(length) positions to \(newLength)")
        length = newLength
    }

    public func reset() { length = 0 }
}

/// A sliding-window layer's cache: a query sees only the `window` most recent positions
/// (itself included), so only the last window − 1 positions are kept between steps. New rows are
/// appended after them; when the buffer is full the kept rows slide to its front (amortized: once
/// per buffer's worth of tokens). Memory stays about 2 × (window + longest chunk) rows however long
/// the sequence grows.
public final class SlidingWindowLayerCache: LayerCache {
    public let window: Int
    public private(set) var length = 0
    /// Rows begin..<begin+stored hold positions length−stored..<length.
    private var begin = 0
    public private(set) var stored = 0
    private var rows: CacheRows

    public init(width: Int, window: Int, initial: Int = 64) {
        precondition(window > 0, "sliding-window cache: window \(window)")
        self.window = window
        rows = CacheRows(width: width, room: min(2 * window, initial))
    }

    public var bytes: Int { rows.bytes }

    public func append(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int)
        -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, rows: Int) {
        // Drop what no query from here on can see: keep the last window − 1 positions.
        let keep = min(stored, window - 1)
        begin += stored - keep
        stored = keep
        if rows.reserve(stored + count, keeping: begin, stored, limit: 2 * (window + count)) { begin = 0 }
        rows.write(at: begin + stored, keys: keys, values: values, count: count)
        stored += count
        length += count
        return (UnsafePointer(rows.keys.data + begin * rows.width), UnsafePointer(rows.values.data + begin * rows.width), stored)
    }

    /// Rewinding is possible while every key the new last position's window needs is still held.
    public func canTruncate(to newLength: Int) -> Bool {
        let first = length - stored                            // oldest position held
        return newLength >= 0 && newLength <= length && (first == 0 || first <= newLength - (window - 1))
    }

    public func truncate(to newLength: Int) {
        precondition(canTruncate(to: newLength), "sliding-window cache: cannot truncate \(length) positions to \(newLength)")
        stored -= length - newLength
        length = newLength
    }

    public func reset() { length = 0; stored = 0; begin = 0 }
}

/// One sequence's cache: a `LayerCache` per layer (full or sliding-window, as the layer's kind
/// asks) and the number of positions the sequence has consumed. Each sequence of a batch owns
/// one, so sequences can join and leave a batch between steps.
public final class KVCache {
    public let layers: [any LayerCache]
    /// The most positions this sequence may reach (the model's context, or less).
    public let capacity: Int
    /// Positions processed so far (every layer has written them).
    public internal(set) var length = 0

    public init(layers: [any LayerCache], capacity: Int) {
        self.layers = layers
        self.capacity = capacity
    }

    /// Positions that still fit.
    public var remaining: Int { capacity - length }

    /// Forgets everything (the buffers are reused).
    public func reset() {
        for l in layers { l.reset() }
        length = 0
    }

    /// Forgets the positions from `newLength` on (e.g. to rewind a chat turn). A sliding-window
    /// layer that has already dropped keys the new end still needs makes this an error.
    public func truncate(to newLength: Int) throws(ModelError) {
        guard newLength >= 0 && newLength <= length else {
            throw .input("cannot rewind a cache of \(length) positions to \(newLength)")
        }
        guard layers.allSatisfy({ $0.canTruncate(to: newLength) }) else {
            throw .input("cannot rewind to position \(newLength): a sliding-window layer has already dropped keys it needs (cache at \(length))")
        }
        for l in layers { l.truncate(to: newLength) }
        length = newLength
    }

    /// Bytes held by every layer's buffers.
    public var bytes: Int { layers.reduce(0) { $0 + $1.bytes } }
}
