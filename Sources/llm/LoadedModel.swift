import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `--arithmetic`: how a GGUF model computes (see GGUFLlama.Arithmetic).
struct ArithmeticOption: ParsableArguments {
    @Option(help: ArgumentHelp("GGUF models: llama.cpp (8-bit activations, integer dot products, F16 attention: llama.cpp's numbers and speed) or float32 (exact Float32 on the dequantized weights: slower, and stable under tiny changes in float order).", valueName: "llama.cpp|float32"))
    var arithmetic: String = "llama.cpp"

    func value() throws -> GGUFLlama.Arithmetic {
        switch arithmetic {
        case "llama.cpp", "llamacpp", "ggml": return .llamaCpp
        case "float32", "f32": return .float32
        default: throw CLIError("--arithmetic \(arithmetic): expected llama.cpp or float32")
        }
    }
}

/// Loads `--model PATH` (see `LoadedModel.load`).
func loadLanguageModel(_ path: String, tokenizer explicit: String? = nil, arithmetic: GGUFLlama.Arithmetic = .llamaCpp) throws -> LoadedModel {
    try LoadedModel.load(path, tokenizer: explicit, arithmetic: arithmetic)
}
