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

    func validate() throws {
        try checkModel(model)
        try existing(adapter, "--adapter", .folder)
        try outputFolder(output, "--output")
        guard !FileManager.default.fileExists(atPath: output) else { throw CLIError("--output \(output) already exists: choose a new folder") }
    }

    func run() throws {
        global.apply()
        let loaded = try ModelLoading.parse(["--adapter", adapter, "--arithmetic", "float32"]).load(model)
        guard let decoder = loaded.model as? DecoderModel else { throw CLIError("\(model): not a decoder model") }
        let adapters = decoder.loraLayers.count
        let tmp = output + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        try? FileManager.default.removeItem(atPath: tmp)
        do {
            try saveHuggingFaceFolder(decoder, to: tmp)          // merges the adapters (quantized bases dequantized to Float32)
            if let tok = loaded.tokenizer { try saveTokenizer(tok, to: tmp, eos: loaded.eos) }
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

    func validate() throws {
        try existing(model, "--model", .folder)
        guard (text == nil) != (file == nil) else { throw CLIError("give --text or --file (one of them)") }
        try nonEmpty(text, "--text")
        try existing(file, "--file", .file)
    }

    func run() throws {
        global.apply()
        var texts: [String]
        if let text {
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

/// `llm evaluate`: a fine-tuning run on held-out data, or any model on preference pairs.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a fine-tuning run: accuracy, per-class precision/recall/F1 and confusion (classify); loss and perplexity on responses (sft); DPO rewards on preference pairs (any model, with or without --adapter).")
    @Option(help: "A fine-tuning run, or (with preference pairs) any model.") var model: String
    @Option(help: "Preference pairs: a LoRA adapter (a DPO or SFT run, or a PEFT folder) on --model; the reference is where a DPO run started, else --model without it.") var adapter: String?
    @Option(help: "Data in the run's format, or a preference-pair file (default: the run's validation data).") var data: String?
    @Option(help: "Examples (pairs) per batch.") var batch = 8
    @Option(help: "Preference pairs: DPO's beta for the rewards (default: the DPO run's, else 0.1).") var beta: Float?
    @Flag(help: "Preference pairs: average log-probabilities over answer tokens (default: the DPO run's choice, else sum).") var averageLogprobs = false
    @Option(help: "Preference pairs: book or chat for instruction records (default: the run's, else book).") var promptFormat: String?
    @Option(help: "Preference pairs: longest side in tokens, longer ones cut (default: the DPO run's, else 512).") var maxLength: Int?
    @Flag(help: "Print one JSON object and nothing else.") var json = false
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        try existing(adapter, "--adapter", .folder)
        try existing(data, "--data", .file)
        try positive(batch, "--batch", max: 1 << 16)
        try positive(beta, "--beta")
        try oneOf(promptFormat, "--prompt-format", PromptFormat.allCases.map(\.rawValue))
        try atLeast(2, maxLength, "--max-length", max: 1 << 20)
    }

    func run() throws {
        global.apply()
        let format = promptFormat.map { PromptFormat(rawValue: $0)! }
        // A DPO run, as the adapter or the model, brings its settings, reference and held-out pairs.
        let dpoRun = [adapter, model].compactMap { $0 }.first { FineTuneRun.isRun($0) && (try? FineTuneRun.readInfo($0))?.options.task == .dpo }
        let path = data ?? dpoRun.map { $0 + "/" + PreferenceTune.heldOutFile }
        if let path {
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError(data == nil ? "give --data: the DPO run \(dpoRun!) kept no held-out pairs (--val-fraction 0?)" : "--data \(path): no such file")
            }
            let isJSON = ["json", "jsonl"].contains(URL(fileURLWithPath: path).pathExtension.lowercased())
            if isJSON, let first = try InstructionData.records(path).first, PreferenceData.isPair(first.1) {
                return try preferences(path, dpoRun: dpoRun.map { ($0, try FineTuneRun.readInfo($0)) }, format: format)
            }
        }
        let pairOnly: [(String, Bool)] = [("--adapter", adapter != nil), ("--beta", beta != nil), ("--average-logprobs", averageLogprobs),
                                          ("--prompt-format", promptFormat != nil), ("--max-length", maxLength != nil)]
        if let given = pairOnly.first(where: \.1) { throw CLIError("\(given.0) goes with preference pairs (--data with chosen/rejected records)") }
        guard FineTuneRun.isRun(model) else { throw CLIError("--model \(model): not a fine-tuning run (no \(FineTuneRun.infoFile)); to score preference pairs, give --data with chosen/rejected records") }
        let info = try FineTuneRun.readInfo(model)
        guard let path = data ?? info.validation.first else { throw CLIError("give --data (the run has no separate validation file)") }
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("--data \(path): no such file") }
        let o = info.options
        switch o.task {
        case .dpo:
            throw CLIError("--data \(path) holds no preference pairs (chosen/rejected records) to score the DPO run \(model) on")
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

    /// DPO's numbers for the policy (--model with --adapter) against its reference: where the
    /// DPO run started (its base, with the adapter it started from), else --model without the
    /// adapter, else the model itself (rewards all 0, reward accuracy undefined: null).
    func preferences(_ path: String, dpoRun: (path: String, info: FineTuneRunInfo)?, format: PromptFormat?) throws {
        let runInfo = dpoRun?.info
        let options = DPOOptions(beta: beta ?? runInfo?.options.dpo?.beta ?? 0.1,
                                 averageLogprobs: averageLogprobs || (runInfo?.options.dpo?.averageLogprobs ?? false))
        let sftInfo = [model, adapter].compactMap { $0 }.first(where: FineTuneRun.isRun).flatMap { try? FineTuneRun.readInfo($0) }
        let promptFormat = format ?? (runInfo ?? sftInfo)?.options.promptFormat ?? .book
        var policy = try LoadedModel.load(model, tokenizer: runInfo?.tokenizer, adapter: adapter, arithmetic: .float32)
        guard let decoder = policy.model as? DecoderModel, let tokenizer = policy.tokenizer else { throw CLIError("\(model): not a decoder with a tokenizer") }
        let pairs = try PreferenceData.read(path, format: promptFormat, template: policy.chat ?? ChatTemplate(), placeholders: (runInfo ?? sftInfo)?.placeholders ?? [:])
        let limit = min(maxLength ?? runInfo?.options.maxLength ?? 512, decoder.contextLength + 1)
        let (encoded, summary) = try FineTuneEncoding.pairs(pairs, tokenizer: tokenizer, bos: policy.bos, eos: policy.responseEnd, maxLength: limit)
        guard !encoded.isEmpty else { throw CLIError("\(path): no pair has answers left to score (all cut by --max-length \(limit)?)") }
        let pad = policy.responseEnd
        decoder.eval()
        let scores = try DPO.logProbs(decoder, pairs: encoded, pad: pad, batch: batch)

        let reference: [PairLogProbs], referenceName: String
        if let (run, info) = dpoRun, info.options.method == .lora || info.adapter != nil {
            if info.options.method == .lora, let start = info.adapter {
                try PEFTAdapter.load(start, into: decoder)           // the adapter the run started from, in place of its own
                decoder.eval()
                referenceName = "\(info.base) with \(start) (where \(run) started)"
            } else if info.options.method == .lora {
                decoder.setAdaptersEnabled(false)
                referenceName = "\(info.base) (the adapter switched off)"
            } else {
                policy = try LoadedModel.load(info.base, tokenizer: info.tokenizer, adapter: info.adapter, arithmetic: .float32)
                referenceName = "\(info.base) with \(info.adapter!) (where \(run) started)"
            }
            reference = try DPO.logProbs(policy.model as! DecoderModel, pairs: encoded, pad: pad, batch: batch)
        } else if let (run, info) = dpoRun {
            policy = try LoadedModel.load(info.base, tokenizer: info.tokenizer, arithmetic: .float32)
            reference = try DPO.logProbs(policy.model as! DecoderModel, pairs: encoded, pad: pad, batch: batch)
            referenceName = "\(info.base) (where \(run) started)"
        } else if adapter != nil {
            decoder.setAdaptersEnabled(false)
            reference = try DPO.logProbs(decoder, pairs: encoded, pad: pad, batch: batch)
            referenceName = "\(model) (the adapter switched off)"
        } else {
            reference = scores
            referenceName = "the model itself"
        }
        let r = DPO.report(policy: scores, reference: reference, options: options, referenceIsPolicy: dpoRun == nil && adapter == nil)
        if json {
            let obj: [String: Any] = ["reward_accuracy": r.rewardAccuracy.map { Double($0) } ?? NSNull(), "reward_margin": Double(r.rewardMargin),
                                      "loss": Double(r.loss), "n": r.n, "logprob_accuracy": Double(r.logprobAccuracy),
                                      "rewards_chosen": Double(r.rewardsChosen), "rewards_rejected": Double(r.rewardsRejected),
                                      "beta": Double("\(options.beta)") ?? Double(options.beta), "average_logprobs": options.averageLogprobs, "dropped": summary.dropped]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print("\(model)\(adapter.map { " + \($0)" } ?? "") on \(path): \(r.n) pairs (\(summary.truncated) cut to \(limit) tokens, \(summary.dropped) dropped); reference \(referenceName); beta \(formatFloat(options.beta)), log-probabilities \(options.averageLogprobs ? "averaged" : "summed")")
            print("reward accuracy \(r.rewardAccuracy.map(percent) ?? "undefined (the reference is the model)"), margin \(String(format: "%.4f", r.rewardMargin)) (chosen \(String(format: "%+.4f", r.rewardsChosen)), rejected \(String(format: "%+.4f", r.rewardsRejected))), loss \(String(format: "%.4f", r.loss))")
            print("log-prob accuracy \(percent(r.logprobAccuracy)): the share of pairs where the model itself gives the chosen answer the higher log-probability")
        }
    }
}
