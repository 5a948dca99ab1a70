import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// How `--model` is loaded: `--arithmetic` (how a GGUF model computes, see GGUFModel.Arithmetic)
/// and `--adapter` (a LoRA adapter applied unmerged).
struct ModelLoading: ParsableArguments {
    @Option(help: ArgumentHelp("A LoRA adapter folder (a fine-tuning run, or PEFT's adapter_config.json + adapter_model.safetensors), applied unmerged.", valueName: "folder"))
    var adapter: String?

    @Option(help: ArgumentHelp("GGUF models: llama.cpp (8-bit activations, integer dot products, F16 attention: llama.cpp's numbers and speed) or float32 (exact Float32 on the dequantized weights: slower, and stable under tiny changes in float order).", valueName: "llama.cpp|float32"))
    var arithmetic: String = "llama.cpp"

    func validate() throws {
        _ = try value()
        try existing(adapter, "--adapter", .folder)
        if let adapter, !FileManager.default.fileExists(atPath: adapter + "/adapter_config.json") {
            throw CLIError("--adapter \(adapter): no adapter_config.json there (expected a LoRA fine-tuning run or a PEFT adapter folder)")
        }
    }

    func value() throws -> GGUFModel.Arithmetic {
        switch arithmetic {
        case "llama.cpp", "llamacpp", "ggml": return .llamaCpp
        case "float32", "f32": return .float32
        default: throw CLIError("--arithmetic \(arithmetic): expected llama.cpp or float32")
        }
    }

    /// Loads `--model PATH` (see `LoadedModel.load`).
    /// `arithmetic` overrides --arithmetic (which is still checked).
    func load(_ path: String, tokenizer explicit: String? = nil, arithmetic: GGUFModel.Arithmetic? = nil) throws -> LoadedModel {
        try validate()
        let chosen = try value()
        return try LoadedModel.load(path, tokenizer: explicit, adapter: adapter, arithmetic: arithmetic ?? chosen)
    }
}
