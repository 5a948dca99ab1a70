import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `llm chat`: a conversation with an instruction-tuned model, one line of stdin per user turn.
///
/// A `ChatSession` (Inference) keeps the conversation and its KV cache; each turn runs only the
/// tokens that are new. Replies stream as they are generated. Commands: /reset forgets the
/// conversation, /exit (or end of input) quits.
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Talk with a chat model (reads user turns from stdin, one per line).")
    @Option(help: "A GGUF file or a model folder with a chat format.") var model: String
    @Option(help: "The system message (default: the model's own).") var system: String?
    @Option(help: "Tokens per reply at most.") var maxNewTokens = 512
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0.7
    @Option(help: "Sample among the k most likely tokens.") var topK: Int? = 40
    @Option(help: "Sample among the most likely tokens whose probability adds up to p.") var topP: Float? = 0.9
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        try positive(maxNewTokens, "--max-new-tokens")
        try checkSampling(temperature: temperature, topK: topK, topP: topP)
    }

    func run() throws {
        global.apply()
        let loaded = try loading.load(model)
        guard loaded.chat != nil, loaded.tokenizer != nil else { throw CLIError("\(model) has no chat format") }
        let interactive = isatty(0) != 0
        func say(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
        say("\(loaded.summary); loaded in \(String(format: "%.2f", loaded.loadSeconds)) s\n")
        say("Type a message and press Enter. /reset starts over, /exit quits.\n")
        let session = try ChatSession(loaded, system: system, sampler: Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed))
        while true {
            if interactive { say("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" {
                session.reset()
                say("(conversation cleared)\n")
                continue
            }
            let reply = try session.send(input, maxNewTokens: maxNewTokens) { FileHandle.standardOutput.write(Data($0.utf8)) }
            FileHandle.standardOutput.write(Data("\n".utf8))
            let st = reply.stats
            say("[prompt \(st.promptTokens) tokens, \(String(format: "%.1f", st.promptTokensPerSecond)) tok/s · reply \(st.generatedTokens) tokens, \(String(format: "%.1f", st.generatedTokensPerSecond)) tok/s\(reply.truncated ? " · cut at the token limit" : "")]\n")
        }
    }
}
