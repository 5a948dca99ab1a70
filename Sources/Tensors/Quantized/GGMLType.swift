/// Element types of GGUF/ggml tensors and their block layouts (ggml-common.h). Quantized types
/// store a row in blocks; each block carries its own scale. Blocks of 32 values:
///
///   Q8_0  34 bytes: d (f16), qs[32] (int8)                    x = d · q
///   Q4_0  18 bytes: d (f16), qs[16] (two 4-bit q)             x = d · (q − 8)
///   Q4_1  20 bytes: d (f16), m (f16), qs[16]                  x = d · q + m
///   Q5_0  22 bytes: d (f16), qh[4], qs[16]                    x = d · (q − 16)
///   Q5_1  24 bytes: d (f16), m (f16), qh[4], qs[16]           x = d · q + m
///
/// In the 4- and 5-bit types byte j of qs holds value j in its low nibble and value j + 16 in its
/// high nibble; the 5-bit types keep value j's fifth bit in bit j of qh (a little-endian u32).
///
/// K-quants ("super-blocks" of 256 values, each split into sub-blocks with their own small
/// integer scale, itself scaled by the super-block's f16 d):
///
///   Q2_K   84 bytes: scales[16], qs[64], d (f16), dmin (f16)
///          16 sub-blocks of 16; scales byte = scale (low 4 bits) | min (high 4 bits);
///          x = d·scale·q − dmin·min, q 2 bits.
///   Q3_K  110 bytes: hmask[32], qs[64], scales[12], d (f16)
///          16 sub-blocks of 16; 6-bit scales s (stored + 32); q = 2 low bits − (4 if the hmask
///          bit is clear); x = d·(s − 32)·q.
///   Q4_K  144 bytes: d (f16), dmin (f16), scales[12], qs[128]
///          8 sub-blocks of 32; 6-bit scale and min per sub-block (packed in 12 bytes, see
///          `scaleMin`); x = d·scale·q − dmin·min, q 4 bits.
///   Q5_K  176 bytes: d (f16), dmin (f16), scales[12], qh[32], qs[128]
///          as Q4_K with a fifth bit from qh; q 5 bits.
///   Q6_K  210 bytes: ql[128], qh[64], scales[16] (int8), d (f16)
///          16 sub-blocks of 16; q = 4 low bits | 2 high bits − 32; x = d·scale·q.
///   Q8_K  292 bytes: d (f32), qs[256] (int8), bsums[16] (int16: Σq per 16)
///          not a weight format: what ggml converts activations to for the K-quant products.
///
/// Inside a K super-block, values go in groups: Q2_K/Q3_K read 32 bytes of qs four times (bit
/// pairs 0-1, 2-3, 4-5, 6-7) per 128 values; Q4_K/Q5_K read 32 bytes of qs as low nibbles then
/// high nibbles per 64 values (qh bit 2j, 2j+1 for the fifth bits); Q6_K per 128 values reads
/// ql[0..<64] low nibbles, then high nibbles, with qh's bit pairs 0-1, 2-3, 4-5, 6-7.
/// F32, F16 and BF16 are plain (blocks of one value).
public enum GGMLType: UInt32, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case bf16 = 30

    /// Values per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        }
    }

    /// The K-quants: super-blocks of 256 values with sub-block scales.
    public var isKQuant: Bool {
        switch self {
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return true
        default: return false
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
