import ArgumentParser
import Foundation
import Models
import NN
import Tensors
import Training

/// The folder holding a model's files: PATH itself, or a training run's latest checkpoint.
func modelFolder(_ path: String) -> String {
    FileManager.default.fileExists(atPath: path + "/config.json") ? path : (Checkpoint.latest(path) ?? path)
}

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
    @Option(help: "A model folder (config.json + model.safetensors).") var model: String?

    func run() throws {
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
        let rows = gpt.namedParameters()
        let width = max(30, rows.map(\.name.count).max() ?? 0)
        print("\("name".padding(width))  \("shape".padding(16))  \("count".padding(12, left: true))")
        for (name, t) in rows {
            print("\(name.padding(width))  \(Shape.describe(t.shape).padding(16))  \(grouped(t.count).padding(12, left: true))")
        }
        let total = gpt.parameterCount
        print("total \(grouped(total)) parameters (\(grouped(total - gpt.wte.weight.count - gpt.wpe.weight.count)) outside the embeddings), \(String(format: "%.1f", Double(total) * 4 / 1_048_576)) MiB as float32")
    }
}

/// `llm logits`: the model's logits for given ids, and the mean next-token loss (the parity hook).
struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print logits for token ids and the mean next-token cross-entropy.")
    @Option(help: "A model folder (config.json + model.safetensors).") var model: String
    @Option(help: "Token ids separated by spaces.") var ids: String
    @Flag(help: "Print {\"logits\": [[...]], \"loss\": L} and nothing else.") var json = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        let gpt = try loadModel(model)
        let list = try parseIds(ids, source: "--ids").map { Int32(bitPattern: $0) }
        guard !list.isEmpty else { throw CLIError("--ids: no ids") }
        for (i, id) in list.enumerated() where id < 0 || Int(id) >= gpt.config.vocabularySize {
            throw CLIError("--ids: id \(id) at position \(i) is outside the model's vocabulary (0..<\(gpt.config.vocabularySize))")
        }
        guard list.count <= gpt.config.contextLength else { throw CLIError("--ids: \(list.count) ids exceed the context length \(gpt.config.contextLength)") }
        gpt.eval()
        let (logits, loss) = withNoGrad { () -> (Tensor, Float) in
            let logits = gpt(list, batch: 1, length: list.count)                       // (1, T, V)
            let targets = Array(list.dropFirst()) + [defaultIgnoreIndex]                // predict ids[1...]
            let loss = list.count > 1 ? logits.reshaped(list.count, -1).crossEntropy(targets: targets).item : .nan
            return (logits, loss)
        }
        let v = gpt.config.vocabularySize
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
                let top = row.enumerated().sorted { $0.element > $1.element }.prefix(5)
                print("position \(t) (id \(list[t])): top next ids " + top.map { "\($0.offset) (\(String(format: "%.3f", $0.element)))" }.joined(separator: ", "))
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
