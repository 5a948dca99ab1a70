import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `llm explain`: one recorded forward pass, shown as a self-contained HTML page (or JSON).
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look inside the model: attention maps, the logit lens, norms and token surprise for a prompt (HTML report or JSON).")

    @Option(help: "A GGUF file, a model folder (config.json + model.safetensors), or a training or fine-tuning run.") var model: String
    @Option(help: "The prompt text (BOS added where the model wants one).") var prompt: String?
    @Option(help: "The prompt as token ids (instead of --prompt).") var ids: String?
    @Option(name: .customLong("continue"), help: ArgumentHelp("Extend the prompt by up to N greedy tokens first (ending early at a stop token), and explain them too.", valueName: "N"))
    var continuation = 0
    @Option(help: ArgumentHelp("The HTML report to write (one self-contained file; open it in a browser).", valueName: "report.html")) var output: String?
    @Flag(help: "Print every number as one JSON object on stdout (ids, pieces, attentions, hidden_states, logit_lens, surprise, top_predictions, norms).") var json = false
    @Option(help: "Tokenizer (default: the model's own, else GPT-2's for a 50257-token vocabulary).") var tokenizer: String?
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        try checkPrompt(prompt, ids: ids)
        try atLeast(0, continuation, "--continue", zero: "the prompt alone")
        guard output != nil || json else { throw CLIError("give --output report.html, or --json to print the numbers") }
        try outputFile(output, "--output")
        try checkTokenizer(tokenizer)
    }

    func run() throws {
        global.apply()
        let loaded = try loading.load(model, tokenizer: tokenizer)
        let promptIds: [Int32]
        if let prompt { promptIds = try loaded.encode(prompt) } else {
            promptIds = try parseIds(ids ?? "", source: "--ids").map { Int32(bitPattern: $0) }
        }
        guard !promptIds.isEmpty else { throw CLIError("--prompt: the prompt encodes to no tokens") }
        try loaded.check(promptIds, what: prompt == nil ? "--ids" : "--prompt")
        let context = loaded.model.contextLength
        guard promptIds.count <= context else {
            throw CLIError("\(prompt == nil ? "--ids" : "--prompt"): \(promptIds.count) tokens, more than the model's context of \(context)")
        }
        guard promptIds.count + continuation <= context else {
            throw CLIError("--continue \(continuation): the prompt's \(promptIds.count) tokens and \(continuation) more exceed the model's context of \(context)")
        }
        let started = Date()
        let explanation = try Explanation.make(loaded, prompt: promptIds, continuation: continuation)
        let seconds = Date().timeIntervalSince(started)
        if let output {
            try atomicWrite(explanation.html(), to: output)
            let generated = explanation.ids.count - explanation.promptLength
            FileHandle.standardError.write(Data(("wrote \(output): \(explanation.ids.count) tokens" + (generated > 0 ? " (\(generated) generated)" : "")
                       + ", \(explanation.layers) layers × \(explanation.heads) heads, in \(String(format: "%.2f", seconds)) s\n").utf8))
        }
        if json { FileHandle.standardOutput.write(explanation.json()) }
    }
}
