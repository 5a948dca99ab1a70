/// Element types of GGUF/ggml tensors and their block layouts (ggml-common.h). Quantized types
/// store a row in blocks of 32 values; each block carries its own scale:
///
///   Q8_0  34 bytes: d (f16), qs[32] (int8)           x = d · q
///   Q4_0  18 bytes: d (f16), qs[16] (two 4-bit q)    x = d · (q − 8)
///   Q4_1  20 bytes: d (f16), m (f16), qs[16]         x = d · q + m
///
/// In both 4-bit types byte j of qs holds value j in its low nibble and value j + 16 in its high
/// nibble. F32, F16 and BF16 are plain (blocks of one value).
public enum GGMLType: UInt32, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

    /// Values per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q8_0: return 34
        }
    }

    public var name: String { GGMLType.names[Int(rawValue)] ?? "type \(rawValue)" }

    /// Bytes of `count` values (count a multiple of the block size).
    public func byteCount(_ count: Int) -> Int { count / blockSize * blockBytes }

    /// ggml's names for every type id, supported or not (for error messages and `llm inspect`).
    public static func name(of raw: UInt32) -> String { names[Int(raw)] ?? "unknown type \(raw)" }

    static let names: [Int: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
        10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
        17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
        24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
        39: "MXFP4",
    ]
}
