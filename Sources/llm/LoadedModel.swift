import ArgumentParser
import Foundation
import Inference
import Models
import Tokenization

/// A model ready for generation, chat, logits and perplexity, whatever its format:
/// a GPT folder or training run, a Hugging Face Llama folder, or a GGUF file.
struct LoadedModel {
    let model: any LanguageModel
    let tokenizer: Tokenizer?
    let chars: CharTokenizer?
    /// Prepended to encoded text when the model expects it (tokenizer.ggml.add_bos_token).
    let bos: Int32?
    /// Ids that end a reply (<|endoftext|>, the GGUF eos, <|im_end|>).
    let stopIds: Set<Int32>
    let chat: ChatTemplate?
    let summary: String
    let loadSeconds: Double

    /// Text → ids (special tokens in the text are parsed), BOS first when the model wants it.
    func encode(_ text: String) throws -> [Int32] {
        if let chars { return chars.encode(text).map { Int32($0) } }
        guard let tokenizer else { throw CLIError("this model has no tokenizer: give --tokenizer, or ids") }
        return (bos.map { [$0] } ?? []) + (try tokenizer.encode(text, allowedSpecial: .all)).map { Int32($0) }
    }

    /// Text → ids with special-token text read as plain text, no BOS.
    func encodePlain(_ text: String) throws -> [Int32] {
        if let chars { return chars.encode(text).map { Int32($0) } }
        guard let tokenizer else { throw CLIError("this model has no tokenizer: give --tokenizer") }
        return tokenizer.encodeOrdinary(text).map { Int32($0) }
    }

    /// Checks ids against the vocabulary, naming the first bad one.
    func check(_ ids: [Int32], what: String) throws {
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= model.vocabularySize {
            throw CLIError("\(what): id \(id) at position \(i) is outside the model's vocabulary (0..<\(model.vocabularySize))")
        }
    }
}

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

/// Loads `--model PATH`: a .gguf file, a Hugging Face Llama folder, or a GPT folder / training run.
func loadLanguageModel(_ path: String, tokenizer explicit: String? = nil, arithmetic: GGUFLlama.Arithmetic = .llamaCpp) throws -> LoadedModel {
    let started = Date()
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("\(path): no such file or folder") }
    if !isDir.boolValue {
        guard path.lowercased().hasSuffix(".gguf") else { throw CLIError("\(path): expected a .gguf file or a model folder") }
        let file = try GGUFFile(path: path)
        let model = try GGUFLlama.load(file, arithmetic: arithmetic)
        let vocab = try GGUFVocabulary(file)
        let tok = try explicit.map { try Tokenizer.load(path: $0) } ?? vocab.tokenizer
        var stops = Set<Int32>()
        if let eos = vocab.eos { stops.insert(eos) }
        if let end = tok.specialTokenId(ChatTemplate.end) { stops.insert(Int32(end)) }
        if let eot = tok.specialTokenId("<|endoftext|>") { stops.insert(Int32(eot)) }
        let c = model.config
        let name = file["general.name"]?.string ?? (path as NSString).lastPathComponent
        return LoadedModel(model: model, tokenizer: tok, chars: nil, bos: vocab.addBos ? vocab.bos : nil, stopIds: stops,
                           chat: vocab.chatTemplate.flatMap { ChatTemplate(jinja: $0) } ?? ChatTemplate(),
                           summary: "\(name): Llama, \(c.layers) layers, \(c.embedding) wide, \(c.heads) heads / \(c.kvHeads) kv, vocab \(c.vocabularySize), GGUF \(fileTypes(file))",
                           loadSeconds: Date().timeIntervalSince(started))
    }
    let folder = modelFolder(path)
    if HuggingFaceLlama.isLlama(folder: folder) {
        let model = try HuggingFaceLlama.load(folder: folder)
        let tok = try modelTokenizer(folder: folder, vocabularySize: model.config.vocabularySize, explicit: explicit)
        var stops = Set<Int32>()
        for s in [ChatTemplate.end, "<|endoftext|>"] { if let id = tok?.specialTokenId(s) { stops.insert(Int32(id)) } }
        let c = model.config
        return LoadedModel(model: model, tokenizer: tok, chars: nil, bos: nil, stopIds: stops, chat: ChatTemplate(),
                           summary: "Llama, \(c.layers) layers, \(c.embedding) wide, \(c.heads) heads / \(c.kvHeads) kv, vocab \(c.vocabularySize), float32",
                           loadSeconds: Date().timeIntervalSince(started))
    }
    let gpt = try loadModel(path)
    let tok = try modelTokenizer(folder: folder, vocabularySize: gpt.config.vocabularySize, explicit: explicit)
    let chars = explicit == nil ? try loadCharTokenizer(folder) : nil
    var stops = Set<Int32>()
    if let eot = tok?.specialTokenId("<|endoftext|>") { stops.insert(Int32(eot)) }
    let c = gpt.config
    return LoadedModel(model: gpt, tokenizer: tok, chars: chars, bos: nil, stopIds: stops, chat: nil,
                       summary: "GPT, \(c.layers) layers, \(c.embedding) wide, \(c.heads) heads, vocab \(c.vocabularySize)",
                       loadSeconds: Date().timeIntervalSince(started))
}

/// "Q4_1 ×210, F32 ×61, Q8_0 ×1".
func fileTypes(_ file: GGUFFile) -> String {
    var counts: [String: Int] = [:]
    for t in file.tensors { counts[t.typeName, default: 0] += 1 }
    return counts.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
}
