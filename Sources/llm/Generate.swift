import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// `llm generate`: continue a prompt with a model, streaming the text as it comes.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt (KV cache, streamed).")

    @Option(help: "A model folder (config.json + model.safetensors).") var model: String
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "The prompt as token ids (instead of --prompt).") var ids: String?
    @Option(help: "Tokens to generate at most.") var maxNewTokens = 100
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 1
    @Option(help: "Sample among the k most likely tokens.") var topK: Int?
    @Option(help: "Sample among the most likely tokens whose probability adds up to p.") var topP: Float?
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Stop when the text contains this string (repeatable).") var stop: [String] = []
    @Option(help: "Tokenizer (default: the model folder's, else GPT-2's for a 50257-token vocabulary).") var tokenizer: String?
    @Flag(help: "Print {\"ids\": [...generated ids only...]} and nothing else.") var json = false
    @Flag(help: "Recompute the whole prefix for every token instead of using the KV cache.") var noCache = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        let gpt = try loadModel(model)
        let folder = modelFolder(model)
        let tok = try modelTokenizer(folder: folder, vocabularySize: gpt.config.vocabularySize, explicit: tokenizer)
        let chars = tokenizer == nil ? try loadCharTokenizer(folder) : nil
        let promptIds: [Int32]
        switch (prompt, ids) {
        case let (text?, nil) where chars != nil:
            promptIds = chars!.encode(text).map { Int32($0) }
        case let (text?, nil):
            guard let tok else { throw CLIError("\(model) has no tokenizer: give --tokenizer, or the prompt as --ids") }
            promptIds = try tok.encode(text, allowedSpecial: .all).map { Int32($0) }
        case let (nil, list?): promptIds = try parseIds(list, source: "--ids").map { Int32(bitPattern: $0) }
        default: throw CLIError("give --prompt or --ids (one of them)")
        }
        guard !promptIds.isEmpty else { throw CLIError("the prompt is empty") }
        for (i, id) in promptIds.enumerated() where id < 0 || Int(id) >= gpt.config.vocabularySize {
            throw CLIError("prompt id \(id) at position \(i) is outside the model's vocabulary (0..<\(gpt.config.vocabularySize))")
        }
        guard promptIds.count < gpt.config.contextLength else {
            throw CLIError("the prompt has \(promptIds.count) tokens; the context holds \(gpt.config.contextLength)")
        }
        var generator = Generator(model: gpt, sampler: Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed))
        generator.useCache = !noCache
        if let eot = tok?.specialTokenId("<|endoftext|>") { generator.stopIds = [Int32(eot)] }

        if let chars, !json {
            let out = generator.generate(prompt: promptIds, maxNewTokens: maxNewTokens) { id in
                FileHandle.standardOutput.write(Data(((try? chars.decode([UInt32(id)])) ?? "").utf8))
                return true
            }
            print("")
            FileHandle.standardError.write(Data("[\(out.count) tokens]\n".utf8))
            return
        }
        if json || tok == nil {
            let out = generator.generate(prompt: promptIds, maxNewTokens: maxNewTokens)
            print("{\"ids\": [" + out.map(String.init).joined(separator: ", ") + "]}")
            return
        }
        // Stream text, holding back a tail that could still become a stop string.
        var decoder = StreamingDecoder(tok!)
        var pending = "", finished = false
        let holdBack = max(0, (stop.map(\.count).max() ?? 0) - 1)
        let started = Date()
        var count = 0
        _ = generator.generate(prompt: promptIds, maxNewTokens: maxNewTokens) { id in
            count += 1
            pending += (try? decoder.push(UInt32(id))) ?? ""
            if let hit = stop.compactMap({ pending.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
                pending = String(pending[..<hit.lowerBound])
                finished = true
                return false
            }
            if pending.count > holdBack {
                let cut = pending.index(pending.endIndex, offsetBy: -holdBack)
                FileHandle.standardOutput.write(Data(pending[..<cut].utf8))
                pending = String(pending[cut...])
            }
            return true
        }
        if !finished { pending += decoder.finish() }
        FileHandle.standardOutput.write(Data((pending + "\n").utf8))
        let seconds = Date().timeIntervalSince(started)
        FileHandle.standardError.write(Data("[\(count) tokens in \(String(format: "%.2f", seconds)) s, \(String(format: "%.1f", Double(count) / max(seconds, 1e-9))) tok/s]\n".utf8))
    }
}

/// The tokenizer that goes with a model folder: `--tokenizer`, else one saved in the folder, else
/// GPT-2's when the vocabulary is GPT-2's; nil when there is none.
func modelTokenizer(folder: String, vocabularySize: Int, explicit: String?) throws -> Tokenizer? {
    if let explicit { return try explicit == "gpt2" ? loadGPT2() : Tokenizer.load(path: explicit) }
    let fm = FileManager.default
    if fm.fileExists(atPath: folder + "/" + Tokenizer.configFileName) || fm.fileExists(atPath: folder + "/tokenizer.json") {
        return try Tokenizer.load(path: folder)
    }
    return vocabularySize == 50257 ? try loadGPT2() : nil
}
