import Foundation
import NN
import Tensors

/// A GGUF model file of any architecture the project runs, as a `DecoderModel` whose weights stay
/// in their blocks in the mapped file: `general.architecture` picks the reader (`GGUFLlama` for
/// "llama", `GGUFGemma3` for "gemma3", `GGUFGPT2` for "gpt2").
public enum GGUFModel {
    /// How the model computes with its quantized weights.
    public enum Arithmetic: Sendable {
        /// As llama.cpp's CPU path does (the default, so results and speed compare): activations
        /// rounded to 8-bit blocks before each product with block-quantized weights (integer dot
        /// products), q/k/v and the attention output rounded to F16 (its F16 KV cache).
        case llamaCpp
        /// Float32 throughout on the dequantized weights (what transformers would compute).
        case float32
    }

    /// The architectures this reader knows, by their GGUF name.
    public static let architectures = ["llama", "gemma3", "gpt2"]

    public static func load(_ file: GGUFFile, arithmetic: Arithmetic = .llamaCpp) throws(ModelError) -> DecoderModel {
        switch file["general.architecture"]?.string {
        case "llama": return try GGUFLlama.load(file, arithmetic: arithmetic)
        case "gemma3": return try GGUFGemma3.load(file, arithmetic: arithmetic)
        case "gpt2": return try GGUFGPT2.load(file, arithmetic: arithmetic)
        case let other:
            throw .file(file.path, "general.architecture is \(other.map { "\"\($0)\"" } ?? "missing"); supported: \(architectures.joined(separator: ", "))")
        }
    }
}

/// A GGUF file's weights handed to a model's loader, each checked against the shape the config
/// implies (ggml dims are innermost first, so (cols, rows) in the file is our (rows, cols)).
struct GGUFWeights {
    let file: GGUFFile
    /// Round activations as llama.cpp does (`Arithmetic.llamaCpp`).
    let ggml: Bool

    func matrix(_ name: String, _ rows: Int, _ cols: Int) throws(ModelError) -> QuantizedMatrix {
        guard let info = file.tensorInfo(name) else { throw .file(file.path, "missing tensor \(name)") }
        guard info.dims == [cols, rows] || (rows == 1 && info.dims == [cols]) else {
            throw .file(file.path, "\(name): expected \(Shape.describe([rows, cols])), got \(Shape.describe(info.dims.reversed()))")
        }
        return try file.matrix(name)
    }

    func linear(_ name: String, _ rows: Int, _ cols: Int) throws(ModelError) -> QuantizedLinear {
        QuantizedLinear(try matrix(name, rows, cols), roundActivations: ggml)
    }

    func embedding(_ name: String, _ rows: Int, _ cols: Int) throws(ModelError) -> QuantizedEmbedding {
        QuantizedEmbedding(try matrix(name, rows, cols), roundActivations: ggml)
    }

    /// An RMSNorm scaling by the stored weight (size).
    func rmsNorm(_ name: String, _ size: Int, eps: Float) throws(ModelError) -> RMSNorm {
        RMSNorm(weight: try matrix(name, 1, size).dequantized().reshaped([size]), eps: eps)
    }

    /// Layer `index` of `spec`, its weights named "blk.N." + `names[role]`.
    func layer(_ spec: DecoderConfig, index: Int, names: [DecoderWeight: String], eps: Float, rng: RandomGenerator) throws(ModelError) -> DecoderLayer {
        let p = "blk.\(index)."
        return try DecoderLayer(spec, index: index, rng: rng,
            linear: { w, rows, cols throws(ModelError) in try linear(p + names[w]!, rows, cols) },
            norm: { w, size throws(ModelError) in try rmsNorm(p + names[w]!, size, eps: eps) })
    }
}
