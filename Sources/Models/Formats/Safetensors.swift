import Foundation
import Tensors
import Tokenization

/// The safetensors format (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the raw
/// little-endian tensor bytes, offsets counted from the end of the header.
///
/// Reading memory-maps the file and checks every length and offset before touching the bytes;
/// F32, F16 and BF16 tensors become Float32 tensors. Writing stores F32, names sorted, header
/// padded to 8 bytes, through a temporary file renamed into place.
public enum Safetensors {
    public struct Entry {
        public let dtype: String
        public let shape: [Int]
        public let range: Range<Int>       // byte range within the data section
    }

    public struct File {
        public let path: String
        public let entries: [String: Entry]
        public let metadata: [String: String]
        let data: Data
        let dataStart: Int

        /// Tensor `name` as Float32.
        public func tensor(_ name: String) throws(ModelError) -> Tensor {
            guard let e = entries[name] else { throw .file(path, "no tensor named \(name)") }
            let count = Shape.count(e.shape)
            let t = Tensor.zeros(e.shape)
            let dst = t.data
            data.withUnsafeBytes { raw in
                let src = raw.baseAddress! + dataStart + e.range.lowerBound
                // The same conversions as GGUF's F32, F16 and BF16 tensors.
                let type: GGMLType = e.dtype == "F32" ? .f32 : e.dtype == "F16" ? .f16 : .bf16
                dequantizeBlocks(type, src, dst, count: count)
            }
            return t
        }

        /// Every tensor, as Float32.
        public func tensors() throws(ModelError) -> [String: Tensor] {
            var out: [String: Tensor] = [:]
            for name in entries.keys { out[name] = try tensor(name) }
            return out
        }
    }

    static let sizes = ["F32": 4, "F16": 2, "BF16": 2]

    public static func read(_ path: String) throws(ModelError) -> File {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw .file(path, "cannot read: \(error.localizedDescription)")
        }
        guard data.count >= 8 else { throw .file(path, "\(data.count) bytes: too short for the 8-byte header length") }
        let n = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n <= UInt64(data.count - 8) else { throw .file(path, "header length \(n) at byte 0 runs past the end of the file (\(data.count) bytes)") }
        let headerEnd = 8 + Int(n)
        guard let json = (try? JSONSerialization.jsonObject(with: data[8..<headerEnd])) as? [String: Any] else {
            throw .file(path, "header (bytes 8..<\(headerEnd)) is not a JSON object: \(jsonSyntaxError(data[8..<headerEnd]) ?? "another JSON value")")
        }
        var entries: [String: Entry] = [:], metadata: [String: String] = [:]
        let dataSize = data.count - headerEnd
        for (name, value) in json {
            if name == "__metadata__" { metadata = value as? [String: String] ?? [:]; continue }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw .file(path, "tensor \(name): header entry needs dtype, shape and data_offsets [begin, end]")
            }
            guard let size = sizes[dtype] else { throw .file(path, "tensor \(name): dtype \(dtype) is not supported (F32, F16, BF16)") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw .file(path, "tensor \(name): negative dimension in \(shape)") }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw .file(path, "tensor \(name): data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data section")
            }
            // The shape's byte count, without overflow, against the entry's real extent.
            var bytes = size
            for d in shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard !overflow, product <= dataSize else {
                    throw .file(path, "tensor \(name): shape \(shape) of \(dtype) is larger than the \(dataSize)-byte data section")
                }
                bytes = product
            }
            guard end - begin == bytes else {
                throw .file(path, "tensor \(name): \(end - begin) bytes for shape \(Shape.describe(shape)) of \(dtype) (expected \(bytes))")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: begin..<end)
        }
        return File(path: path, entries: entries, metadata: metadata, data: data, dataStart: headerEnd)
    }

    /// Writes Float32 tensors (and string metadata) to `path`, atomically.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + t.count * 4]]
            offset += t.count * 4
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names { let t = tensors[name]!; out.append(Data(bytes: t.data, count: t.count * 4)) }
        try atomicWrite(out, to: path)
    }
}

/// Writes a Hugging Face model folder: `config.json` (sorted keys) and `model.safetensors`, each
/// atomically.
func writeHuggingFaceFolder<C: Encodable>(config: C, tensors: [String: Tensor], to folder: String) throws {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try atomicWrite(try encoder.encode(config), to: folder + "/config.json")
    try Safetensors.write(tensors, metadata: ["format": "pt"], to: folder + "/model.safetensors")
}

/// Model files and weights: each error names the file (or tensor) and what was wrong.
public enum ModelError: Error, CustomStringConvertible {
    case file(String, String)
    case weights(String)
    /// A bad request to a model: ids outside the vocabulary, a batch that does not add up, a
    /// sequence past the context. The message gives the sizes.
    case input(String)

    public var description: String {
        switch self {
        case let .file(path, message): return "\(path): \(message)"
        case let .weights(message): return message
        case let .input(message): return message
        }
    }
}
