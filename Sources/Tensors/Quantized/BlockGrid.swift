/// One value of a quantized block seen as a point on its block's grid: value j of a block is
/// scale·q + offset for an integer level q in bottom…top, where scale and offset come from the
/// block's (and sub-block's) stored scales. GPTQ fixes a block's scales first (by the type's own
/// round-to-nearest on the block), then chooses each value's level itself, column by column,
/// feeding the rounding error forward; `setLevel` writes that level into the block's bits.
public struct GridPoint: Sendable {
    public let scale: Float
    public let offset: Float
    public let bottom: Int32
    public let top: Int32

    /// The level nearest to x on this grid (round half to even, clamped); the lowest level when
    /// the grid has no step (scale 0).
    @inline(__always)
    public func level(_ x: Float) -> Int32 {
        guard scale != 0 else { return max(bottom, min(top, 0)) }
        return max(bottom, min(top, nearestInt((x - offset) / scale)))
    }

    @inline(__always)
    public func value(_ q: Int32) -> Float { scale * Float(q) + offset }
}

extension GGMLType {
    /// The grid of value j (0 ≤ j < blockSize) of the block at `block`.
    public func grid(_ block: UnsafeRawPointer, _ j: Int) -> GridPoint {
        @inline(__always) func byte(_ i: Int) -> UInt8 { block.load(fromByteOffset: i, as: UInt8.self) }
        switch self {
        case .q8_0:
            return GridPoint(scale: loadHalf(block), offset: 0, bottom: -127, top: 127)
        case .q4_0:
            let d = loadHalf(block)
            return GridPoint(scale: d, offset: -8 * d, bottom: 0, top: 15)
        case .q4_1:
            return GridPoint(scale: loadHalf(block), offset: loadHalf(block, 2), bottom: 0, top: 15)
        case .q5_0:
            let d = loadHalf(block)
            return GridPoint(scale: d, offset: -16 * d, bottom: 0, top: 31)
        case .q5_1:
            return GridPoint(scale: loadHalf(block), offset: loadHalf(block, 2), bottom: 0, top: 31)
        case .q2_K:
            let sc = byte(j / 16)
            return GridPoint(scale: loadHalf(block, 80) * Float(sc & 0x0F), offset: -(loadHalf(block, 82) * Float(sc >> 4)), bottom: 0, top: 3)
        case .q3_K:
            let a = loadHalf(block, 108) * Float(q3Scale(block + 96, j / 16) - 32)
            return GridPoint(scale: a, offset: -4 * a, bottom: 0, top: 7)
        case .q4_K, .q5_K:
            let (sc, m) = scaleMin(block + 4, j / 32)
            return GridPoint(scale: loadHalf(block) * Float(sc), offset: -(loadHalf(block, 2) * Float(m)), bottom: 0, top: self == .q4_K ? 15 : 31)
        case .q6_K:
            let a = loadHalf(block, 208) * Float(block.load(fromByteOffset: 192 + j / 16, as: Int8.self))
            return GridPoint(scale: a, offset: -32 * a, bottom: 0, top: 63)
        case .f32, .f16, .bf16, .q8_K:
            preconditionFailure("grid: \(name) has no block grid")
        }
    }

    /// Writes level q (within the grid's bottom…top) as value j of the block at `block`.
    public func setLevel(_ block: UnsafeMutableRawPointer, _ j: Int, _ q: Int32) {
        @inline(__always) func get(_ i: Int) -> UInt8 { block.load(fromByteOffset: i, as: UInt8.self) }
        @inline(__always) func set(_ i: Int, _ v: UInt8) { block.storeBytes(of: v, toByteOffset: i, as: UInt8.self) }
        /// The nibble of value j in 32 bytes at `at` holding values l (low) and l + half (high).
        @inline(__always) func nibble(_ at: Int, _ l: Int, high: Bool, _ v: UInt8) {
            let old = get(at + l)
            set(at + l, high ? (old & 0x0F) | (v & 0x0F) << 4 : (old & 0xF0) | (v & 0x0F))
        }
        @inline(__always) func bit(_ at: Int, _ index: Int, _ on: Bool) {
            let old = get(at + index / 8), mask = UInt8(1) << UInt8(index % 8)
            set(at + index / 8, on ? old | mask : old & ~mask)
        }
        let v = UInt8(truncatingIfNeeded: q)
        switch self {
        case .q8_0:
            block.storeBytes(of: Int8(truncatingIfNeeded: q), toByteOffset: 2 + j, as: Int8.self)
        case .q4_0, .q4_1:
            nibble(self == .q4_0 ? 2 : 4, j % 16, high: j >= 16, v)
        case .q5_0, .q5_1:
            let at = self == .q5_0 ? 2 : 4
            bit(at, j, v & 16 != 0)
            nibble(at + 4, j % 16, high: j >= 16, v)
        case .q2_K, .q3_K:
            // Per 128 values, byte l of 32 holds values l, l + 32, l + 64, l + 96 in bit pairs.
            let at = (self == .q2_K ? 16 : 32) + (j / 128) * 32 + j % 32, shift = UInt8(2 * ((j % 128) / 32))
            set(at, (get(at) & ~(3 << shift)) | (v & 3) << shift)
            if self == .q3_K { bit(0, (j % 32) * 8 + j / 32, v & 4 != 0) }     // hmask[j % 32], bit j / 32
        case .q4_K, .q5_K:
            let at = self == .q4_K ? 16 : 48
            nibble(at + (j / 64) * 32, j % 32, high: j % 64 >= 32, v)
            if self == .q5_K { bit(16, (j % 32) * 8 + 2 * (j / 64) + (j % 64 >= 32 ? 1 : 0), v & 16 != 0) }
        case .q6_K:
            let h = j / 128, l = j % 32, g = (j % 128) / 32
            nibble(64 * h + (g & 1) * 32, l, high: g >= 2, v)
            let at = 128 + 32 * h + l, shift = UInt8(2 * g)
            set(at, (get(at) & ~(3 << shift)) | ((v >> 4) & 3) << shift)
        case .f32, .f16, .bf16, .q8_K:
            preconditionFailure("setLevel: \(name) has no block grid")
        }
    }
}

extension QuantizedMatrix {
    /// The rows in `order` (each row's blocks copied as they are).
    public func gatheringRows(_ order: [Int]) -> QuantizedMatrix {
        let buffer = OwnedBytes(count: order.count * rowBytes)
        for (i, r) in order.enumerated() { (buffer.pointer + i * rowBytes).copyMemory(from: bytes + r * rowBytes, byteCount: rowBytes) }
        return QuantizedMatrix(type: type, rows: order.count, cols: cols, bytes: UnsafeRawPointer(buffer.pointer), owner: buffer)
    }

    /// Matrices of one type and width, their rows one after another.
    public static func stacking(_ parts: [QuantizedMatrix]) -> QuantizedMatrix {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.type == parts[0].type && $0.cols == parts[0].cols }, "stacking: one type and width")
        let rows = parts.reduce(0) { $0 + $1.rows }, rowBytes = parts[0].rowBytes
        let buffer = OwnedBytes(count: rows * rowBytes)
        var at = 0
        for p in parts {
            (buffer.pointer + at).copyMemory(from: p.bytes, byteCount: p.byteCount)
            at += p.byteCount
        }
        return QuantizedMatrix(type: parts[0].type, rows: rows, cols: parts[0].cols, bytes: UnsafeRawPointer(buffer.pointer), owner: buffer)
    }

    /// Rows of `rowBytes` written by `fill` into a new matrix.
    public static func filled(_ type: GGMLType, rows: Int, cols: Int, _ fill: (UnsafeMutableRawPointer) -> Void) -> QuantizedMatrix {
        let buffer = OwnedBytes(count: type.byteCount(rows * cols))
        fill(buffer.pointer)
        return QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: UnsafeRawPointer(buffer.pointer), owner: buffer)
    }
}
