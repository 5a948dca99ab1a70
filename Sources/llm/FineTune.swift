import ArgumentParser
import Cluster
import Foundation
import Inference
import Models
import NN
import Tensors
import Tokenization
import Training

/// `llm finetune`: supervised fine-tuning (instructions, chat, completions) or classification,
/// with LoRA (QLoRA on a quantized GGUF base), full or partial fine-tuning, or a new head only.
struct FineTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a model: instructions / chat (sft) or classification, with LoRA, full or partial fine-tuning.")
    @Option(help: "sft or classify.") var task: String?
    @Option(help: "With --method full: train only the last N blocks, the final norm and the head.") var trainLayers: Int?
    @Flag(help: "Train on prompt tokens too (by default only responses are trained).") var noMaskPrompt = false
    @Option(help: "Headerless CSV/TSV: the column names in order, e.g. label,text.") var columns: String?
    @OptionGroup var tuning: TuningArguments
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try oneOf(task, "--task", ["sft", "classify"])
        try atLeast(0, trainLayers, "--train-layers", max: 1 << 12, zero: "only the final norm and the head")
        if tuning.resume == nil { _ = try options() }   // the combinations
    }

    /// Under mpirun every rank runs this (see `runOnEveryRank`): each reads the data and the
    /// model, trains on its share of every batch, and rank 0 alone prints and writes the run.
    func run() throws { try runOnEveryRank(tune) }

    func tune() throws {
        global.apply()
        var (info, runDir) = try tuning.runInfo(options: options, extraFixed: [("--task", task != nil), ("--train-layers", trainLayers != nil),
                                                                                ("--no-mask-prompt", noMaskPrompt), ("--columns", columns != nil)])
        Distributed.barrier()                                  // every rank has checked the run folder before rank 0 writes to it
        if tuning.resume == nil {
            info.columns = try columns.map(parseColumns)
            info.options.batch *= Distributed.size             // --batch is per rank; the run keeps the global batch
        }
        guard info.options.task != .dpo else { throw CLIError("\(runDir) is a DPO run: continue it with llm dpo --resume \(runDir)") }

        // The base, in Float32 arithmetic (training needs exact gradients; GGUF weights stay quantized).
        let loaded = try LoadedModel.load(info.base, tokenizer: info.tokenizer, arithmetic: .float32)
        guard let decoder = loaded.model as? DecoderModel else { throw CLIError("\(info.base): this model cannot be fine-tuned") }
        guard let tokenizer = loaded.tokenizer else { throw CLIError("\(info.base): fine-tuning needs a BPE tokenizer (the model has none, or a character-level one): give --tokenizer") }
        try checkDataAndLength(&info, decoder: decoder, lengthGiven: tuning.maxLength != nil, resumed: tuning.resume != nil)
        var o = info.options
        if let n = o.trainLayers, n > decoder.layers.count { throw CLIError("--train-layers \(n): the model has \(decoder.layers.count) layers") }
        let template = loaded.chat ?? ChatTemplate()
        let eos = loaded.responseEnd

        // Data: read, split, encode.
        let placeholders = info.placeholders
        let rng = RandomGenerator(seed: o.seed)
        var trainSet: [EncodedExample], valSet: [EncodedExample]
        var summary: EncodingSummary, valSummary = EncodingSummary()
        let valFiles = info.validation
        switch o.task {
        case .sft, .dpo:
            var examples = try info.data.flatMap { first(try InstructionData.read($0, format: o.promptFormat, template: template, placeholders: placeholders), o.maxSamples) }
            var held = try valFiles.flatMap { first(try InstructionData.read($0, format: o.promptFormat, template: template, placeholders: placeholders), o.maxSamples) }
            if valFiles.isEmpty { (examples, held) = split(examples, fraction: o.valFraction, rng: rng) }
            (trainSet, summary) = try FineTuneEncoding.sft(examples, tokenizer: tokenizer, bos: loaded.bos, eos: eos, maxLength: o.maxLength, maskPrompt: o.maskPrompt)
            (valSet, valSummary) = try FineTuneEncoding.sft(held, tokenizer: tokenizer, bos: loaded.bos, eos: eos, maxLength: o.maxLength, maskPrompt: o.maskPrompt)
        case .classify:
            let cols = info.columns
            var examples = try info.data.flatMap { first(try ClassificationData.read($0, columns: cols), o.maxSamples) }
            var held = try valFiles.flatMap { first(try ClassificationData.read($0, columns: cols), o.maxSamples) }
            if valFiles.isEmpty { (examples, held) = split(examples, fraction: o.valFraction, rng: rng) }
            let labels = info.labels ?? Array(Set(examples.map(\.label))).sorted()
            guard labels.count >= 2 else { throw CLIError("--data: classification needs at least two labels, found \(labels.joined(separator: ", "))") }
            info.labels = labels
            (trainSet, summary) = try FineTuneEncoding.classification(examples, labels: labels, tokenizer: tokenizer, bos: loaded.bos, maxLength: o.maxLength)
            (valSet, valSummary) = try FineTuneEncoding.classification(held, labels: labels, tokenizer: tokenizer, bos: loaded.bos, maxLength: o.maxLength)
        }

        // What trains.
        var classifier: SequenceClassifier?
        // The model's generator draws the adapters' init and every dropout mask; checkpoints save it.
        decoder.rng.restore(from: RandomGenerator(seed: o.seed &+ 1))
        switch o.method {
        case .lora:
            do { try decoder.addLoRA(o.lora, rng: decoder.rng) } catch { throw CLIError("--lora-targets: \(error)") }
        case .full:
            decoder.dequantizeWeights()
            if let n = o.trainLayers { try decoder.trainOnlyLastLayers(n) } else { decoder.freeze(false) }
        case .head:
            decoder.freeze()
        }
        if o.task == .classify {
            classifier = SequenceClassifier(base: decoder, labels: info.labels!, rng: RandomGenerator(seed: o.seed &+ 2))
        }
        let tuner: FineTuner
        do {
            tuner = try FineTuner(model: decoder, classifier: classifier, train: trainSet, validation: valSet, pad: eos, options: o,
                                  shardOptimizer: tuning.shardOptimizer)
        } catch let e as TrainingError {
            throw CLIError(e.description)
        }
        if tuning.resume != nil {
            let state = try FineTuneRun.restore(tuner, run: runDir)
            print("resumed \(runDir) at step \(state.step)")
        }
        o = tuner.options

        print("model: \(loaded.summary)")
        let what = o.task == .classify ? "labels \(info.labels!.joined(separator: ", "))" : "\(summary.trainedTokens) trained tokens"
        print("data: \(summary.examples) training examples (\(summary.tokens) tokens, \(what), longest \(summary.longest)); \(summary.truncated) cut to --max-length \(o.maxLength), \(summary.dropped) dropped; \(valSet.count) validation examples (\(valSummary.truncated) cut)")
        let how: String
        switch o.method {
        case .lora: how = describeLoRA(o, decoder)
        case .full: how = o.trainLayers.map { "the last \($0) blocks + final norm + head" } ?? "every weight (full fine-tuning)"
        case .head: how = "the classification head only"
        }
        print("method: \(how)\(classifier != nil && o.method != .head ? " + the classification head" : "")\(o.checkpointActivations == true ? "; activations recomputed in the backward pass" : "")")
        print(describeTrainable(tuner.trainee))
        if Distributed.isParallel { print(describeDataParallel(tuner, unit: "examples")) }
        print("schedule: \(tuner.totalSteps) steps of \(o.batch) × \(o.gradAccum) examples, lr \(formatFloat(o.learningRate)) → \(formatFloat(o.minLearningRate)), warmup \(o.warmup); run folder \(runDir)")

        try runTuning(tuner, info: info, runDir: runDir, tokenizer: tokenizer, stopAfter: tuning.stopAfter) { v in
            String(format: "%.3f", v.loss) + (v.accuracy.map { String(format: " (acc %.1f%%)", $0 * 100) } ?? "")
        }
        if o.task == .sft { print("try it: llm generate --model \(runDir) --prompt \"...\"") } else { print("try it: llm classify --model \(runDir) --text \"...\"; llm evaluate --model \(runDir) --data FILE") }
    }

    /// The options from the command line, each checked.
    func options() throws -> FineTuneOptions {
        var o = FineTuneOptions()
        switch task ?? "sft" {
        case "sft": o.task = .sft
        case "classify": o.task = .classify
        case let t: throw CLIError("--task must be sft or classify, got \(t)")
        }
        if let method = tuning.method {
            guard let m = FineTuneMethod(rawValue: method) else { throw CLIError("--method must be lora, full or head, got \(method)") }
            o.method = m
        }
        if o.method == .head && o.task != .classify { throw CLIError("--method head is for --task classify (SFT trains the model itself)") }
        if trainLayers != nil && o.method != .full { throw CLIError("--train-layers goes with --method full") }
        if let n = trainLayers { o.trainLayers = n }
        try tuning.apply(to: &o, defaultLR: o.method == .lora ? 2e-4 : o.method == .full ? 5e-5 : 1e-3)
        o.maskPrompt = !noMaskPrompt
        if columns != nil && o.task != .classify { throw CLIError("--columns is for --task classify") }
        if let c = columns { _ = try parseColumns(c) }
        return o
    }

    func parseColumns(_ c: String) throws -> [String] {
        let cols = c.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard cols.contains("text"), cols.contains("label"), Set(cols).count == cols.count else {
            throw CLIError("--columns must name a text and a label column once each, e.g. label,text; got \(c)")
        }
        return cols
    }
}

/// A seeded shuffle, then the last `fraction` held out (at least one when there are two or more).
func split<T>(_ items: [T], fraction: Double, rng: RandomGenerator) -> ([T], [T]) {
    guard fraction > 0, items.count >= 2 else { return (items, []) }
    let order = rng.permutation(items.count)
    let held = min(items.count - 1, max(1, Int((Double(items.count) * fraction).rounded())))
    let cut = items.count - held
    return (order[..<cut].map { items[$0] }, order[cut...].map { items[$0] })
}

func formatFloat(_ x: Float) -> String { String(format: "%g", x) }

/// 1.84M, 134.5M, 12.3k.
func short(_ n: Int) -> String {
    n >= 1_000_000_000 ? String(format: "%.2fB", Double(n) / 1e9) : n >= 1_000_000 ? String(format: n >= 100_000_000 ? "%.1fM" : "%.2fM", Double(n) / 1e6)
        : n >= 1000 ? String(format: "%.1fk", Double(n) / 1e3) : "\(n)"
}
