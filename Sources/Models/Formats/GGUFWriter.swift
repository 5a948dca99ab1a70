import Foundation
import Tensors

/// One tensor of a GGUF file being written: its name, ggml dims (innermost first) and storage type.
public struct GGUFTensorPlan: Sendable {
    public let name: String
    public let dims: [Int]
    public let type: GGMLType

    public init(name: String, dims: [Int], type: GGMLType) {
        self.name = name; self.dims = dims; self.type = type
    }

    public var count: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(count) }
}

/// Writes GGUF version 3 (the layout `GGUFFile` reads): header, metadata, tensor table, then each
/// tensor's bytes at an offset that is a multiple of the alignment. Tensors are produced one at a
/// time by a callback, so a model is never held twice in memory. The file is written beside its
/// destination under a temporary name and renamed into place only when complete: an error (or a
/// crash) never leaves a partial file under the destination's name.
public enum GGUFWriter {
    public static func write(to path: String, metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorPlan],
                             alignment: Int = 32,
                             fill: (_ index: Int, _ bytes: UnsafeMutableRawBufferPointer) throws -> Void) throws {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "GGUF alignment must be a power of two")
        var seen = Set<String>()
        for t in tensors {
            guard seen.insert(t.name).inserted else { throw ModelError.file(path, "tensor \(t.name) is written twice") }
            guard (1...4).contains(t.dims.count), t.dims.allSatisfy({ $0 > 0 }) else {
                throw ModelError.file(path, "tensor \(t.name) has dims \(t.dims) (1 to 4 positive dims)")
            }
            guard t.dims[0] % t.type.blockSize == 0 else {
                throw ModelError.file(path, "tensor \(t.name): \(t.dims[0]) values per row is not a multiple of \(t.type.name)'s block of \(t.type.blockSize)")
            }
        }
        var keys = metadata
        if alignment != 32, !keys.contains(where: { $0.key == "general.alignment" }) {
            keys.append(("general.alignment", .uint(UInt64(alignment), bits: 32)))
        }

        var header = GGUFEncoder()
        header.u32(0x4655_4747)          // "GGUF"
        header.u32(3)
        header.u64(UInt64(tensors.count))
        header.u64(UInt64(keys.count))
        for (key, value) in keys {
            header.string(key)
            header.u32(value.ggufType)
            header.value(value)
        }
        var offset = 0
        for t in tensors {
            header.string(t.name)
            header.u32(UInt32(t.dims.count))
            for d in t.dims { header.u64(UInt64(d)) }
            header.u32(t.type.rawValue)
            header.u64(UInt64(offset))
            offset = (offset + t.byteCount + alignment - 1) / alignment * alignment
        }
        header.pad(to: alignment)

        let temporary = path + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw ModelError.file(path, "cannot create \(temporary) (does the folder exist and is it writable?)")
        }
        var done = false
        defer { if !done { try? FileManager.default.removeItem(atPath: temporary) } }
        guard let handle = FileHandle(forWritingAtPath: temporary) else { throw ModelError.file(temporary, "cannot open for writing") }
        defer { try? handle.close() }
        func output(_ body: () throws -> Void) throws {
            do { try body() } catch { throw ModelError.file(path, "writing failed: \(error.localizedDescription)") }
        }
        try output { try handle.write(contentsOf: header.bytes) }
        let largest = tensors.map(\.byteCount).max() ?? 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest + alignment, 1), alignment: 64)
        defer { buffer.deallocate() }
        for (i, t) in tensors.enumerated() {
            let n = t.byteCount
            try fill(i, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
            let padded = (n + alignment - 1) / alignment * alignment
            if padded > n { buffer[n..<padded].initializeMemory(as: UInt8.self, repeating: 0) }
            try output { try handle.write(contentsOf: Data(bytesNoCopy: buffer.baseAddress!, count: padded, deallocator: .none)) }
        }
        try output { try handle.synchronize() }
        if rename(temporary, path) != 0 {
            throw ModelError.file(path, "cannot rename \(temporary) into place: \(String(cString: strerror(errno)))")
        }
        done = true
    }
}

extension GGUFValue {
    /// The GGUF value type id of this value.
    var ggufType: UInt32 {
        switch self {
        case let .uint(_, bits): return [8: 0, 16: 2, 32: 4, 64: 10][bits] ?? 10
        case let .int(_, bits): return [8: 1, 16: 3, 32: 5, 64: 11][bits] ?? 11
        case let .float(_, bits): return bits == 32 ? 6 : 12
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        }
    }

    /// An array of strings.
    public static func strings(_ items: [String]) -> GGUFValue { .array(elementType: 8, items.map { .string($0) }) }
    /// An array of i32.
    public static func int32s(_ items: [Int32]) -> GGUFValue { .array(elementType: 5, items.map { .int(Int64($0), bits: 32) }) }
    /// An array of f32.
    public static func float32s(_ items: [Float]) -> GGUFValue { .array(elementType: 6, items.map { .float(Double($0), bits: 32) }) }
    public static func u32(_ v: Int) -> GGUFValue { .uint(UInt64(v), bits: 32) }
    public static func f32(_ v: Float) -> GGUFValue { .float(Double(v), bits: 32) }
}

/// Little-endian bytes of GGUF's header fields.
struct GGUFEncoder {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    mutating func value(_ v: GGUFValue) {
        switch v {
        case let .uint(x, bits):
            switch bits {
            case 8: bytes.append(UInt8(truncatingIfNeeded: x))
            case 16: withUnsafeBytes(of: UInt16(truncatingIfNeeded: x).littleEndian) { bytes.append(contentsOf: $0) }
            case 32: u32(UInt32(truncatingIfNeeded: x))
            default: u64(x)
            }
        case let .int(x, bits):
            switch bits {
            case 8: bytes.append(UInt8(bitPattern: Int8(truncatingIfNeeded: x)))
            case 16: withUnsafeBytes(of: Int16(truncatingIfNeeded: x).littleEndian) { bytes.append(contentsOf: $0) }
            case 32: u32(UInt32(bitPattern: Int32(truncatingIfNeeded: x)))
            default: u64(UInt64(bitPattern: x))
            }
        case let .float(x, bits):
            if bits == 32 { u32(Float(x).bitPattern) } else { u64(x.bitPattern) }
        case let .bool(b): bytes.append(b ? 1 : 0)
        case let .string(s): string(s)
        case let .array(elementType, items):
            u32(elementType)
            u64(UInt64(items.count))
            for item in items { value(item) }
        }
    }
}
