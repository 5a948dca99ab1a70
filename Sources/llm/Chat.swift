import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `llm chat`: a conversation with an instruction-tuned model, one line of stdin per user turn.
///
/// The whole conversation is rendered with the model's chat format each turn; the KV cache keeps
/// every token already processed, so a turn only runs the tokens that are new (the cache is cut
/// back to the longest prefix it shares with the new rendering). Replies stream as they are
/// generated. Commands: /reset forgets the conversation, /exit (or end of input) quits.
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Talk with a chat model (reads user turns from stdin, one per line).")
    @Option(help: "A GGUF file or a model folder with a chat format.") var model: String
    @Option(help: "The system message (default: the model's own).") var system: String?
    @Option(help: "Tokens per reply at most.") var maxNewTokens = 512
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0.7
    @Option(help: "Sample among the k most likely tokens.") var topK: Int? = 40
    @Option(help: "Sample among the most likely tokens whose probability adds up to p.") var topP: Float? = 0.9
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @OptionGroup var numerics: ArithmeticOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        let loaded = try loadLanguageModel(model, arithmetic: numerics.value())
        guard let template = loaded.chat, let tokenizer = loaded.tokenizer else { throw CLIError("\(model) has no chat format") }
        let lm = loaded.model
        let interactive = isatty(0) != 0
        func say(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
        say("\(loaded.summary); loaded in \(String(format: "%.2f", loaded.loadSeconds)) s\n")
        say("Type a message and press Enter. /reset starts over, /exit quits.\n")

        var generator = Generator(model: lm, sampler: Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed))
        generator.stopIds = loaded.stopIds
        let cache = lm.makeCache(batch: 1, capacity: lm.contextLength)
        var cached: [Int32] = []                          // the ids whose keys/values the cache holds
        var messages: [ChatTemplate.Message] = system.map { [.init(.system, $0)] } ?? []
        let baseMessages = messages

        while true {
            if interactive { say("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" {
                messages = baseMessages
                cache.reset()
                cached = []
                say("(conversation cleared)\n")
                continue
            }
            messages.append(.init(.user, input))
            var ids = try loaded.encode(template.render(messages))
            // Too long for the context: drop the oldest exchanges (the system message stays).
            while ids.count + maxNewTokens > lm.contextLength, let drop = messages.firstIndex(where: { $0.role != .system }),
                  messages.count - drop > 1 {
                messages.remove(at: drop)
                ids = try loaded.encode(template.render(messages))
            }
            guard ids.count < lm.contextLength else { throw CLIError("the message is longer than the model's context (\(lm.contextLength) tokens)") }
            // Keep the cached prefix that still matches; run only what follows it.
            var keep = 0
            while keep < min(cached.count, ids.count - 1) && cached[keep] == ids[keep] { keep += 1 }
            cache.truncate(to: keep)
            cached.removeLast(cached.count - keep)
            let fresh = Array(ids[keep...])

            var decoder = StreamingDecoder(tokenizer)
            let before = cache.length
            let reply = generator.generate(prompt: fresh, maxNewTokens: min(maxNewTokens, lm.contextLength - ids.count), cache: cache) { id in
                FileHandle.standardOutput.write(Data(((try? decoder.push(UInt32(id))) ?? "").utf8))
                return true
            }
            let tail = decoder.finish()
            FileHandle.standardOutput.write(Data((tail + "\n").utf8))
            cached += fresh + reply.prefix(cache.length - before - fresh.count)
            let text = (try? tokenizer.decode(reply.map { UInt32($0) })) ?? ""
            messages.append(.init(.assistant, text))
            let st = generator.stats
            say("[prompt \(st.promptTokens) tokens, \(String(format: "%.1f", st.promptTokensPerSecond)) tok/s · reply \(st.generatedTokens) tokens, \(String(format: "%.1f", st.generatedTokensPerSecond)) tok/s\(st.stoppedBy == nil ? " · cut at the token limit" : "")]\n")
        }
    }
}
