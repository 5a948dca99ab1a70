import ArgumentParser
import Foundation
import Models
import Tokenization

/// `llm export`: a trained run (or any model folder) as a Hugging Face GPT-2 folder.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export a model as a Hugging Face GPT-2 folder (config.json + model.safetensors).")
    @Option(help: "A run folder or model folder.") var model: String
    @Option(help: "Format: hf.") var format = "hf"
    @Option(help: "Output folder.") var output: String

    func run() throws {
        guard format == "hf" else { throw CLIError("--format must be hf, not '\(format)'") }
        let gpt = try loadModel(model)
        try HuggingFaceGPT2.save(gpt, to: output)
        // Keep the tokenizer with the weights when the run trained its own.
        let folder = modelFolder(model)
        if FileManager.default.fileExists(atPath: folder + "/" + Tokenizer.configFileName) {
            try Tokenizer.load(directory: folder).save(to: output)
        }
        print("wrote \(output)/config.json and \(output)/model.safetensors (\(grouped(gpt.parameterCount)) parameters); load with transformers.GPT2LMHeadModel.from_pretrained(\"\(output)\")")
    }
}
