import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `llm generate`: continue a prompt with a model, streaming the text as it comes.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt (KV cache, streamed).")

    @Option(help: "A GGUF file, a model folder (config.json + model.safetensors), or a training run.") var model: String
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "The prompt as token ids (instead of --prompt).") var ids: String?
    @Flag(help: "Send the prompt as a user message in the model's chat format (ChatML) and stop at the end of the reply.") var chat = false
    @Option(help: "With --chat: the system message (default: the model's own).") var system: String?
    @Option(help: "Tokens to generate at most.") var maxNewTokens = 100
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 1
    @Option(help: "Sample among the k most likely tokens.") var topK: Int?
    @Option(help: "Sample among the most likely tokens whose probability adds up to p.") var topP: Float?
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Stop when the text contains this string (repeatable).") var stop: [String] = []
    @Option(help: "Tokenizer (default: the model's own, else GPT-2's for a 50257-token vocabulary).") var tokenizer: String?
    @Flag(help: "Print {\"ids\": [...generated ids only...]} and nothing else.") var json = false
    @Flag(help: "Recompute the whole prefix for every token instead of using the KV cache.") var noCache = false
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        try checkPrompt(prompt, ids: ids)
        if chat && prompt == nil { throw CLIError("--chat needs --prompt (the user message as text)") }
        if system != nil && !chat { throw CLIError("--system goes with --chat") }
        try positive(maxNewTokens, "--max-new-tokens")
        try checkSampling(temperature: temperature, topK: topK, topP: topP)
        for s in stop { try nonEmpty(s, "--stop") }
        try checkTokenizer(tokenizer)
    }

    func run() throws {
        global.apply()
        let loaded = try loading.load(model, tokenizer: tokenizer)
        let lm = loaded.model
        let promptIds: [Int32]
        switch (prompt, ids) {
        case let (text?, nil) where chat:
            guard let template = loaded.chat else { throw CLIError("--chat: \(model) has no chat format") }
            var messages: [ChatTemplate.Message] = []
            if let system { messages.append(.init(.system, system)) }
            messages.append(.init(.user, text))
            promptIds = try loaded.encode(template.render(messages))
        case let (text?, nil): promptIds = try loaded.encode(text)
        case let (nil, list?): promptIds = try parseIds(list, source: "--ids").map { Int32(bitPattern: $0) }
        default: throw CLIError("give --prompt or --ids (one of them)")
        }
        guard !promptIds.isEmpty else { throw CLIError("the prompt is empty") }
        try loaded.check(promptIds, what: "prompt")
        guard promptIds.count < lm.contextLength else {
            throw CLIError("the prompt has \(promptIds.count) tokens; the context holds \(lm.contextLength)")
        }
        var generator = Generator(model: lm, sampler: Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed))
        generator.useCache = !noCache
        generator.stopIds = loaded.stopIds

        if json || (loaded.tokenizer == nil && loaded.chars == nil) {
            let out = try generator.generate(prompt: promptIds, maxNewTokens: maxNewTokens)
            print("{\"ids\": [" + out.map(String.init).joined(separator: ", ") + "]}")
            return
        }
        // Stream text as it becomes final, ending at a stop string (see TextStream).
        var stream = try loaded.textStream(stops: stop)
        let started = Date()
        var count = 0
        _ = try generator.generate(prompt: promptIds, maxNewTokens: maxNewTokens) { id in
            count += 1
            FileHandle.standardOutput.write(Data(stream.push(id).utf8))
            return !stream.stopped
        }
        FileHandle.standardOutput.write(Data((stream.finish() + "\n").utf8))
        let seconds = Date().timeIntervalSince(started)
        let st = generator.stats
        FileHandle.standardError.write(Data("[\(count) tokens in \(String(format: "%.2f", seconds)) s; prompt \(st.promptTokens) tokens at \(String(format: "%.1f", st.promptTokensPerSecond)) tok/s, generation \(String(format: "%.1f", st.generatedTokensPerSecond)) tok/s]\n".utf8))
    }
}
