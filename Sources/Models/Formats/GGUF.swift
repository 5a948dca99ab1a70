import Foundation
import Tensors

/// GGUF, llama.cpp's model file (versions 2 and 3), read straight from a memory map:
///
///   magic "GGUF" · version u32 · tensor count u64 · metadata count u64
///   metadata:  key (string) · value type u32 · value          strings are u64 length + UTF-8 bytes
///   tensors:   name (string) · n_dims u32 · dims u64[n_dims] (innermost first) · type u32 · offset u64
///   padding to `general.alignment` (default 32), then the tensor data; offsets count from there
///
/// Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array (element
/// type u32 · count u64 · elements, arrays may nest), 10 u64, 11 i64, 12 f64. All little-endian.
///
/// Every read is bounds-checked: a truncated or corrupt file fails with the field and byte offset,
/// never reads past the end. Tensor bytes are not copied: `matrix(_:)` points into the mapping.
public struct GGUFFile {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Byte offset of the tensor data section.
    public let dataOffset: Int
    let file: MappedFile
    let index: [String: Int]
    let metadataIndex: [String: Int]

    public var fileSize: Int { file.count }

    public subscript(key: String) -> GGUFValue? { metadataIndex[key].map { metadata[$0].value } }

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// Tensor `name` as a matrix (rows = product of the outer dims, cols = dims[0]) in its stored
    /// type, pointing into the mapped file. Unsupported types fail naming the type and tensor.
    public func matrix(_ name: String) throws(ModelError) -> QuantizedMatrix {
        guard let info = tensorInfo(name) else { throw .file(path, "no tensor named \(name)") }
        guard let type = GGMLType(rawValue: info.type) else {
            throw .file(path, "tensor \(name) has type \(GGMLType.name(of: info.type)), which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K are)")
        }
        let cols = info.dims.first ?? 1
        return QuantizedMatrix(type: type, rows: info.count / max(cols, 1), cols: cols,
                               bytes: file.bytes + dataOffset + info.offset, owner: file)
    }

    /// Tensor `name` converted to Float32, shaped outermost-first (ggml's dims reversed).
    public func floatTensor(_ name: String) throws(ModelError) -> Tensor {
        let m = try matrix(name)
        let t = m.dequantized()
        return t.reshaped(tensorInfo(name)!.dims.reversed())
    }

    public init(path: String) throws(ModelError) {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw .file(path, error.description) }
        var r = GGUFReader(path: path, base: file.bytes, count: file.count)
        let magic = try r.u32("magic")
        guard magic == 0x4655_4747 else {                       // "GGUF" little-endian
            throw .file(path, "not a GGUF file (magic bytes \(String(format: "%08x", magic.byteSwapped)) at byte 0, expected 47475546 \"GGUF\")")
        }
        version = try r.u32("version")
        guard version == 2 || version == 3 else { throw .file(path, "GGUF version \(version) is not supported (2 and 3 are), at byte 4") }
        let tensorCount = try r.count("tensor count", each: 24)
        let metadataCount = try r.count("metadata count", each: 12)
        var metadata: [(key: String, value: GGUFValue)] = []
        var metadataIndex: [String: Int] = [:]
        for i in 0..<metadataCount {
            let key = try r.string("metadata \(i) key")
            let value = try r.value(type: try r.u32("metadata \(key) value type"), field: "metadata \(key)", depth: 0)
            metadataIndex[key] = metadata.count
            metadata.append((key, value))
        }
        var alignment = 32
        if let i = metadataIndex["general.alignment"] {
            guard let a = metadata[i].value.int, a > 0, a & (a - 1) == 0 else {
                throw .file(path, "general.alignment is \(metadata[i].value), expected a power of two")
            }
            alignment = a
        }
        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for i in 0..<tensorCount {
            let name = try r.string("tensor \(i) name")
            let at = r.offset
            let nDims = Int(try r.u32("tensor \(name) n_dims"))
            guard (1...4).contains(nDims) else { throw .file(path, "tensor \(name) has \(nDims) dimensions at byte \(at) (1 to 4 allowed)") }
            var dims: [Int] = []
            for d in 0..<nDims {
                let at = r.offset
                let v = try r.u64("tensor \(name) dim \(d)")
                guard v > 0, v < 1 << 40 else { throw .file(path, "tensor \(name) dim \(d) is \(v) at byte \(at)") }
                dims.append(Int(v))
            }
            var total = 1
            for d in dims {
                let (product, overflow) = total.multipliedReportingOverflow(by: d)
                guard !overflow, product < 1 << 40 else { throw .file(path, "tensor \(name) has \(dims) elements, too many (at byte \(at))") }
                total = product
            }
            let type = try r.u32("tensor \(name) type")
            let offAt = r.offset
            let offset = try r.u64("tensor \(name) offset")
            guard offset <= UInt64(file.count) else {
                throw .file(path, "tensor \(name) offset \(offset) at byte \(offAt) lies beyond the end of the file (\(file.count) bytes)")
            }
            guard index[name] == nil else { throw .file(path, "tensor \(name) appears twice (second at byte \(at))") }
            guard offset % UInt64(alignment) == 0 else { throw .file(path, "tensor \(name) offset \(offset) at byte \(offAt) is not a multiple of the alignment \(alignment)") }
            index[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset)))
        }
        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        // Every tensor's bytes must lie inside the file (only for types whose size we know).
        for t in infos {
            let count = t.count
            if let type = GGMLType(rawValue: t.type) {
                guard count % type.blockSize == 0, t.dims[0] % type.blockSize == 0 else {
                    throw .file(path, "tensor \(t.name): \(t.dims[0]) values per row is not a multiple of \(type.name)'s block of \(type.blockSize)")
                }
                let end = dataOffset + t.offset + type.byteCount(count)
                guard end <= file.count else {
                    throw .file(path, "truncated: tensor \(t.name) (\(type.name), \(Shape.describe(t.dims.reversed()))) spans bytes \(dataOffset + t.offset)..<\(end), the file has \(file.count)")
                }
            } else if dataOffset + t.offset > file.count {
                throw .file(path, "truncated: tensor \(t.name) starts at byte \(dataOffset + t.offset), the file has \(file.count)")
            }
        }
        self.path = path
        self.file = file
        self.metadata = metadata
        self.metadataIndex = metadataIndex
        self.tensors = infos
        self.index = index
        self.alignment = alignment
        self.dataOffset = dataOffset
    }
}

/// One tensor's entry in the GGUF table.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// ggml order: dims[0] is the innermost (contiguous) dimension.
    public let dims: [Int]
    public let type: UInt32
    /// Bytes from the start of the data section.
    public let offset: Int

    public var count: Int { dims.reduce(1, *) }
    public var typeName: String { GGMLType.name(of: type) }
    /// Bytes, when the type is one we know.
    public var byteCount: Int? { GGMLType(rawValue: type).map { $0.byteCount(count) } }
}

/// A metadata value.
public enum GGUFValue: CustomStringConvertible, Sendable {
    case uint(UInt64, bits: Int), int(Int64, bits: Int), float(Double, bits: Int), bool(Bool), string(String)
    case array(elementType: UInt32, [GGUFValue])

    public var int: Int? {
        switch self {
        case let .uint(v, _): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int(v, _): return Int(v)
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case let .float(v, _): return v
        case let .uint(v, _): return Double(v)
        case let .int(v, _): return Double(v)
        default: return nil
        }
    }
    public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
    public var string: String? { if case let .string(s) = self { return s }; return nil }
    public var array: [GGUFValue]? { if case let .array(_, a) = self { return a }; return nil }
    public var strings: [String]? { array?.compactMap(\.string) }

    public var typeName: String {
        switch self {
        case let .uint(_, bits): return "u\(bits)"
        case let .int(_, bits): return "i\(bits)"
        case let .float(_, bits): return "f\(bits)"
        case .bool: return "bool"
        case .string: return "string"
        case let .array(_, items): return "array[\(items.first?.typeName ?? "?")] (\(items.count))"
        }
    }

    public var description: String {
        switch self {
        case let .uint(v, _): return "\(v)"
        case let .int(v, _): return "\(v)"
        case let .float(v, bits): return bits == 32 ? "\(Float(v))" : "\(v)"
        case let .bool(b): return "\(b)"
        case let .string(s): return s.debugDescription
        case let .array(_, items):
            let shown = items.prefix(6).map(\.description).joined(separator: ", ")
            return "[" + shown + (items.count > 6 ? ", … \(items.count) items" : "") + "]"
        }
    }
}

/// A bounds-checked little-endian cursor over the mapped bytes.
struct GGUFReader {
    let path: String
    let base: UnsafeRawPointer
    let count: Int
    var offset = 0

    init(path: String, base: UnsafeRawPointer, count: Int) {
        self.path = path; self.base = base; self.count = count
    }

    // Field names are autoclosures: built only for an error message, not for each of the
    // ~100,000 strings of a vocabulary.
    mutating func take(_ n: Int, _ field: @autoclosure () -> String) throws(ModelError) -> Int {
        guard n >= 0, offset <= count, n <= count - offset else {
            throw .file(path, "truncated: \(field()) at byte \(offset) needs \(n) bytes, the file has \(count)")
        }
        defer { offset += n }
        return offset
    }

    mutating func u8(_ f: @autoclosure () -> String) throws(ModelError) -> UInt8 { base.load(fromByteOffset: try take(1, f()), as: UInt8.self) }
    mutating func u16(_ f: @autoclosure () -> String) throws(ModelError) -> UInt16 { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: try take(2, f()), as: UInt16.self)) }
    mutating func u32(_ f: @autoclosure () -> String) throws(ModelError) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: try take(4, f()), as: UInt32.self)) }
    mutating func u64(_ f: @autoclosure () -> String) throws(ModelError) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: try take(8, f()), as: UInt64.self)) }

    /// A u64 count of items each taking at least `each` bytes: larger than the rest of the file could hold is corrupt.
    mutating func count(_ f: @autoclosure () -> String, each: Int) throws(ModelError) -> Int {
        let at = offset
        let n = try u64(f())
        guard n <= UInt64(max(0, count - offset) / max(each, 1)) else {
            throw .file(path, "\(f()) is \(n) at byte \(at), more than the remaining \(count - offset) bytes can hold")
        }
        return Int(n)
    }

    mutating func string(_ f: @autoclosure () -> String) throws(ModelError) -> String {
        let n = try count(f() + " length", each: 1)
        let start = try take(n, f())
        let buffer = UnsafeBufferPointer(start: (base + start).assumingMemoryBound(to: UInt8.self), count: n)
        guard let s = String(validating: buffer, as: UTF8.self) else { throw .file(path, "\(f()) at byte \(start) is not valid UTF-8") }
        return s
    }

    mutating func value(type: UInt32, field: @autoclosure () -> String, depth: Int) throws(ModelError) -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try u8(field())), bits: 8)
        case 1: return .int(Int64(Int8(bitPattern: try u8(field()))), bits: 8)
        case 2: return .uint(UInt64(try u16(field())), bits: 16)
        case 3: return .int(Int64(Int16(bitPattern: try u16(field()))), bits: 16)
        case 4: return .uint(UInt64(try u32(field())), bits: 32)
        case 5: return .int(Int64(Int32(bitPattern: try u32(field()))), bits: 32)
        case 6: return .float(Double(Float(bitPattern: try u32(field()))), bits: 32)
        case 7:
            let at = offset
            let b = try u8(field())
            guard b <= 1 else { throw .file(path, "\(field()) at byte \(at) is a bool with value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(field()))
        case 9:
            guard depth < 8 else { throw .file(path, "\(field()) at byte \(offset): arrays nested deeper than 8") }
            let elementType = try u32(field() + " element type")
            let minimumBytes = [0: 1, 1: 1, 7: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8][Int(elementType)] ?? 1
            let n = try count(field() + " element count", each: minimumBytes)
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for i in 0..<n { items.append(try value(type: elementType, field: "\(field())[\(i)]", depth: depth + 1)) }
            return .array(elementType: elementType, items)
        case 10: return .uint(try u64(field()), bits: 64)
        case 11: return .int(Int64(bitPattern: try u64(field())), bits: 64)
        case 12: return .float(Double(bitPattern: try u64(field())), bits: 64)
        default: throw .file(path, "\(field()) at byte \(offset - 4) has unknown value type \(type)")
        }
    }
}
