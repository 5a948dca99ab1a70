import ArgumentParser
import Cluster
import Foundation
import Inference
import Models
import NN
import Tensors
import Tokenization
import Training

/// The options `llm finetune` and `llm dpo` share: the base, data, run folder, LoRA, the
/// schedule, and resuming. Each is checked before any work starts.
struct TuningArguments: ParsableArguments {
    @Option(help: "The base: a GGUF file, a Hugging Face GPT-2 or Llama folder, a training run or a fine-tuning run.") var model: String?
    @Option(parsing: .upToNextOption, help: "Training data files (JSON/JSONL; classification also CSV/TSV).") var data: [String] = []
    @Option(parsing: .upToNextOption, help: "Validation data (default: --val-fraction of --data held out).") var valData: [String] = []
    @Option(help: "Run folder (adapter or model, checkpoint, log.jsonl, loss.svg).") var out: String?
    @Option(help: "lora (default) or full (finetune --task classify: also head).") var method: String?
    @Option(help: "LoRA rank.") var loraRank: Int?
    @Option(help: "LoRA alpha (the update is scaled by alpha/rank).") var loraAlpha: Float?
    @Option(help: "Dropout on the LoRA input (default 0.05; dpo: 0).") var loraDropout: Float?
    @Option(help: "Projections to adapt, of q,k,v,o,gate,up,down (a role a model lacks is skipped).") var loraTargets: String?
    @Option(help: "Passes over the training data (when --steps is not given).") var epochs: Int?
    @Option(help: "Optimizer steps (default: --epochs passes).") var steps: Int?
    @Option(help: "Examples per batch (dpo: pairs per batch; default 8, dpo 4).") var batch: Int?
    @Option(help: "Batches per optimizer step.") var gradAccum: Int?
    @Option(help: "Peak learning rate (finetune: 2e-4 lora, 5e-5 full, 1e-3 head; dpo: 5e-4 lora, 1e-6 full).") var lr: Float?
    @Option(help: "Learning rate at the end of the cosine decay.") var minLr: Float?
    @Option(help: "Warmup steps.") var warmup: Int?
    @Option(help: "AdamW weight decay (on matrices).") var weightDecay: Float?
    @Option(help: "Longest example in tokens (longer ones are cut and counted; default 512, or the model's context if shorter).") var maxLength: Int?
    @Option(help: "Fraction of --data held out for validation when --val-data is not given.") var valFraction: Double?
    @Option(help: "Random seed (data split and order, adapter and head init, dropout).") var seed: UInt64?
    @Option(help: "Evaluate and save every N steps (0: only at the end).") var evalEvery: Int?
    @Flag(help: "Keep only each layer's input and recompute its activations in the backward pass (less memory, about one more forward pass of compute).") var checkpointActivations = false
    @Flag(help: "Under mpirun: each rank keeps AdamW's moments for its slice of the trained parameters only (ZeRO stage 1).") var shardOptimizer = false
    @Option(help: "Alpaca-style records as the book's prompt text (book) or through the model's chat template (chat).") var promptFormat: String?
    @Option(parsing: .singleValue, help: "Fill a {{key}} placeholder in the data, e.g. --placeholder name=Ada (repeatable).") var placeholder: [String] = []
    @Option(help: "Tokenizer (default: the model's own, else GPT-2's for a 50257-token vocabulary).") var tokenizer: String?
    @Option(help: "Continue the run in this folder from its checkpoint (its options; --steps/--epochs may extend it).") var resume: String?
    @Option(help: "Stop after this step with a checkpoint (continue with --resume).") var stopAfter: Int?
    @Option(help: "Use only the first N records of each data file (quick trials).") var maxSamples: Int?

    /// The options a resumed run keeps (given: true when the user set one).
    var fixedOnResume: [(String, Bool)] {
        [("--method", method != nil), ("--lora-rank", loraRank != nil), ("--lora-alpha", loraAlpha != nil), ("--lora-dropout", loraDropout != nil),
         ("--lora-targets", loraTargets != nil), ("--batch", batch != nil), ("--grad-accum", gradAccum != nil), ("--lr", lr != nil),
         ("--min-lr", minLr != nil), ("--warmup", warmup != nil), ("--weight-decay", weightDecay != nil), ("--max-length", maxLength != nil),
         ("--val-fraction", valFraction != nil), ("--seed", seed != nil), ("--prompt-format", promptFormat != nil),
         ("--placeholder", !placeholder.isEmpty), ("--val-data", !valData.isEmpty), ("--checkpoint-activations", checkpointActivations),
         ("--tokenizer", tokenizer != nil), ("--data", !data.isEmpty), ("--out", out != nil), ("--max-samples", maxSamples != nil)]
    }

    /// A new run's info (the base, data and options), or a resumed run's with only its length
    /// changed; `extraFixed` are the command's own options that a resume may not change.
    func runInfo(options: () throws -> FineTuneOptions, extraFixed: [(String, Bool)]) throws -> (info: FineTuneRunInfo, runDir: String) {
        if let resume {
            var info = try FineTuneRun.readInfo(resume)
            // Only the length of the run may change on resume; anything else would contradict the checkpoint.
            if let given = (extraFixed + fixedOnResume).first(where: \.1) {
                throw CLIError("\(given.0) cannot change when resuming: \(resume) keeps the options it started with")
            }
            if let model, absolute(model) != info.base && absolute(model) != info.adapter {
                throw CLIError("--model \(model) is not the base of \(resume) (\(info.base))")
            }
            if let steps { info.options.steps = steps }
            if let epochs { info.options.epochs = epochs; if steps == nil { info.options.steps = nil } }
            return (info, resume)
        }
        guard let model else { throw CLIError("give --model (the base to fine-tune), or --resume RUN") }
        guard !data.isEmpty else { throw CLIError("give --data (training files)") }
        guard let out else { throw CLIError("give --out (the run folder)") }
        var info = FineTuneRunInfo(base: absolute(model), options: try options(), labels: nil, data: data.map(absolute),
                                   validation: valData.map(absolute), placeholders: try parsePlaceholders(), columns: nil)
        info.tokenizer = tokenizer.map { $0 == "gpt2" ? $0 : absolute($0) }
        if FineTuneRun.isRun(out) || FileManager.default.fileExists(atPath: out + "/checkpoint") {
            throw CLIError("--out \(out) already holds a run: continue it with --resume \(out), or choose another folder")
        }
        return (info, out)
    }

    /// Each value checked before any work (combinations that need the command's own options are
    /// checked as the run's options are made: `apply`, the command's `options()`).
    func validate() throws {
        try checkModel(model)
        for f in data { try existing(f, "--data", .file) }
        for f in valData { try existing(f, "--val-data", .file) }
        try outputFolder(out, "--out")
        try oneOf(method, "--method", ["lora", "full", "head"])
        try positive(loraRank, "--lora-rank", max: 1 << 14)
        try positive(loraAlpha, "--lora-alpha")
        try fraction(loraDropout, "--lora-dropout", openBelow: false, openAbove: true)
        if let loraTargets { _ = try parseLoRATargets(loraTargets) }
        try positive(epochs, "--epochs", max: 1 << 20)
        try positive(steps, "--steps")
        try positive(batch, "--batch", max: 1 << 16)
        try positive(gradAccum, "--grad-accum", max: 1 << 16)
        try positive(lr, "--lr")
        try nonNegative(minLr, "--min-lr")
        try atLeast(0, warmup, "--warmup", zero: "no warmup")
        try nonNegative(weightDecay, "--weight-decay")
        try atLeast(2, maxLength, "--max-length", max: 1 << 20)
        try fraction(valFraction, "--val-fraction", openBelow: false, openAbove: true)
        try atLeast(0, evalEvery, "--eval-every", zero: "only at the end")
        try oneOf(promptFormat, "--prompt-format", PromptFormat.allCases.map(\.rawValue))
        _ = try parsePlaceholders()
        try checkTokenizer(tokenizer)
        try existing(resume, "--resume", .folder)
        try positive(stopAfter, "--stop-after")
        try positive(maxSamples, "--max-samples")
    }

    /// The shared options into `o` (task and method already set there; values checked in `validate`).
    func apply(to o: inout FineTuneOptions, defaultLR: Float) throws {
        let loraGiven = loraRank != nil || loraAlpha != nil || loraDropout != nil || loraTargets != nil
        if loraGiven && o.method != .lora { throw CLIError("--lora-* options go with --method lora") }
        if let r = loraRank { o.lora.rank = r }
        if let a = loraAlpha { o.lora.alpha = a }
        if let d = loraDropout { o.lora.dropout = d }
        if let t = loraTargets { o.lora.targets = try parseLoRATargets(t) }
        if let e = epochs { o.epochs = e }
        if let s = steps { o.steps = s }
        if let b = batch { o.batch = b }
        if let g = gradAccum { o.gradAccum = g }
        o.learningRate = lr ?? defaultLR
        if let m = minLr {
            guard m <= o.learningRate else { throw CLIError("--min-lr must be in [0, --lr], got \(shown(m))") }
            o.minLearningRate = m
        }
        if let w = warmup { o.warmup = w }
        if let w = weightDecay { o.weightDecay = w }
        if let m = maxLength { o.maxLength = m }
        if let v = valFraction { o.valFraction = v }
        if let s = seed { o.seed = s }
        if let n = maxSamples { o.maxSamples = n }
        if checkpointActivations { o.checkpointActivations = true }
        if let e = evalEvery { o.evalEvery = e }
        if let p = promptFormat { o.promptFormat = PromptFormat(rawValue: p)! }
    }

    /// "q,v" → the roles, each known and once.
    func parseLoRATargets(_ t: String) throws -> [DecoderWeight] {
        var roles: [DecoderWeight] = []
        for name in t.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let r = DecoderWeight(rawValue: name), LoRAConfig.projectionRoles.contains(r) else {
                throw CLIError("--lora-targets: unknown projection '\(name)' (expected some of q,k,v,o,gate,up,down)")
            }
            if !roles.contains(r) { roles.append(r) }
        }
        return roles
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

func absolute(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.path }

/// The first `limit` items (all when nil): --max-samples, per data file.
func first<T>(_ items: [T], _ limit: Int?) -> [T] { limit.map { Array(items.prefix($0)) } ?? items }

/// Checks the data files exist and the longest example fits the model (setting the default
/// --max-length to the model's context when that is shorter).
func checkDataAndLength(_ info: inout FineTuneRunInfo, decoder: DecoderModel, lengthGiven: Bool, resumed: Bool) throws {
    for f in info.data + info.validation where !FileManager.default.fileExists(atPath: f) { throw CLIError("--data: \(f): no such file") }
    let longest = decoder.contextLength + (info.options.task == .classify ? 0 : 1)   // SFT inputs are one shorter than the example
    if !resumed && !lengthGiven { info.options.maxLength = min(info.options.maxLength, longest) }
    guard info.options.maxLength <= longest else {
        throw CLIError("--max-length \(info.options.maxLength) exceeds the model's context of \(decoder.contextLength)")
    }
}

/// Runs the loop to the end (or --stop-after): a progress line per step, evaluation, log, plot
/// and a checkpoint every --eval-every steps and at the end. Returns the last evaluation.
@discardableResult
func runTuning(_ tuner: FineTuner, info: FineTuneRunInfo, runDir: String, tokenizer: (any TextTokenizer)?, stopAfter: Int?,
               describeValidation: (Evaluation) -> String) throws -> Evaluation? {
    let o = tuner.options
    let writes = Distributed.isMain                          // under mpirun rank 0 alone writes the run
    if writes { try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true) }
    let log = writes ? try RunLog(folder: runDir, keepingThrough: tuner.step) : nil
    let started = Date(), firstStep = tuner.step, firstTokens = tuner.tokensSeen
    let last = min(tuner.totalSteps, stopAfter ?? tuner.totalSteps)
    var lastVal: Evaluation?
    while tuner.step < last {
        var s: StepStats
        do { s = try tuner.trainStep() } catch let e as TrainingError {
            FileHandle.standardError.write(Data("\n".utf8))
            throw CLIError(e.description)
        }
        let isEval = (o.evalEvery > 0 && s.step % o.evalEvery == 0) || s.step == last
        if isEval, let v = try tuner.evaluate() {
            lastVal = v; s.valLoss = v.loss; s.valAccuracy = v.accuracy
            s.metrics.merge(v.metrics) { $1 }
        }
        try log?.append(s)
        let elapsed = Date().timeIntervalSince(started), done = s.step - firstStep
        let tps = Double(s.tokens - firstTokens) / max(elapsed, 1e-9)
        let eta = elapsed / Double(done) * Double(tuner.totalSteps - s.step)
        let val = lastVal.map(describeValidation) ?? "  -  "
        let line = "step \(s.step)/\(tuner.totalSteps)  loss \(String(format: "%.3f", s.loss))  val \(val)  lr \(String(format: "%.2e", s.learningRate))  |g| \(String(format: "%.2f", s.gradNorm))  \(Int(tps)) tok/s  ETA \(Int(eta / 60))m\(String(format: "%02d", Int(eta) % 60))s"
        print("\r" + line + "   ", terminator: ""); fflush(stdout)
        if isEval {
            print("")
            try log?.plot()
            let moments = tuner.wholeMoments()                    // every rank: a sharded optimizer's slices are gathered
            if writes { try FineTuneRun.save(tuner, run: runDir, info: info, tokenizer: tokenizer, moments: moments) }
        }
    }
    if tuner.step == firstStep {
        let moments = tuner.wholeMoments()
        if writes { try FineTuneRun.save(tuner, run: runDir, info: info, tokenizer: tokenizer, moments: moments) }
    }
    if tuner.step < tuner.totalSteps { print("stopped at step \(tuner.step) of \(tuner.totalSteps); continue with --resume \(runDir)") }
    let saved = o.method == .lora ? "adapter \(runDir)/\(PEFTAdapter.weightsFile)" : o.method == .full ? "model \(runDir)/\(FineTuneRun.modelFolder)" : "head \(runDir)/\(FineTuneRun.scoreFile)"
    print("done: \(tuner.step) steps, \(grouped(tuner.tokensSeen)) tokens in \(String(format: "%.0f", Date().timeIntervalSince(started))) s; \(saved), log \(runDir)/log.jsonl, plot \(runDir)/loss.svg")
    return lastVal
}

/// "LoRA r=16 alpha=32 dropout=0.05 on 210 projections (q,k,v,…), base kept quantized (QLoRA)".
func describeLoRA(_ o: FineTuneOptions, _ decoder: DecoderModel) -> String {
    "LoRA r=\(o.lora.rank) alpha=\(formatFloat(o.lora.alpha)) dropout=\(formatFloat(o.lora.dropout)) on \(decoder.loraLayers.count) projections (\(o.lora.targets.map(\.rawValue).joined(separator: ",")))"
        + (decoder.loraLayers.first?.lora.base is QuantizedLinear ? ", base kept quantized (QLoRA)" : "")
}

/// "trainable: 4.88M of 134.5M (3.6%)".
func describeTrainable(_ trainee: Module) -> String {
    let counts = parameterCounts(trainee)
    return "trainable: \(short(counts.trainable)) of \(short(counts.total)) (\(String(format: "%.1f", 100 * Double(counts.trainable) / Double(max(counts.total, 1))))%)"
}

/// Runs a training command on every rank of an mpirun job (or once, without mpirun): ranks
/// other than 0 print nothing to standard output, and an error on any rank ends the whole job
/// with its message instead of leaving the others waiting in a collective.
func runOnEveryRank(_ body: () throws -> Void) throws {
    try Distributed.start()
    defer { Distributed.finish() }
    if !Distributed.isMain { _ = freopen("/dev/null", "w", stdout) }
    do { try body() } catch {
        if Distributed.isParallel { Distributed.abort("\(error)") }
        throw error
    }
}

/// Under mpirun: how the batch is split and what AdamW's state costs each rank.
func describeDataParallel(_ tuner: FineTuner, unit: String) -> String {
    let o = tuner.optimizer, whole = (tuner.parallel?.total ?? 0) * 8
    return "data parallel: \(Distributed.size) ranks × \(tuner.options.batch / Distributed.size) \(unit) = \(tuner.options.batch) per micro-batch; "
        + "AdamW state per rank \(String(format: "%.2f", Double(o.stateBytes) / 1_048_576)) MiB"
        + (o.owned != nil ? " (sharded; \(String(format: "%.2f", Double(whole) / 1_048_576)) MiB whole)" : "")
}
