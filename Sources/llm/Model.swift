import ArgumentParser
import Foundation
import Inference
import Models
import NN
import Tensors
import Training

/// Loads `--model PATH`: a folder with `config.json` + `model.safetensors` (a Hugging Face GPT-2
/// folder, or one this tool wrote), or a training run folder.
func loadModel(_ path: String) throws -> GPT {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("\(path): no such file or folder") }
    guard isDir.boolValue else { throw CLIError("\(path): expected a folder with config.json and model.safetensors") }
    do { return try HuggingFaceGPT2.load(folder: modelFolder(path)) } catch let e as ModelError { throw CLIError(e.description) }
}

/// `llm inspect`: the parameter table of a preset or a model — names, shapes, counts, totals.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's parameters: name, shape, count, and totals.")
    @Option(help: "A preset: \(GPTConfig.presets.keys.sorted().joined(separator: ", ")).") var config: String?
    @Option(help: "A model folder (config.json + model.safetensors), or a GGUF file.") var model: String?
    @Option(help: "With a GGUF file: show this many elements of each metadata array (default 6; 0: none).") var arrayItems = 6

    func validate() throws {
        try oneOf(config, "--config", GPTConfig.presets.keys.sorted())
        try checkModel(model)
        guard (config == nil) != (model == nil) else { throw CLIError("give --config NAME or --model PATH (one of them)") }
        try atLeast(0, arrayItems, "--array-items", zero: "no elements shown")
    }

    func run() throws {
        if let model, model.lowercased().hasSuffix(".gguf") { return try inspectGGUF(model, arrayItems: arrayItems) }
        if let model, HuggingFaceLlama.isLlama(folder: modelFolder(model)) { return try inspectLlama(modelFolder(model)) }
        let gpt: GPT
        switch (config, model) {
        case let (name?, nil):
            guard let preset = GPTConfig.presets[name] else {
                throw CLIError("unknown config '\(name)' (known: \(GPTConfig.presets.keys.sorted().joined(separator: ", ")))")
            }
            gpt = GPT(preset, rng: RandomGenerator(seed: 0))
        case let (nil, path?): gpt = try loadModel(path)
        default: throw CLIError("give --config NAME or --model PATH (one of them)")
        }
        let c = gpt.config
        print("GPT: vocab \(c.vocabularySize), context \(c.contextLength), embedding \(c.embedding), \(c.layers) layers, \(c.heads) heads, \(c.norm.rawValue)-norm, \(c.tiedEmbeddings ? "tied" : "separate") output head")
        printParameterTable(gpt)
        let total = gpt.parameterCount
        print("total \(grouped(total)) parameters (\(grouped(total - (c.vocabularySize + c.contextLength) * c.embedding)) outside the embeddings), \(String(format: "%.1f", Double(total) * 4 / 1_048_576)) MiB as float32")
    }
}

/// `llm logits`: the model's logits for given ids, and the mean next-token loss (the parity hook).
struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print logits for token ids and the mean next-token cross-entropy.")
    @Option(help: "A GGUF file, a model folder (config.json + model.safetensors), or a training run.") var model: String
    @Option(help: "Token ids separated by spaces.") var ids: String
    @Flag(help: "Print {\"logits\": [[...]], \"loss\": L} and nothing else.") var json = false
    @Option(help: "Without --json: how many of the most likely next ids to show per position.") var top = 5
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        if try parseIds(ids, source: "--ids").isEmpty { throw CLIError("--ids must hold at least one token id") }
        try positive(top, "--top", max: largestVocabulary)
    }

    func run() throws {
        global.apply()
        let loaded = try loading.load(model)
        let lm = loaded.model
        let list = try parseIds(ids, source: "--ids").map { Int32(bitPattern: $0) }
        guard !list.isEmpty else { throw CLIError("--ids: no ids") }
        try loaded.check(list, what: "--ids")
        guard list.count <= lm.contextLength else { throw CLIError("--ids: \(list.count) ids exceed the context length \(lm.contextLength)") }
        lm.eval()
        let (logits, loss) = try withNoGrad { () throws -> (Tensor, Float) in
            let logits = try lm.logits(list, batch: 1, length: list.count)              // (1, T, V)
            let targets = Array(list.dropFirst()) + [defaultIgnoreIndex]                // predict ids[1...]
            let loss = list.count > 1 ? logits.reshaped(list.count, -1).crossEntropy(targets: targets).item : .nan
            return (logits, loss)
        }
        let v = lm.vocabularySize
        if json {
            var out = "{\"logits\": ["
            for t in 0..<list.count {
                if t > 0 { out += ", " }
                out += "[" + (0..<v).map { "\(logits.data[t * v + $0])" }.joined(separator: ", ") + "]"
            }
            out += "], \"loss\": \(loss.isNaN ? "null" : "\(loss)")}"
            print(out)
        } else {
            for t in 0..<list.count {
                let row = Array(UnsafeBufferPointer(start: logits.data + t * v, count: v))
                let best = row.enumerated().sorted { $0.element > $1.element }.prefix(top)
                print("position \(t) (id \(list[t])): top next ids " + best.map { "\($0.offset) (\(String(format: "%.3f", $0.element)))" }.joined(separator: ", "))
            }
            print("loss \(loss)")
        }
    }
}

/// 124439808 → "124,439,808".
func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, ch) in s.enumerated() { if i > 0 && (s.count - i) % 3 == 0 { out += "," }; out.append(ch) }
    return out
}

/// `llm inspect --model X.gguf`: header, every metadata entry, and the tensor table.
func inspectGGUF(_ path: String, arrayItems: Int) throws {
    let file = try GGUFFile(path: path)
    print("GGUF v\(file.version): \(file.metadata.count) metadata entries, \(file.tensors.count) tensors, alignment \(file.alignment), data at byte \(file.dataOffset), \(grouped(file.fileSize)) bytes")
    print("\nmetadata:")
    let keyWidth = max(20, file.metadata.map(\.key.count).max() ?? 0)
    for (key, value) in file.metadata {
        var shown: String
        if case let .array(_, items) = value {
            let head = items.prefix(arrayItems).map(\.description)
            shown = "[" + (head + (items.count > arrayItems ? ["…"] : [])).joined(separator: ", ") + "]"
        } else {
            shown = value.description
        }
        if shown.count > 160 { shown = String(shown.prefix(157)) + "..." }
        shown = shown.replacingOccurrences(of: "\n", with: "\\n")
        print("  \(key.padding(keyWidth))  \(value.typeName.padding(22))  \(shown)")
    }
    print("\ntensors:")
    let nameWidth = max(24, file.tensors.map(\.name.count).max() ?? 0)
    print("  \("name".padding(nameWidth))  \("type".padding(6))  \("shape".padding(14))  \("bytes".padding(12, left: true))")
    var total = 0, params = 0
    for t in file.tensors {
        let bytes = t.byteCount
        total += bytes ?? 0
        params += t.count
        print("  \(t.name.padding(nameWidth))  \(t.typeName.padding(6))  \(Shape.describe(t.dims.reversed()).padding(14))  \((bytes.map(grouped) ?? "?").padding(12, left: true))")
    }
    print("\ntotal \(grouped(params)) values in \(grouped(total)) bytes (\(String(format: "%.2f", Double(total) * 8 / Double(max(params, 1)))) bits per value)")
}

/// `llm inspect --model DIR` for a Hugging Face Llama folder: the config and the parameter table.
func inspectLlama(_ folder: String) throws {
    let llama = try HuggingFaceLlama.load(folder: folder)
    let c = llama.config
    print("Llama: vocab \(c.vocabularySize), context \(c.contextLength), embedding \(c.embedding), SwiGLU \(c.hidden), \(c.layers) layers, \(c.heads) heads / \(c.kvHeads) kv of \(c.headSize), RoPE base \(c.ropeBase)\(c.ropeScaling.map { " scaled \($0.type) ×\($0.factor)" } ?? ""), \(c.tiedEmbeddings ? "tied" : "separate") output head")
    printParameterTable(llama)
    print("total \(grouped(llama.parameterCount)) parameters, \(String(format: "%.1f", Double(llama.parameterCount) * 4 / 1_048_576)) MiB as float32")
}

/// One line per parameter: dotted name, shape, element count.
func printParameterTable(_ model: Module) {
    let rows = model.namedParameters()
    let width = max(30, rows.map(\.name.count).max() ?? 0)
    print("\("name".padding(width))  \("shape".padding(16))  \("count".padding(12, left: true))")
    for (name, t) in rows {
        print("\(name.padding(width))  \(Shape.describe(t.shape).padding(16))  \(grouped(t.count).padding(12, left: true))")
    }
}
