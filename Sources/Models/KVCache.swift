import Tensors

/// Keys and values of the positions already processed, one pair of buffers per layer, so that
/// generation feeds each new token once instead of re-running the whole prefix.
///
/// keys[layer], values[layer]: (B, Hkv, capacity, D); positions 0..<length are filled.
/// (It lives in Models rather than Inference because the model's forward pass writes into it.)
public final class KVCache {
    public let keys: [Tensor], values: [Tensor]
    public private(set) var length = 0
    public let capacity: Int

    public init(layers: Int, batch: Int, kvHeads: Int, headSize: Int, capacity: Int) {
        self.capacity = capacity
        keys = (0..<layers).map { _ in Tensor.zeros([batch, kvHeads, capacity, headSize]) }
        values = (0..<layers).map { _ in Tensor.zeros([batch, kvHeads, capacity, headSize]) }
    }

    /// Writes k and v (B, Hkv, T, D) of `layer` at positions length..<length+T.
    public func write(layer: Int, k: Tensor, v: Tensor) {
        let (b, hkv, t, d) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3])
        precondition(length + t <= capacity, "KVCache: \(length) + \(t) positions exceed the capacity \(capacity)")
        for (src, dst) in [(k, keys[layer]), (v, values[layer])] {
            for bh in 0..<(b * hkv) {
                (dst.data + (bh * capacity + length) * d).update(from: src.data + bh * t * d, count: t * d)
            }
        }
    }

    /// Marks `count` more positions as filled (after every layer has written them).
    public func advance(_ count: Int) { length += count }

    /// Forgets everything (the buffers are reused).
    public func reset() { length = 0 }
}
