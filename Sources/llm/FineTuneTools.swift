import ArgumentParser
import Foundation
import Inference
import Models
import NN
import Tensors
import Tokenization
import Training

/// `llm merge`: a LoRA adapter fused into its base, written as a Hugging Face model folder.
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fuse a LoRA adapter into its base and write a model folder (safetensors + config + tokenizer) that transformers loads.")
    @Option(help: "The base model (GGUF file, Hugging Face folder or training run).") var model: String
    @Option(help: "The adapter: a LoRA fine-tuning run or a PEFT adapter folder.") var adapter: String
    @Option(help: "The folder to write (must not exist yet).") var output: String
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        guard !FileManager.default.fileExists(atPath: output) else { throw CLIError("--output \(output) already exists: choose a new folder") }
        let parent = URL(fileURLWithPath: output).standardizedFileURL.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: parent) else { throw CLIError("--output \(output): the folder \(parent) does not exist") }
        let loaded = try ModelLoading.parse(["--adapter", adapter, "--arithmetic", "float32"]).load(model)
        guard let decoder = loaded.model as? DecoderModel else { throw CLIError("\(model): not a decoder model") }
        let adapters = decoder.loraLayers.count
        let tmp = output + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: tmp)
        do {
            try saveHuggingFaceFolder(decoder, to: tmp)          // merges the adapters (quantized bases dequantized to Float32)
            if let tok = loaded.tokenizer {
                try tok.save(to: tmp)
                try tok.saveHuggingFace(to: tmp, eos: loaded.eos.map { UInt32($0) })
            }
            try FileManager.default.moveItem(atPath: tmp, toPath: output)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        print("merged \(adapters) adapters into \(loaded.summary)")
        print("wrote \(output): config.json, model.safetensors (Float32)\(loaded.tokenizer != nil ? ", tokenizer" : ""); load with llm --model \(output) or transformers' from_pretrained(\"\(output)\")")
    }
}

/// `llm classify`: labels for texts from a classification run.
struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Label texts with a classification fine-tuning run: the label and class probabilities per text.")
    @Option(help: "A classification run (llm finetune --task classify).") var model: String
    @Option(help: "One text.") var text: String?
    @Option(help: "A file with one text per line.") var file: String?
    @Flag(help: "Print {\"predictions\": [{\"text\", \"label\", \"probabilities\": {label: p}}]} and nothing else.") var json = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        guard (text == nil) != (file == nil) else { throw CLIError("give --text or --file (one of them)") }
        var texts: [String]
        if let text {
            guard !text.isEmpty else { throw CLIError("--text is empty") }
            texts = [text]
        } else {
            texts = try utf8Text(readFile(file!), source: file!).split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
                .map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\r")) }.filter { !$0.isEmpty }
            guard !texts.isEmpty else { throw CLIError("--file \(file!): no lines of text") }
        }
        guard FineTuneRun.isRun(model) else { throw CLIError("--model \(model): not a fine-tuning run (no \(FineTuneRun.infoFile))") }
        let c = try LoadedClassifier.load(model)
        let probs = try c.probabilities(texts)
        if json {
            let predictions: [[String: Any]] = zip(texts, probs).map { t, p in
                let best = p.withUnsafeBufferPointer(argmax)
                return ["text": t, "label": c.labels[best],
                        "probabilities": Dictionary(uniqueKeysWithValues: zip(c.labels, p.map { Double($0) }))]
            }
            let data = try JSONSerialization.data(withJSONObject: ["predictions": predictions], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for (t, p) in zip(texts, probs) {
            let best = p.withUnsafeBufferPointer(argmax)
            let all = zip(c.labels, p).map { "\($0) \(String(format: "%.4f", $1))" }.joined(separator: ", ")
            print("\(c.labels[best])\t\(all)\t\(t)")
        }
    }
}

/// `llm evaluate`: a fine-tuning run on held-out data.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a fine-tuning run: accuracy, per-class precision/recall/F1 and confusion (classify); loss and perplexity on responses (sft).")
    @Option(help: "A fine-tuning run (llm finetune).") var model: String
    @Option(help: "Data in the run's format (default: its validation data).") var data: String?
    @Option(help: "Examples per batch.") var batch = 8
    @Flag(help: "Print one JSON object and nothing else.") var json = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        try positive(batch, "--batch")
        guard FineTuneRun.isRun(model) else { throw CLIError("--model \(model): not a fine-tuning run (no \(FineTuneRun.infoFile))") }
        let info = try FineTuneRun.readInfo(model)
        guard let path = data ?? info.validation.first else { throw CLIError("give --data (the run has no separate validation file)") }
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("--data \(path): no such file") }
        let o = info.options
        switch o.task {
        case .classify:
            let c = try LoadedClassifier.load(model)
            let examples = try ClassificationData.read(path, columns: info.columns)
            let index = Dictionary(uniqueKeysWithValues: c.labels.enumerated().map { ($1, $0) })
            var truth: [Int] = []
            for e in examples {
                guard let i = index[e.label] else { throw CLIError("\(e.source): label \"\(e.label)\" is not one of the run's (\(c.labels.joined(separator: ", ")))") }
                truth.append(i)
            }
            let probs = try c.probabilities(examples.map(\.text), batch: batch)
            let predicted = probs.map { $0.withUnsafeBufferPointer(argmax) }
            let lossSum = zip(truth, probs).reduce(0.0) { $0 - Foundation.log(max(Double($1.1[$1.0]), 1e-30)) }
            let report = ClassificationReport(labels: c.labels, truth: truth, predicted: predicted, lossSum: lossSum)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print("\(model) on \(path):")
                print(report.table, terminator: "")
            }
        case .sft:
            let loaded = try LoadedModel.load(model, arithmetic: .float32)
            guard let decoder = loaded.model as? DecoderModel, let tokenizer = loaded.tokenizer else { throw CLIError("\(model): not a decoder with a tokenizer") }
            let examples = try InstructionData.read(path, format: o.promptFormat, template: loaded.chat ?? ChatTemplate(), placeholders: info.placeholders)
            let eos = loaded.responseEnd
            let (encoded, summary) = try FineTuneEncoding.sft(examples, tokenizer: tokenizer, bos: loaded.bos, eos: eos,
                                                              maxLength: o.maxLength, maskPrompt: o.maskPrompt)
            guard !encoded.isEmpty else { throw CLIError("\(path): no example has a response to score") }
            decoder.eval()
            let result = try FineTuner.evaluate(encoded, model: decoder, classifier: nil, pad: eos, batch: batch, task: .sft)
            if json {
                let obj: [String: Any] = ["loss": Double(result.loss), "perplexity": Foundation.exp(Double(result.loss)), "tokens": summary.trainedTokens,
                                          "examples": encoded.count]
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("\(model) on \(path): loss \(String(format: "%.4f", result.loss)), perplexity \(String(format: "%.3f", Foundation.exp(result.loss))) over \(summary.trainedTokens) response tokens in \(encoded.count) examples (\(summary.truncated) cut, \(summary.dropped) dropped)")
            }
        }
    }
}
