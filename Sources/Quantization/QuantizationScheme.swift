import Models
import Tensors

/// What `llm quantize --type` asks for: one storage type for every weight matrix, or one of
/// llama.cpp's mixes, which give some tensors more bits.
public enum QuantizationScheme: Equatable, Sendable, CustomStringConvertible {
    /// Every quantizable tensor in this type (llama-quantize's `--pure`): f32 f16 bf16 q8_0 q4_0
    /// q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k.
    case single(GGMLType)
    /// Q4_K with Q6_K for half of the value projections and of the MLP down projections
    /// (llama.cpp's use_more_bits layers) and for the output head (llama-quantize Q4_K_M).
    case q4_K_M
    /// The same with Q5_K as the base type (llama-quantize Q5_K_M).
    case q5_K_M

    /// The `--type` names, in the order `llm quantize --help` lists them.
    public static let names = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                               "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m"]

    public init?(name: String) {
        switch name.lowercased() {
        case "q4_k_m": self = .q4_K_M
        case "q5_k_m": self = .q5_K_M
        case let n:
            guard let t = QuantizationScheme.weightType(named: n) else { return nil }
            self = .single(t)
        }
    }

    /// A storage type by its lower-case name (the types `--type` and `--output-type` take).
    public static func weightType(named name: String) -> GGMLType? {
        let types: [String: GGMLType] = [
            "f32": .f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0, "q4_0": .q4_0, "q4_1": .q4_1, "q5_0": .q5_0,
            "q5_1": .q5_1, "q2_k": .q2_K, "q3_k": .q3_K, "q4_k": .q4_K, "q5_k": .q5_K, "q6_k": .q6_K,
        ]
        return types[name.lowercased()]
    }

    public var description: String {
        switch self {
        case let .single(t): return t.name.lowercased()
        case .q4_K_M: return "q4_k_m"
        case .q5_K_M: return "q5_k_m"
        }
    }

    /// The base type of the weight matrices.
    public var baseType: GGMLType {
        switch self {
        case let .single(t): return t
        case .q4_K_M: return .q4_K
        case .q5_K_M: return .q5_K
        }
    }

    /// `general.file_type`: llama.cpp's llama_ftype for this choice (the K types alone are
    /// written as llama-quantize writes its aliases Q3_K, Q4_K, Q5_K: as the _M mixes).
    public var fileType: Int {
        switch self {
        case .q4_K_M: return 15
        case .q5_K_M: return 17
        case let .single(t):
            switch t {
            case .f32: return 0
            case .f16: return 1
            case .q4_0: return 2
            case .q4_1: return 3
            case .q8_0: return 7
            case .q5_0: return 8
            case .q5_1: return 9
            case .q2_K: return 10
            case .q3_K: return 12
            case .q4_K: return 15
            case .q5_K: return 17
            case .q6_K: return 18
            case .bf16: return 32
            case .q8_K: return 0
            }
        }
    }
}

/// Which type each tensor of a model gets, by llama.cpp's rules (src/llama-quant.cpp,
/// llama_tensor_get_type) so that our files match llama-quantize's:
///
/// - Only weight matrices are quantized: tensors of two or more dims whose name ends in "weight",
///   not norms and not the position table; the others keep their type.
/// - `--output-type` sets the output head's type (and the token table's, when they are tied).
/// - The mixes: the output head (or the tied token table) gets Q6_K; value projections (attn_v,
///   attn_qkv) and MLP down projections get Q6_K in the use_more_bits layers: the first and last
///   eighth and every third layer between them.
/// - A matrix whose rows are not a multiple of the type's block falls back to a smaller block:
///   Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and to F16 if that still does not fit.
///
/// Tensors are visited in llama-quantize's order (outside the layers first, then layer by layer,
/// by name within each), which is also the order the file is written in: the layer counters of
/// the mixes depend on it.
public struct TensorTypePlan {
    public struct Entry {
        public let tensor: GGUFSourceTensor
        public let type: GGMLType
        /// Whether the tensor is quantized at all (a weight matrix) or kept as it is.
        public let quantized: Bool
        /// The type the rules chose before a fallback for its row length, when there was one.
        public let fellBackFrom: GGMLType?
    }
    public let entries: [Entry]

    public init(_ source: GGUFSource, scheme: QuantizationScheme, outputType: GGMLType? = nil) {
        let ordered = source.tensors.sorted { a, b in
            a.layer != b.layer ? a.layer < b.layer : Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
        let tied = !ordered.contains { $0.name == "output.weight" }
        let valueCount = ordered.filter { Self.isValueProjection($0.name) }.count
        let layers = source.layers
        var valueIndex = 0, downIndex = 0
        var entries: [Entry] = []
        for t in ordered {
            guard Self.isQuantizable(t) else {
                entries.append(Entry(tensor: t, type: t.storedType, quantized: false, fellBackFrom: nil))
                continue
            }
            let isOutput = t.name == "output.weight" || (tied && t.name == "token_embd.weight")
            var type = scheme.baseType
            if isOutput, let outputType {
                entries.append(Entry(tensor: t, type: outputType, quantized: true, fellBackFrom: nil))
                continue
            }
            let quantizedType = type.blockSize > 1
            if quantizedType, scheme != .single(type) {
                // The mixes (llama_tensor_get_type_impl for Q4_K_M and Q5_K_M).
                if isOutput {
                    type = t.dims[0] % type.blockSize != 0 ? .q8_0 : .q6_K
                } else if Self.isValueProjection(t.name) {
                    if Self.usesMoreBits(valueIndex, valueCount) { type = .q6_K }
                    valueIndex += 1
                } else if t.name.contains("ffn_down") {
                    if Self.usesMoreBits(downIndex, layers) { type = .q6_K }
                    downIndex += 1
                }
            }
            var fellBack: GGMLType? = nil
            if quantizedType, t.dims[0] % type.blockSize != 0 {
                fellBack = type
                switch type {
                case .q2_K, .q3_K: type = .q4_0
                case .q4_K: type = .q5_0
                case .q5_K: type = .q5_1
                case .q6_K: type = .q8_0
                default: break
                }
                if t.dims[0] % type.blockSize != 0 { type = .f16 }
            }
            entries.append(Entry(tensor: t, type: type, quantized: true, fellBackFrom: fellBack))
        }
        self.entries = entries
    }

    /// llama.cpp's tensor_allows_quantization for the architectures we write.
    static func isQuantizable(_ t: GGUFSourceTensor) -> Bool {
        t.dims.count >= 2 && t.name.hasSuffix("weight") && !t.name.contains("_norm.weight") && t.name != "position_embd.weight"
    }

    /// attn_v and attn_qkv (llama.cpp's category_is_attn_v).
    static func isValueProjection(_ name: String) -> Bool { name.contains("attn_v.weight") || name.contains("attn_qkv.weight") }

    /// llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
    static func usesMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }
}
