import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `llm export`: a trained run (or any model folder) as a Hugging Face folder of its architecture.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export a model as a Hugging Face folder, GPT-2 or Llama (config.json + model.safetensors).")
    @Option(help: "A run folder or model folder.") var model: String
    @Option(help: "Format: hf.") var format = "hf"
    @Option(help: "Output folder.") var output: String

    func validate() throws {
        try existing(model, "--model", .folder)
        try oneOf(format, "--format", ["hf"])
        try outputFolder(output, "--output")
    }

    func run() throws {
        let folder = modelFolder(model)
        guard FileManager.default.fileExists(atPath: folder + "/config.json") else { throw CLIError("\(model): no config.json (expected a run or model folder)") }
        let loaded = try ModelFolder.load(folder)
        try loaded.save(to: output)
        // Keep the tokenizer with the weights when the run trained its own.
        if FileManager.default.fileExists(atPath: folder + "/" + Tokenizer.configFileName) {
            try Tokenizer.load(directory: folder).save(to: output)
        }
        print("wrote \(output)/config.json and \(output)/model.safetensors (\(grouped(loaded.parameterCount)) parameters); load with transformers.\(loaded is Llama ? "LlamaForCausalLM" : "GPT2LMHeadModel").from_pretrained(\"\(output)\")")
    }
}
