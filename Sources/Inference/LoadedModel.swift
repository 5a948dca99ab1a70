import Foundation
import Models
import Tokenization
import Training

/// A failure of the runtime (loading, generating) that a command or a server reports in one line.
public struct InferenceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A model ready for generation, chat, logits and perplexity, whatever its format — a GGUF file,
/// a Hugging Face GPT-2 or Llama folder, or one of our training runs — with everything that goes
/// with it: its tokenizer, BOS and stop ids, and chat format. `llm generate`, `llm chat` and a
/// server all start from `LoadedModel.load`.
public struct LoadedModel {
    public let model: any LanguageModel
    public let tokenizer: (any TextTokenizer)?
    public let chars: CharTokenizer?
    /// Prepended to encoded text when the model expects it (tokenizer.ggml.add_bos_token).
    public let bos: Int32?
    /// Ids that end a reply (<|endoftext|>, the GGUF eos, <|im_end|>).
    public let stopIds: Set<Int32>
    /// The id that ends a document or a reply (the GGUF eos, <|endoftext|>): fine-tuning ends
    /// every response with it.
    public let eos: Int32?

    /// The id fine-tuning ends every response with: `eos`, else the lowest stop id, else 0.
    public var responseEnd: Int32 { eos ?? stopIds.min() ?? 0 }
    public let chat: ChatTemplate?
    public let summary: String
    public let loadSeconds: Double

    /// Text → ids (special tokens in the text are parsed), BOS first when the model wants it.
    public func encode(_ text: String) throws -> [Int32] {
        if let chars { return chars.encode(text).map { Int32($0) } }
        guard let tokenizer else { throw InferenceError("this model has no tokenizer: give --tokenizer, or ids") }
        return (bos.map { [$0] } ?? []) + (try tokenizer.encode(text, allowedSpecial: .all)).map { Int32($0) }
    }

    /// Text → ids with special-token text read as plain text, no BOS.
    public func encodePlain(_ text: String) throws -> [Int32] {
        if let chars { return chars.encode(text).map { Int32($0) } }
        guard let tokenizer else { throw InferenceError("this model has no tokenizer: give --tokenizer") }
        return tokenizer.encodeOrdinary(text).map { Int32($0) }
    }

    /// Ids → text.
    public func decode(_ ids: [Int32]) throws -> String {
        if let chars { return try chars.decode(ids.map { UInt32($0) }) }
        guard let tokenizer else { throw InferenceError("this model has no tokenizer") }
        return try tokenizer.decode(ids.map { UInt32(bitPattern: $0) })
    }

    /// Checks ids against the vocabulary, naming the first bad one.
    public func check(_ ids: [Int32], what: String) throws {
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= model.vocabularySize {
            throw InferenceError("\(what): id \(id) at position \(i) is outside the model's vocabulary (0..<\(model.vocabularySize))")
        }
    }

    /// A text stream for this model's tokenizer that ends at any of `stops`.
    public func textStream(stops: [String] = []) throws -> TextStream {
        if let chars { return TextStream(chars: chars, stops: stops) }
        guard let tokenizer else { throw InferenceError("this model has no tokenizer") }
        return TextStream(tokenizer: tokenizer, stops: stops)
    }

    /// Loads `path`: a .gguf file, a Hugging Face GPT-2 or Llama folder, a training run, or an
    /// SFT or DPO fine-tuning run (its base with its adapter, or its fully fine-tuned model); with
    /// `adapter`, a LoRA adapter folder (ours or PEFT's) goes into the model, unmerged.
    public static func load(_ path: String, tokenizer explicit: String? = nil, adapter: String? = nil,
                            arithmetic: GGUFModel.Arithmetic = .llamaCpp) throws -> LoadedModel {
        let started = Date()
        if FineTuneRun.isRun(path) {
            let info = try FineTuneRun.readInfo(path)
            guard info.options.task != .classify else {
                throw InferenceError("\(path) is a classification run: use llm classify or llm evaluate")
            }
            guard adapter == nil else { throw InferenceError("\(path) is a fine-tuning run already; give its base as --model to add --adapter") }
            if info.options.method == .full {
                let base = try load(info.base, tokenizer: explicit ?? info.tokenizer, arithmetic: arithmetic)
                let tuned = try load(path + "/" + FineTuneRun.modelFolder, tokenizer: explicit ?? info.tokenizer, arithmetic: arithmetic)
                return base.replacing(model: tuned.model, summary: tuned.summary + " (fully fine-tuned in \(path))", started: started)
            }
            return try load(info.base, tokenizer: explicit ?? info.tokenizer, adapter: path, arithmetic: arithmetic)
        }
        if let adapter {
            let base = try load(path, tokenizer: explicit, arithmetic: arithmetic)
            guard let decoder = base.model as? DecoderModel else { throw InferenceError("\(path): this model takes no adapters") }
            let contents: PEFTAdapter.Contents
            do { contents = try PEFTAdapter.load(adapter, into: decoder) } catch {
                throw InferenceError("--adapter \(adapter): \(error)")
            }
            guard contents.score == nil else { throw InferenceError("--adapter \(adapter) belongs to a classifier: use llm classify --model \(adapter)") }
            decoder.eval()
            let summary = base.summary + ", LoRA r=\(contents.rank) on \(contents.targets.map(\.rawValue).joined(separator: ",")) from \(adapter)"
            return base.replacing(model: decoder, summary: summary, started: started)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw InferenceError("\(path): no such file or folder") }
        if !isDir.boolValue {
            guard path.lowercased().hasSuffix(".gguf") else { throw InferenceError("\(path): expected a .gguf file or a model folder") }
            let file = try GGUFFile(path: path)
            let model = try GGUFModel.load(file, arithmetic: arithmetic)
            let vocab = try GGUFVocabulary(file)
            let tok = try explicit.map { try loadTokenizer(path: $0) } ?? vocab.tokenizer
            // The file's template, else the architecture's own format (Gemma files carry none).
            let chat = vocab.chatTemplate.flatMap { ChatTemplate(jinja: $0) } ?? (model is Gemma3 ? .gemma : ChatTemplate())
            var stops = Set<Int32>()
            if let eos = vocab.eos { stops.insert(eos) }
            for s in [chat.turnEnd, "<|endoftext|>"] { if let id = tok.specialTokenId(s) { stops.insert(Int32(id)) } }
            let name = file["general.name"]?.string ?? (path as NSString).lastPathComponent
            return LoadedModel(model: model, tokenizer: tok, chars: nil, bos: vocab.addBos ? vocab.bos : nil, stopIds: stops, eos: vocab.eos,
                               chat: chat, summary: "\(name): \(model.summary), GGUF \(fileTypes(file))",
                               loadSeconds: Date().timeIntervalSince(started))
        }
        let folder = modelFolder(path)
        guard FileManager.default.fileExists(atPath: folder + "/config.json") else {
            throw InferenceError("\(path): no config.json (expected a model folder, a training run or a .gguf file)")
        }
        let model = try ModelFolder.load(folder)
        let tok = try modelTokenizer(folder: folder, vocabularySize: model.vocabularySize, explicit: explicit)
        let chars = explicit == nil ? try loadCharTokenizer(folder) : nil
        let chat: ChatTemplate? = model is Gemma3 ? .gemma : model is Llama ? ChatTemplate() : nil
        var stops = Set<Int32>()
        for s in [chat?.turnEnd ?? ChatTemplate.end, "<|endoftext|>", "<eos>"] { if let id = tok?.specialTokenId(s) { stops.insert(Int32(id)) } }
        let eos = (tok?.specialTokenId("<|endoftext|>") ?? tok?.specialTokenId("<eos>")).map { Int32($0) }
        // A SentencePiece model (Gemma's, Llama 2's) starts every text with its BOS.
        let bos: Int32? = (tok as? SentencePieceTokenizer).flatMap { $0.addBOS ? $0.bos.map { Int32($0) } : nil }
        return LoadedModel(model: model, tokenizer: tok, chars: chars, bos: bos, stopIds: stops, eos: eos, chat: chat,
                           summary: model.summary + ", float32", loadSeconds: Date().timeIntervalSince(started))
    }
}

extension LoadedModel {
    /// The same tokenizer, stops and chat format around another model.
    public func replacing(model: any LanguageModel, summary: String, started: Date) -> LoadedModel {
        LoadedModel(model: model, tokenizer: tokenizer, chars: chars, bos: bos, stopIds: stopIds, eos: eos, chat: chat,
                    summary: summary, loadSeconds: Date().timeIntervalSince(started))
    }
}

/// The folder holding a model's files: PATH itself, or a training run's latest checkpoint.
public func modelFolder(_ path: String) -> String {
    FileManager.default.fileExists(atPath: path + "/config.json") ? path : (Checkpoint.latest(path) ?? path)
}

/// The tokenizer that goes with a model folder: `explicit` ("gpt2" or a path), else one saved in
/// the folder, else GPT-2's when the vocabulary is GPT-2's; nil when there is none.
public func modelTokenizer(folder: String, vocabularySize: Int, explicit: String?) throws -> (any TextTokenizer)? {
    if let explicit { return try explicit == "gpt2" ? loadGPT2() : loadTokenizer(path: explicit) }
    let fm = FileManager.default
    // A SentencePiece model (Gemma's and Llama 2's folders ship one beside a tokenizer.json).
    if fm.fileExists(atPath: folder + "/tokenizer.model") { return try loadTokenizer(path: folder + "/tokenizer.model") }
    if fm.fileExists(atPath: folder + "/" + Tokenizer.configFileName) || fm.fileExists(atPath: folder + "/tokenizer.json") {
        return try Tokenizer.load(path: folder)
    }
    return vocabularySize == 50257 ? try loadGPT2() : nil
}

/// Any tokenizer by path: a GGUF file's vocabulary, a SentencePiece `.model`, our tokenizer
/// folder, a Hugging Face tokenizer.json (or a folder holding one), a .tiktoken ranks file.
public func loadTokenizer(path: String) throws -> any TextTokenizer {
    if path.lowercased().hasSuffix(".gguf") { return try GGUFVocabulary(GGUFFile(path: path)).tokenizer }
    return try loadTextTokenizer(path: path)
}

/// Writes a model's tokenizer into a model folder so that both we and transformers read it: a
/// byte-level BPE as our folder + tokenizer.json, a SentencePiece one as tokenizer.model.
public func saveTokenizer(_ tokenizer: any TextTokenizer, to folder: String, eos: Int32?) throws {
    switch tokenizer {
    case let bpe as Tokenizer:
        try bpe.save(to: folder)
        try bpe.saveHuggingFace(to: folder, eos: eos.map { UInt32($0) })
    case let sentencePiece as SentencePieceTokenizer:
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try sentencePiece.save(modelFile: folder + "/tokenizer.model")
    default:
        throw InferenceError("cannot save a \(type(of: tokenizer)) tokenizer")
    }
}

/// The file a character-level tokenizer is saved in, in a run or model folder.
public let charTokenizerFile = "char-tokenizer.json"

/// A character-level tokenizer saved in `folder`, if there is one.
public func loadCharTokenizer(_ folder: String) throws -> CharTokenizer? {
    guard let data = FileManager.default.contents(atPath: folder + "/" + charTokenizerFile) else { return nil }
    do { return try JSONDecoder().decode(CharTokenizer.self, from: data) } catch { throw InferenceError("\(folder)/\(charTokenizerFile): \(describeJSONError(error, in: data))") }
}

/// Where fetched reference data lives: $LLM_CACHE, else `.cache` beside the build folder of the
/// running executable, else `.cache` in the current folder.
public func cacheDirectory() -> String {
    if let env = ProcessInfo.processInfo.environment["LLM_CACHE"] { return env }
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let repo = exe.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidate = repo.appendingPathComponent(".cache").path
    if FileManager.default.fileExists(atPath: candidate) { return candidate }
    return FileManager.default.currentDirectoryPath + "/.cache"
}

/// GPT-2's tokenizer from the fetched ranks file.
public func loadGPT2() throws -> Tokenizer {
    let path = cacheDirectory() + "/gpt2.tiktoken"
    guard FileManager.default.fileExists(atPath: path) else {
        throw InferenceError("GPT-2's ranks file is not at \(path): run scripts/fetch/gpt2-tiktoken.sh (make demo and make test do)")
    }
    return try Tokenizer.gpt2(ranksFile: path)
}

/// "Q4_1 ×210, F32 ×61, Q8_0 ×1".
public func fileTypes(_ file: GGUFFile) -> String {
    var counts: [String: Int] = [:]
    for t in file.tensors { counts[t.typeName, default: 0] += 1 }
    return counts.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
}
