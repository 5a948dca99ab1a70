#if LLM_AVX2
import CSIMD
#endif

/// A weight matrix (rows, cols) kept in its storage type: F32, F16, BF16 or ggml blocks (Q8_0,
/// Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q2_K…Q6_K), usually pointing straight into a memory-mapped model file. Nothing is converted
/// at load; kernels read the blocks directly (see QuantizedKernels.swift). Each row is
/// `cols / blockSize` blocks, rows stored one after another (ggml's layout: ne[0] = cols).
///
/// Frozen by nature: there is no gradient for a quantized weight (a LoRA adapter trains beside it).
public final class QuantizedMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int, cols: Int
    public let bytes: UnsafeRawPointer
    /// Bytes of one row.
    public let rowBytes: Int
    /// Keeps the memory alive (the mapped file, or our own buffer).
    let owner: AnyObject?

    /// Wraps `rows · rowBytes` bytes at `bytes`; `cols` must be a multiple of the block size.
    public init(type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawPointer, owner: AnyObject?) {
        precondition(cols % type.blockSize == 0, "QuantizedMatrix: \(cols) columns is not a multiple of \(type.name)'s block of \(type.blockSize)")
        self.type = type
        self.rows = rows
        self.cols = cols
        self.bytes = bytes
        self.rowBytes = type.byteCount(cols)
        self.owner = owner
    }

    public var shape: [Int] { [rows, cols] }
    public var byteCount: Int { rows * rowBytes }

    /// Row r as Float32 into `out` (cols values).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "QuantizedMatrix: row \(r) outside 0..<\(rows)")
        dequantizeBlocks(type, bytes + r * rowBytes, out, count: cols)
    }

    /// The whole matrix as a Float32 tensor (rows, cols).
    public func dequantized() -> Tensor {
        let t = Tensor(uninitialized: [rows, cols])
        let p = t.data
        Parallel.forEachChunk(rows, grain: 64) { rs in
            for r in rs { dequantizeRow(r, into: p + r * cols) }
        }
        return t
    }

    /// Quantizes a Float32 matrix (rows, cols) with ggml's reference rounding (round to nearest;
    /// for the K-quants the reference's search over sub-block scales), rows in parallel.
    public static func quantize(_ t: Tensor, as type: GGMLType) -> QuantizedMatrix {
        precondition(t.rank == 2, "quantize: expected a matrix, got \(Shape.describe(t.shape))")
        let (rows, cols) = (t.shape[0], t.shape[1])
        precondition(cols % type.blockSize == 0, "quantize: \(cols) columns is not a multiple of \(type.name)'s block of \(type.blockSize)")
        let buffer = OwnedBytes(count: type.byteCount(rows * cols))
        quantizeRows(type, t.data, buffer.pointer, rows: rows, cols: cols)
        return QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: UnsafeRawPointer(buffer.pointer), owner: buffer)
    }
}

/// Heap bytes owned by a quantized matrix we made ourselves.
final class OwnedBytes {
    let pointer: UnsafeMutableRawPointer
    init(count: Int) { pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64) }
    deinit { pointer.deallocate() }
}

/// The IEEE half at byte `offset` of `p`, as a Float (exact).
@inline(__always) func loadHalf(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    let bits = p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
#if LLM_AVX2
    // Not `Float(Float16(bitPattern:))`, whose conversion can wait on an unrelated register (a false
    // dependency that chained the blocks of a one-row dot product: about 10 cycles a block instead
    // of 3); see llm_half_to_float in CSIMD/shim.h.
    return llm_half_to_float(bits)
#else
    return Float(Float16(bitPattern: bits))
#endif
}

@inline(__always) func storeHalf(_ v: Float, _ p: UnsafeMutableRawPointer, _ offset: Int = 0) {
    p.storeBytes(of: Float16(v).bitPattern, toByteOffset: offset, as: UInt16.self)
}

/// `count` values of `type` at `src` → Float32 at `out` (also used for safetensors' F16/BF16).
public func dequantizeBlocks(_ type: GGMLType, _ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, count: Int) {
    switch type {
    case .f32:
        UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: count * 4)
    case .f16:
        for i in 0..<count { out[i] = loadHalf(src, 2 * i) }
    case .bf16:
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
    case .q8_0:
        for b in 0..<(count / 32) {
            let blk = src + b * 34, o = out + b * 32
            let d = loadHalf(blk)
            for j in 0..<32 { o[j] = d * Float(blk.load(fromByteOffset: 2 + j, as: Int8.self)) }
        }
    case .q4_0:
        for b in 0..<(count / 32) {
            let blk = src + b * 18, o = out + b * 32
            let d = loadHalf(blk)
            for j in 0..<16 {
                let q = blk.load(fromByteOffset: 2 + j, as: UInt8.self)
                o[j] = d * Float(Int(q & 0x0F) - 8)
                o[j + 16] = d * Float(Int(q >> 4) - 8)
            }
        }
    case .q4_1:
        for b in 0..<(count / 32) {
            let blk = src + b * 20, o = out + b * 32
            let d = loadHalf(blk), m = loadHalf(blk, 2)
            for j in 0..<16 {
                let q = blk.load(fromByteOffset: 4 + j, as: UInt8.self)
                o[j] = d * Float(q & 0x0F) + m
                o[j + 16] = d * Float(q >> 4) + m
            }
        }
    case .q5_0: dequantizeQ5_0(src, out, blocks: count / 32)
    case .q5_1: dequantizeQ5_1(src, out, blocks: count / 32)
    case .q2_K: dequantizeQ2_K(src, out, blocks: count / 256)
    case .q3_K: dequantizeQ3_K(src, out, blocks: count / 256)
    case .q4_K: dequantizeQ4_K(src, out, blocks: count / 256)
    case .q5_K: dequantizeQ4_K(src, out, blocks: count / 256, fifthBits: true)
    case .q6_K: dequantizeQ6_K(src, out, blocks: count / 256)
    case .q8_K: dequantizeQ8_K(src, out, blocks: count / 256)
    }
}

/// `rows` rows of `cols` floats at `src` → `type`'s bytes at `dst` (rows one after another), the
/// rows shared among the threads. The bytes do not depend on the number of threads.
public func quantizeRows(_ type: GGMLType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, rows: Int, cols: Int) {
    let rowBytes = type.byteCount(cols)
    Parallel.forEachChunk(rows, grain: max(1, 16_384 / max(cols, 1))) { rs in
        for r in rs { quantizeBlocks(type, src + r * cols, dst + r * rowBytes, count: cols) }
    }
}

/// Float32 → `count` values of `type` (ggml's reference quantizers: Q8_0 scales by max|x|/127;
/// Q4_0 by the signed value of largest magnitude / −8; Q4_1 spans [min, max] in 15 steps; Q5_0
/// and Q5_1 likewise with −16 and 31 steps; Q8_K as ggml's activations; the K weight types in
/// KQuantQuantizers.swift).
func quantizeBlocks(_ type: GGMLType, _ x: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, count: Int) {
    switch type {
    case .f32:
        dst.copyMemory(from: x, byteCount: count * 4)
    case .f16:
        for i in 0..<count { storeHalf(x[i], dst, 2 * i) }
    case .bf16:   // round to nearest even on the upper 16 bits
        for i in 0..<count {
            let u = x[i].bitPattern
            let rounded = x[i].isNaN ? (u >> 16) | 0x40 : (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16
            dst.storeBytes(of: UInt16(truncatingIfNeeded: rounded), toByteOffset: 2 * i, as: UInt16.self)
        }
    case .q8_0:
        for b in 0..<(count / 32) {
            let v = x + b * 32, blk = dst + b * 34
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(v[j])) }
            let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, blk)
            for j in 0..<32 { blk.storeBytes(of: Int8((v[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self) }
        }
    case .q4_0:
        for b in 0..<(count / 32) {
            let v = x + b * 32, blk = dst + b * 18
            var amax: Float = 0, signedMax: Float = 0
            for j in 0..<32 where abs(v[j]) > amax { amax = abs(v[j]); signedMax = v[j] }
            let d = signedMax / -8, id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, blk)
            for j in 0..<16 {
                let lo = min(15, Int8(v[j] * id + 8.5)), hi = min(15, Int8(v[j + 16] * id + 8.5))
                blk.storeBytes(of: UInt8(lo) | UInt8(hi) << 4, toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    case .q4_1:
        for b in 0..<(count / 32) {
            let v = x + b * 32, blk = dst + b * 20
            var lo = Float.infinity, hi = -Float.infinity
            for j in 0..<32 { lo = min(lo, v[j]); hi = max(hi, v[j]) }
            let d = (hi - lo) / 15, id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, blk)
            storeHalf(lo, blk, 2)
            for j in 0..<16 {
                let a = min(15, UInt8((v[j] - lo) * id + 0.5)), c = min(15, UInt8((v[j + 16] - lo) * id + 0.5))
                blk.storeBytes(of: a | c << 4, toByteOffset: 4 + j, as: UInt8.self)
            }
        }
    case .q5_0: quantizeQ5_0(x, dst, blocks: count / 32)
    case .q5_1: quantizeQ5_1(x, dst, blocks: count / 32)
    case .q8_K: quantizeQ8_KBlocks(x, dst, blocks: count / 256)
    case .q2_K: quantizeQ2_K(x, dst, blocks: count / 256)
    case .q3_K: quantizeQ3_K(x, dst, blocks: count / 256)
    case .q4_K: quantizeQ4_K(x, dst, blocks: count / 256)
    case .q5_K: quantizeQ4_K(x, dst, blocks: count / 256, fifthBits: true)
    case .q6_K: quantizeQ6_K(x, dst, blocks: count / 256)
    }
}
