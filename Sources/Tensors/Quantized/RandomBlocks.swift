/// Random but valid weight matrices in any block format, for tests and benchmarks: formats we can
/// quantize come from normal(0, 1) floats; the K-quants (no quantizer here yet) get random bytes
/// for their packed values and sub-block scales, and finite f16 super-block scales of a sensible
/// size (weights of magnitude ~0.1–3), with a random sign where the format allows one.
extension QuantizedMatrix {
    public static func random(_ type: GGMLType, rows: Int, cols: Int, rng: RandomGenerator) -> QuantizedMatrix {
        guard type.isKQuant && type != .q8_K else { return quantize(Tensor.randn([rows, cols], rng: rng), as: type) }
        precondition(cols % 256 == 0, "random: \(cols) columns is not a multiple of \(type.name)'s block of 256")
        let count = type.byteCount(rows * cols)
        let buffer = OwnedBytes(count: count)
        let p = buffer.pointer
        var i = 0
        while i < count {
            let v = rng.next()
            for k in 0..<Swift.min(8, count - i) { p.storeBytes(of: UInt8(truncatingIfNeeded: v >> (8 * k)), toByteOffset: i + k, as: UInt8.self) }
            i += 8
        }
        func scale(_ size: Float, signed: Bool) -> Float {
            let s = (0.5 + 1.5 * rng.uniform()) * size
            return signed && rng.uniform() < 0.5 ? -s : s
        }
        for b in 0..<(rows * cols / 256) {
            let blk = p + b * type.blockBytes
            switch type {
            case .q2_K: storeHalf(scale(1e-2, signed: false), blk, 80); storeHalf(scale(1e-2, signed: false), blk, 82)
            case .q3_K: storeHalf(scale(1e-2, signed: true), blk, 108)
            case .q4_K, .q5_K: storeHalf(scale(1e-2, signed: false), blk); storeHalf(scale(1e-2, signed: false), blk, 2)
            case .q6_K: storeHalf(scale(1e-3, signed: true), blk, 208)
            default: break
            }
        }
        return QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: UnsafeRawPointer(p), owner: buffer)
    }
}
