import ArgumentParser
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
    @Option(help: "The base: a GGUF file, a Hugging Face GPT-2 or Llama folder, or a training run.") var model: String?
    @Option(parsing: .upToNextOption, help: "Training data: JSON/JSONL (sft) or CSV/TSV/JSONL (classify).") var data: [String] = []
    @Option(parsing: .upToNextOption, help: "Validation data (default: --val-fraction of --data held out).") var valData: [String] = []
    @Option(help: "sft or classify.") var task: String?
    @Option(help: "Run folder (adapter or model, checkpoint, log.jsonl, loss.svg).") var out: String?
    @Option(help: "lora (default), full, or head (classify: the new head only).") var method: String?
    @Option(help: "LoRA rank.") var loraRank: Int?
    @Option(help: "LoRA alpha (the update is scaled by alpha/rank).") var loraAlpha: Float?
    @Option(help: "Dropout on the LoRA input.") var loraDropout: Float?
    @Option(help: "Projections to adapt, of q,k,v,o,gate,up,down (a role a model lacks is skipped).") var loraTargets: String?
    @Option(help: "With --method full: train only the last N blocks, the final norm and the head.") var trainLayers: Int?
    @Option(help: "Passes over the training data (when --steps is not given).") var epochs: Int?
    @Option(help: "Optimizer steps (default: --epochs passes).") var steps: Int?
    @Option(help: "Examples per batch.") var batch: Int?
    @Option(help: "Batches per optimizer step.") var gradAccum: Int?
    @Option(help: "Peak learning rate (default 2e-4 for lora, 5e-5 for full, 1e-3 for head).") var lr: Float?
    @Option(help: "Learning rate at the end of the cosine decay.") var minLr: Float?
    @Option(help: "Warmup steps.") var warmup: Int?
    @Option(help: "AdamW weight decay (on matrices).") var weightDecay: Float?
    @Option(help: "Longest example in tokens (longer ones are cut and counted; default 512, or the model's context if shorter).") var maxLength: Int?
    @Option(help: "Fraction of --data held out for validation when --val-data is not given.") var valFraction: Double?
    @Option(help: "Random seed (data split and order, adapter and head init, dropout).") var seed: UInt64?
    @Flag(help: "Train on prompt tokens too (by default only responses are trained).") var noMaskPrompt = false
    @Option(help: "Evaluate and save every N steps (0: only at the end).") var evalEvery: Int?
    @Flag(help: "Keep only each layer's input and recompute its activations in the backward pass (less memory, about one more forward pass of compute).") var checkpointActivations = false
    @Option(help: "Alpaca records as the book's prompt text (book) or through the model's chat template (chat).") var promptFormat: String?
    @Option(help: "Headerless CSV/TSV: the column names in order, e.g. label,text.") var columns: String?
    @Option(parsing: .singleValue, help: "Fill a {{key}} placeholder in the data, e.g. --placeholder name=Ada (repeatable).") var placeholder: [String] = []
    @Option(help: "Tokenizer (default: the model's own, else GPT-2's for a 50257-token vocabulary).") var tokenizer: String?
    @Option(help: "Continue the run in this folder from its checkpoint (its options; --steps/--epochs may extend it).") var resume: String?
    @Option(help: "Stop after this step with a checkpoint (continue with --resume).") var stopAfter: Int?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        var info: FineTuneRunInfo
        let runDir: String
        if let resume {
            info = try FineTuneRun.readInfo(resume)
            runDir = resume
            // Only the length of the run may change on resume; anything else would contradict the checkpoint.
            let fixed: [(String, Bool)] = [("--task", task != nil), ("--method", method != nil), ("--lora-rank", loraRank != nil),
                ("--lora-alpha", loraAlpha != nil), ("--lora-dropout", loraDropout != nil), ("--lora-targets", loraTargets != nil),
                ("--train-layers", trainLayers != nil), ("--batch", batch != nil), ("--grad-accum", gradAccum != nil), ("--lr", lr != nil),
                ("--min-lr", minLr != nil), ("--warmup", warmup != nil), ("--weight-decay", weightDecay != nil), ("--max-length", maxLength != nil),
                ("--val-fraction", valFraction != nil), ("--seed", seed != nil), ("--no-mask-prompt", noMaskPrompt),
                ("--prompt-format", promptFormat != nil), ("--columns", columns != nil), ("--placeholder", !placeholder.isEmpty),
                ("--val-data", !valData.isEmpty), ("--checkpoint-activations", checkpointActivations), ("--tokenizer", tokenizer != nil), ("--data", !data.isEmpty), ("--out", out != nil)]
            if let given = fixed.first(where: \.1) { throw CLIError("\(given.0) cannot change when resuming: \(resume) keeps the options it started with") }
            if let model, URL(fileURLWithPath: model).standardizedFileURL.path != info.base {
                throw CLIError("--model \(model) is not the base of \(resume) (\(info.base))")
            }
            if let steps { try positive(steps, "--steps"); info.options.steps = steps }
            if let epochs { try positive(epochs, "--epochs"); info.options.epochs = epochs; if steps == nil { info.options.steps = nil } }
        } else {
            guard let model else { throw CLIError("give --model (the base to fine-tune), or --resume RUN") }
            guard !data.isEmpty else { throw CLIError("give --data (training files)") }
            guard let out else { throw CLIError("give --out (the run folder)") }
            func absolute(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }
            info = FineTuneRunInfo(base: absolute(model), options: try options(), labels: nil, data: data.map(absolute),
                                   validation: valData.map(absolute), placeholders: try parsePlaceholders(), columns: try columns.map(parseColumns))
            info.tokenizer = tokenizer.map { $0 == "gpt2" ? $0 : absolute($0) }
            runDir = out
            if FineTuneRun.isRun(out) || FileManager.default.fileExists(atPath: out + "/checkpoint") {
                throw CLIError("--out \(out) already holds a run: continue it with --resume \(out), or choose another folder")
            }
            let parent = URL(fileURLWithPath: out).standardizedFileURL.deletingLastPathComponent().path
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDir) || !isDir.boolValue {
                throw CLIError("--out \(out): the folder \(parent) does not exist")
            }
        }
        if let stopAfter { try positive(stopAfter, "--stop-after") }
        for f in info.data + info.validation where !FileManager.default.fileExists(atPath: f) { throw CLIError("--data: \(f): no such file") }
        var o = info.options

        // The base, in Float32 arithmetic (training needs exact gradients; GGUF weights stay quantized).
        let loaded = try LoadedModel.load(info.base, tokenizer: info.tokenizer, arithmetic: .float32)
        guard let decoder = loaded.model as? DecoderModel else { throw CLIError("\(info.base): this model cannot be fine-tuned") }
        guard let tokenizer = loaded.tokenizer else { throw CLIError("\(info.base): fine-tuning needs a BPE tokenizer (the model has none, or a character-level one): give --tokenizer") }
        let longest = decoder.contextLength + (o.task == .sft ? 1 : 0)     // SFT inputs are one shorter than the example
        if resume == nil && maxLength == nil { o.maxLength = min(o.maxLength, longest); info.options = o }
        guard o.maxLength <= longest else {
            throw CLIError("--max-length \(o.maxLength) exceeds the model's context of \(decoder.contextLength)")
        }
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
        case .sft:
            var examples = try info.data.flatMap { try InstructionData.read($0, format: o.promptFormat, template: template, placeholders: placeholders) }
            var held = try valFiles.flatMap { try InstructionData.read($0, format: o.promptFormat, template: template, placeholders: placeholders) }
            if valFiles.isEmpty { (examples, held) = split(examples, fraction: o.valFraction, rng: rng) }
            (trainSet, summary) = try FineTuneEncoding.sft(examples, tokenizer: tokenizer, bos: loaded.bos, eos: eos, maxLength: o.maxLength, maskPrompt: o.maskPrompt)
            (valSet, valSummary) = try FineTuneEncoding.sft(held, tokenizer: tokenizer, bos: loaded.bos, eos: eos, maxLength: o.maxLength, maskPrompt: o.maskPrompt)
        case .classify:
            let cols = info.columns
            var examples = try info.data.flatMap { try ClassificationData.read($0, columns: cols) }
            var held = try valFiles.flatMap { try ClassificationData.read($0, columns: cols) }
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
        do { tuner = try FineTuner(model: decoder, classifier: classifier, train: trainSet, validation: valSet, pad: eos, options: o) } catch let e as TrainingError {
            throw CLIError(e.description)
        }
        if resume != nil {
            let state = try FineTuneRun.restore(tuner, run: runDir)
            print("resumed \(runDir) at step \(state.step)")
        }
        o = tuner.options
        let counts = parameterCounts(tuner.trainee)

        print("model: \(loaded.summary)")
        let what = o.task == .sft ? "\(summary.trainedTokens) trained tokens" : "labels \(info.labels!.joined(separator: ", "))"
        print("data: \(summary.examples) training examples (\(summary.tokens) tokens, \(what), longest \(summary.longest)); \(summary.truncated) cut to --max-length \(o.maxLength), \(summary.dropped) dropped; \(valSet.count) validation examples (\(valSummary.truncated) cut)")
        let how: String
        switch o.method {
        case .lora: how = "LoRA r=\(o.lora.rank) alpha=\(formatFloat(o.lora.alpha)) dropout=\(formatFloat(o.lora.dropout)) on \(decoder.loraLayers.count) projections (\(o.lora.targets.map(\.rawValue).joined(separator: ",")))" + (decoder.loraLayers.first?.lora.base is QuantizedLinear ? ", base kept quantized (QLoRA)" : "")
        case .full: how = o.trainLayers.map { "the last \($0) blocks + final norm + head" } ?? "every weight (full fine-tuning)"
        case .head: how = "the classification head only"
        }
        print("method: \(how)\(classifier != nil && o.method != .head ? " + the classification head" : "")\(o.checkpointActivations == true ? "; activations recomputed in the backward pass" : "")")
        print("trainable: \(short(counts.trainable)) of \(short(counts.total)) (\(String(format: "%.1f", 100 * Double(counts.trainable) / Double(max(counts.total, 1))))%)")
        print("schedule: \(tuner.totalSteps) steps of \(o.batch) × \(o.gradAccum) examples, lr \(formatFloat(o.learningRate)) → \(formatFloat(o.minLearningRate)), warmup \(o.warmup); run folder \(runDir)")

        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let log = try RunLog(folder: runDir, keepingThrough: tuner.step)
        let started = Date(), firstStep = tuner.step, firstTokens = tuner.tokensSeen
        let last = min(tuner.totalSteps, stopAfter ?? tuner.totalSteps)
        var lastVal: (loss: Float, accuracy: Float?)?
        while tuner.step < last {
            var s: StepStats
            do { s = try tuner.trainStep() } catch let e as TrainingError {
                FileHandle.standardError.write(Data("\n".utf8))
                throw CLIError(e.description)
            }
            let isEval = (o.evalEvery > 0 && s.step % o.evalEvery == 0) || s.step == last
            if isEval, let v = try tuner.evaluate() { lastVal = v; s.valLoss = v.loss; s.valAccuracy = v.accuracy }
            try log.append(s)
            let elapsed = Date().timeIntervalSince(started), done = s.step - firstStep
            let tps = Double(s.tokens - firstTokens) / max(elapsed, 1e-9)
            let eta = elapsed / Double(done) * Double(tuner.totalSteps - s.step)
            var val = lastVal.map { String(format: "%.3f", $0.loss) } ?? "  -  "
            if let a = lastVal?.accuracy { val += String(format: " (acc %.1f%%)", a * 100) }
            let line = "step \(s.step)/\(tuner.totalSteps)  loss \(String(format: "%.3f", s.loss))  val \(val)  lr \(String(format: "%.2e", s.learningRate))  |g| \(String(format: "%.2f", s.gradNorm))  \(Int(tps)) tok/s  ETA \(Int(eta / 60))m\(String(format: "%02d", Int(eta) % 60))s"
            print("\r" + line + "   ", terminator: ""); fflush(stdout)
            if isEval {
                print("")
                try log.plot()
                try FineTuneRun.save(tuner, run: runDir, info: info, tokenizer: tokenizer)
            }
        }
        if tuner.step == firstStep { try FineTuneRun.save(tuner, run: runDir, info: info, tokenizer: tokenizer) }
        if tuner.step < tuner.totalSteps { print("stopped at step \(tuner.step) of \(tuner.totalSteps); continue with --resume \(runDir)") }
        let saved = o.method == .lora ? "adapter \(runDir)/\(PEFTAdapter.weightsFile)" : o.method == .full ? "model \(runDir)/\(FineTuneRun.modelFolder)" : "head \(runDir)/\(FineTuneRun.scoreFile)"
        print("done: \(tuner.step) steps, \(grouped(tuner.tokensSeen)) tokens in \(String(format: "%.0f", Date().timeIntervalSince(started))) s; \(saved), log \(runDir)/log.jsonl, plot \(runDir)/loss.svg")
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
        if let method {
            guard let m = FineTuneMethod(rawValue: method) else { throw CLIError("--method must be lora, full or head, got \(method)") }
            o.method = m
        }
        if o.method == .head && o.task != .classify { throw CLIError("--method head is for --task classify (SFT trains the model itself)") }
        if trainLayers != nil && o.method != .full { throw CLIError("--train-layers goes with --method full") }
        if let n = trainLayers { guard n >= 0 else { throw CLIError("--train-layers must be 0 or more, got \(n)") }; o.trainLayers = n }
        let loraGiven = loraRank != nil || loraAlpha != nil || loraDropout != nil || loraTargets != nil
        if loraGiven && o.method != .lora { throw CLIError("--lora-* options go with --method lora") }
        if let r = loraRank { try positive(r, "--lora-rank"); o.lora.rank = r }
        if let a = loraAlpha { guard a.isFinite, a > 0 else { throw CLIError("--lora-alpha must be a positive number, got \(a)") }; o.lora.alpha = a }
        if let d = loraDropout { guard d >= 0, d < 1 else { throw CLIError("--lora-dropout must be in [0, 1), got \(d)") }; o.lora.dropout = d }
        if let t = loraTargets {
            var roles: [DecoderWeight] = []
            for name in t.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard let r = DecoderWeight(rawValue: name), LoRAConfig.projectionRoles.contains(r) else {
                    throw CLIError("--lora-targets: unknown projection '\(name)' (expected some of q,k,v,o,gate,up,down)")
                }
                if !roles.contains(r) { roles.append(r) }
            }
            o.lora.targets = roles
        }
        if let e = epochs { try positive(e, "--epochs"); o.epochs = e }
        if let s = steps { try positive(s, "--steps"); o.steps = s }
        if let b = batch { try positive(b, "--batch"); o.batch = b }
        if let g = gradAccum { try positive(g, "--grad-accum"); o.gradAccum = g }
        o.learningRate = lr ?? (o.method == .lora ? 2e-4 : o.method == .full ? 5e-5 : 1e-3)
        guard o.learningRate.isFinite, o.learningRate > 0 else { throw CLIError("--lr must be a positive number, got \(o.learningRate)") }
        if let m = minLr {
            guard m.isFinite, m >= 0, m <= o.learningRate else { throw CLIError("--min-lr must be in [0, --lr], got \(m)") }
            o.minLearningRate = m
        }
        if let w = warmup { guard w >= 0 else { throw CLIError("--warmup must be 0 or more, got \(w)") }; o.warmup = w }
        if let w = weightDecay { guard w.isFinite, w >= 0 else { throw CLIError("--weight-decay must be a number ≥ 0, got \(w)") }; o.weightDecay = w }
        if let m = maxLength { guard m >= 2 else { throw CLIError("--max-length must be at least 2, got \(m)") }; o.maxLength = m }
        if let v = valFraction { guard v >= 0, v < 1 else { throw CLIError("--val-fraction must be in [0, 1), got \(v)") }; o.valFraction = v }
        if let s = seed { o.seed = s }
        o.maskPrompt = !noMaskPrompt
        if checkpointActivations { o.checkpointActivations = true }
        if let e = evalEvery { guard e >= 0 else { throw CLIError("--eval-every must be 0 (only at the end) or more, got \(e)") }; o.evalEvery = e }
        if let p = promptFormat {
            guard let f = PromptFormat(rawValue: p) else { throw CLIError("--prompt-format must be book or chat, got \(p)") }
            o.promptFormat = f
        }
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

    func parsePlaceholders() throws -> [String: String] {
        var out: [String: String] = [:]
        for p in placeholder {
            guard let eq = p.firstIndex(of: "="), eq != p.startIndex else { throw CLIError("--placeholder must be key=value, got \(p)") }
            out[String(p[..<eq])] = String(p[p.index(after: eq)...])
        }
        return out
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

func positive(_ n: Int, _ option: String) throws {
    guard n > 0 else { throw CLIError("\(option) must be positive, got \(n)") }
}

func formatFloat(_ x: Float) -> String { String(format: "%g", x) }

/// 1.84M, 134.5M, 12.3k.
func short(_ n: Int) -> String {
    n >= 1_000_000_000 ? String(format: "%.2fB", Double(n) / 1e9) : n >= 1_000_000 ? String(format: n >= 100_000_000 ? "%.1fM" : "%.2fM", Double(n) / 1e6)
        : n >= 1000 ? String(format: "%.1fk", Double(n) / 1e3) : "\(n)"
}
