import Foundation
import Models
import Tensors

/// Writes a model as a GGUF file with its weights quantized: each tensor's type from
/// `TensorTypePlan`, its values rounded by ggml's reference quantizers (round to nearest), one
/// tensor at a time (the model is never held twice), into a temporary file renamed into place.
public enum GGUFQuantizer {
    /// What happened to one tensor.
    public struct TensorReport: Sendable {
        public let index: Int, total: Int
        public let name: String
        /// ggml dims reversed: (rows, cols) for a matrix.
        public let shape: [Int]
        public let from: GGMLType, to: GGMLType
        public let quantized: Bool
        public let fellBackFrom: GGMLType?
        public let bytes: Int
        public let seconds: Double
    }

    /// The whole file.
    public struct Summary: Sendable {
        public let path: String
        public let tensors: Int
        public let parameters: Int
        /// Bytes of tensor data (the file adds its header and padding).
        public let bytes: Int
        public let fileBytes: Int
        public let seconds: Double
        /// Tensors per type.
        public let types: [(type: GGMLType, count: Int)]
        public var bitsPerWeight: Double { Double(bytes) * 8 / Double(max(parameters, 1)) }
    }

    public static func write(_ source: GGUFSource, scheme: QuantizationScheme, outputType: GGMLType? = nil, to path: String,
                             progress: (TensorReport) -> Void = { _ in }) throws -> Summary {
        let started = Date()
        let plan = TensorTypePlan(source, scheme: scheme, outputType: outputType)
        var metadata = source.metadata
        let at = (metadata.firstIndex { $0.key == "general.architecture" } ?? -1) + 1
        metadata.insert(("general.quantization_version", .u32(2)), at: at)
        metadata.insert(("general.file_type", .u32(scheme.fileType)), at: at)
        let tensors = plan.entries.map { GGUFTensorPlan(name: $0.tensor.name, dims: $0.tensor.dims, type: $0.type) }
        var tensorStart = Date()
        try GGUFWriter.write(to: path, metadata: metadata, tensors: tensors) { i, bytes in
            tensorStart = Date()
            let entry = plan.entries[i]
            func report() {
                progress(TensorReport(index: i, total: tensors.count, name: entry.tensor.name, shape: entry.tensor.dims.reversed(),
                                      from: entry.tensor.storedType, to: entry.type, quantized: entry.quantized && entry.type != entry.tensor.storedType,
                                      fellBackFrom: entry.fellBackFrom, bytes: bytes.count, seconds: Date().timeIntervalSince(tensorStart)))
            }
            // Already in the target type (a GGUF tensor, a GPTQ/AWQ projection): its blocks as they are.
            if entry.type == entry.tensor.storedType, let stored = try entry.tensor.stored?() {
                guard stored.byteCount == bytes.count else {
                    throw ModelError.weights("\(entry.tensor.name): \(stored.byteCount) stored bytes for \(bytes.count)")
                }
                bytes.baseAddress!.copyMemory(from: stored.bytes, byteCount: bytes.count)
                report()
                return
            }
            let values = try entry.tensor.values()
            guard values.count == entry.tensor.count else {
                throw ModelError.weights("\(entry.tensor.name): \(values.count) values for dims \(entry.tensor.dims)")
            }
            let data = values.data
            for j in 0..<values.count where !data[j].isFinite {
                let cols = entry.tensor.dims[0]
                throw ModelError.weights("\(entry.tensor.name): value \(data[j]) at row \(j / cols), column \(j % cols) is not finite; nothing was written")
            }
            let cols = entry.tensor.dims[0]
            quantizeRows(entry.type, data, bytes.baseAddress!, rows: values.count / cols, cols: cols)
            report()
        }
        var counts: [GGMLType: Int] = [:]
        for t in tensors { counts[t.type, default: 0] += 1 }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return Summary(path: path, tensors: tensors.count, parameters: tensors.reduce(0) { $0 + $1.count },
                       bytes: tensors.reduce(0) { $0 + $1.byteCount }, fileBytes: size,
                       seconds: Date().timeIntervalSince(started),
                       types: counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key, $0.value) })
    }
}
