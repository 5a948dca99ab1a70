import Tensors

/// Keys and values of the positions already processed, one pair of buffers per layer, so that
/// generation feeds each new token once instead of re-running the whole prefix.
///
/// keys[layer], values[layer]: (B, Hkv, allocated, D); positions 0..<length are filled. The
/// buffers start small and double when full, up to `capacity` positions (a model with an 8192
/// context does not pay for 8192 positions to answer a short prompt).
/// (It lives in Models rather than Inference because the model's forward pass writes into it.)
public final class KVCache {
    public private(set) var keys: [Tensor], values: [Tensor]
    public private(set) var length = 0
    /// The most positions this cache will hold.
    public let capacity: Int
    let batch: Int, kvHeads: Int, headSize: Int

    public init(layers: Int, batch: Int, kvHeads: Int, headSize: Int, capacity: Int, initial: Int = 64) {
        self.capacity = capacity
        self.batch = batch; self.kvHeads = kvHeads; self.headSize = headSize
        let start = min(capacity, initial)
        keys = (0..<layers).map { _ in Tensor.zeros([batch, kvHeads, start, headSize]) }
        values = (0..<layers).map { _ in Tensor.zeros([batch, kvHeads, start, headSize]) }
    }

    /// Positions the buffers hold now.
    public var allocated: Int { keys.first?.shape[2] ?? 0 }

    /// Writes k and v (B, Hkv, T, D) of `layer` at positions length..<length+T.
    public func write(layer: Int, k: Tensor, v: Tensor) {
        let (b, hkv, t, d) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3])
        precondition(length + t <= capacity, "KVCache: \(length) + \(t) positions exceed the capacity \(capacity)")
        if length + t > keys[layer].shape[2] { grow(layer: layer, to: length + t) }
        let room = keys[layer].shape[2]
        for (src, dst) in [(k, keys[layer]), (v, values[layer])] {
            for bh in 0..<(b * hkv) {
                (dst.data + (bh * room + length) * d).update(from: src.data + bh * t * d, count: t * d)
            }
        }
    }

    /// Reallocates one layer's buffers to hold at least `needed` positions (doubling), keeping the filled ones.
    private func grow(layer: Int, to needed: Int) {
        var room = max(keys[layer].shape[2], 1)
        while room < needed { room *= 2 }
        room = min(room, capacity)
        let old = keys[layer].shape[2]
        for isKey in [true, false] {
            let src = isKey ? keys[layer] : values[layer]
            let dst = Tensor.zeros([batch, kvHeads, room, headSize])
            for bh in 0..<(batch * kvHeads) {
                (dst.data + bh * room * headSize).update(from: src.data + bh * old * headSize, count: length * headSize)
            }
            if isKey { keys[layer] = dst } else { values[layer] = dst }
        }
    }

    /// Marks `count` more positions as filled (after every layer has written them).
    public func advance(_ count: Int) { length += count }

    /// Forgets everything (the buffers are reused).
    public func reset() { length = 0 }

    /// Forgets the positions from `newLength` on (e.g. to rewind a chat turn).
    public func truncate(to newLength: Int) {
        precondition(newLength >= 0 && newLength <= length, "KVCache: cannot truncate \(length) positions to \(newLength)")
        length = newLength
    }
}
