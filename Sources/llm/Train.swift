import ArgumentParser
import Cluster
import Foundation
import Inference
import Models
import NN
import Tensors
import Tokenization
import Training

/// `llm train`: pretrain a GPT or a Llama on text, with live progress, logs, a loss plot and checkpoints.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a GPT or a Llama on text files (or a token file from llm prepare).")

    // Options a resumed run takes from its checkpoint are optional here, so that giving one with
    // --resume is an error rather than silently ignored; their defaults are in the help.
    @Option(parsing: .upToNextOption, help: "Text files/folders/.jsonl, or one token file.") var data: [String] = []
    @Option(help: "gpt2 (default), a tokenizer path, 'train' (learn a BPE from --data first), or 'char' (one id per character).") var tokenizer: String?
    @Option(help: "Vocabulary size when --tokenizer train (default 4096).") var vocabSize: Int?
    @Option(help: "Architecture: gpt (default; GPT-2: learned positions, LayerNorm, GELU) or llama (RoPE, RMSNorm, SwiGLU, no biases).") var arch: String?
    @Option(help: "Model preset (sizes; default tiny): \(GPTConfig.presets.keys.sorted().joined(separator: ", ")).") var config: String?
    @Option(help: "Override the preset's embedding width.") var embedding: Int?
    @Option(help: "Override the preset's layer count.") var layers: Int?
    @Option(help: "Override the preset's head count.") var heads: Int?
    @Option(help: "With --arch llama: key/value heads (grouped-query attention; default: the head count).") var kvHeads: Int?
    @Option(help: "Optimizer steps (with --resume: a new total, extending the run).") var steps: Int?
    @Option(help: "Train for this many minutes instead (steps estimated from the first ones).") var minutes: Double?
    @Option(help: "Windows per micro-batch (default 8).") var batch: Int?
    @Option(help: "Tokens per window (default 256).") var context: Int?
    @Option(help: "Distance between training windows (default: the context length).") var stride: Int?
    @Option(help: "Micro-batches per optimizer step (default 1).") var gradAccum: Int?
    @Option(help: "Peak learning rate (default 1e-3).") var lr: Float?
    @Option(help: "Learning rate at the end of the cosine decay (default 1e-4, or --lr when that is lower).") var minLr: Float?
    @Option(help: "Warmup steps (default 50).") var warmup: Int?
    @Option(help: "AdamW weight decay on matrices (default 0.1).") var weightDecay: Float?
    @Option(help: "Largest global gradient norm (default 1; 0: no clipping).") var clip: Float?
    @Option(help: "Dropout probability (default 0).") var dropout: Float?
    @Option(help: "Evaluate and save a checkpoint every this many steps (default 50; 0: only at the end).") var evalEvery: Int?
    @Option(help: "Generate a sample every this many steps (default 0: never).") var sampleEvery: Int?
    @Option(help: "Random seed (default 1337).") var seed: UInt64?
    @Option(help: "Run folder (checkpoints, log.jsonl, loss.svg; default runs/latest). It must not hold a run already.") var out: String?
    @Option(help: "Resume the run in this folder from its checkpoint.") var resume: String?
    @Option(help: "Stop after this step with a checkpoint, keeping the schedule of --steps (continue later with --resume).") var stopAfter: Int?
    @Flag(help: "Under mpirun: each rank keeps AdamW's moments for its slice of the parameters only (ZeRO stage 1).") var shardOptimizer = false
    @OptionGroup var global: GlobalOptions

    /// The options of a new run that a resumed run keeps from its checkpoint.
    var fixedOnResume: [(String, Bool)] {
        [("--data", !data.isEmpty), ("--tokenizer", tokenizer != nil), ("--vocab-size", vocabSize != nil), ("--arch", arch != nil),
         ("--config", config != nil), ("--embedding", embedding != nil), ("--layers", layers != nil), ("--heads", heads != nil),
         ("--kv-heads", kvHeads != nil), ("--minutes", minutes != nil), ("--batch", batch != nil), ("--context", context != nil),
         ("--stride", stride != nil), ("--grad-accum", gradAccum != nil), ("--lr", lr != nil), ("--min-lr", minLr != nil),
         ("--warmup", warmup != nil), ("--weight-decay", weightDecay != nil), ("--clip", clip != nil), ("--dropout", dropout != nil),
         ("--eval-every", evalEvery != nil), ("--sample-every", sampleEvery != nil), ("--seed", seed != nil), ("--out", out != nil)]
    }

    func validate() throws {
        for path in data { try existing(path, "--data", .fileOrFolder) }
        if let tokenizer, !["gpt2", "train", "char"].contains(tokenizer) { try existing(tokenizer, "--tokenizer", .fileOrFolder) }
        try atLeast(257, vocabSize, "--vocab-size", max: largestVocabulary)
        if vocabSize != nil && tokenizer != "train" { throw CLIError("--vocab-size goes with --tokenizer train") }
        try oneOf(arch, "--arch", ["gpt", "llama"])
        try oneOf(config, "--config", GPTConfig.presets.keys.sorted())
        try positive(embedding, "--embedding", max: 1 << 16)
        try positive(layers, "--layers", max: 1 << 12)
        try positive(heads, "--heads", max: 1 << 12)
        try positive(kvHeads, "--kv-heads", max: 1 << 12)
        if kvHeads != nil && (arch ?? "gpt") != "llama" { throw CLIError("--kv-heads is for --arch llama") }
        try positive(steps, "--steps")
        try positive(minutes, "--minutes", max: 1e7)
        if steps != nil && minutes != nil { throw CLIError("give --steps or --minutes, not both") }
        try positive(batch, "--batch", max: 1 << 16)
        try positive(context, "--context", max: 1 << 20)
        try positive(stride, "--stride", max: 1 << 20)
        try positive(gradAccum, "--grad-accum", max: 1 << 16)
        try positive(lr, "--lr")
        try nonNegative(minLr, "--min-lr")
        if let minLr, minLr > (lr ?? Self.defaultLR) { throw CLIError("--min-lr must be at most --lr (\(shown(lr ?? Self.defaultLR))), got \(shown(minLr))") }
        try atLeast(0, warmup, "--warmup", zero: "no warmup")
        try nonNegative(weightDecay, "--weight-decay")
        try nonNegative(clip, "--clip")
        try fraction(dropout, "--dropout", openBelow: false, openAbove: true)
        try atLeast(0, evalEvery, "--eval-every", zero: "only at the end")
        try atLeast(0, sampleEvery, "--sample-every", zero: "never")
        try outputFolder(out, "--out", makingParents: true)
        try existing(resume, "--resume", .folder)
        try positive(stopAfter, "--stop-after")
        if let resume {
            guard Checkpoint.latest(resume) != nil else { throw CLIError("--resume \(resume) has no checkpoint to resume from") }
            if let given = fixedOnResume.first(where: \.1) {
                throw CLIError("\(given.0) cannot change when resuming: \(resume) keeps the options it started with (only --steps, --stop-after and --threads may be given)")
            }
        } else {
            guard !data.isEmpty else { throw CLIError("give --data (text files or a token file), or --resume") }
            guard steps != nil || minutes != nil else { throw CLIError("give --steps or --minutes") }
            let runDir = out ?? Self.defaultOut
            if Checkpoint.latest(runDir) != nil {
                throw CLIError("--out \(runDir) already holds a run: continue it with --resume \(runDir), or choose another folder")
            }
            // Sizes before any work (the vocabulary as far as it is known now; again once it is).
            try checkMemory(modelConfig(vocabularySize: vocabSize ?? ((tokenizer ?? "gpt2") == "gpt2" ? 50257 : 0)), batch: batch ?? 8)
        }
    }

    static let defaultLR: Float = 1e-3, defaultOut = "runs/latest"

    /// The --config preset with --context, --embedding, --layers, --heads and --dropout applied.
    func modelConfig(vocabularySize: Int) -> GPTConfig {
        var cfg = GPTConfig.presets[config ?? "tiny"]!
        cfg.vocabularySize = vocabularySize
        cfg.contextLength = context ?? 256
        if let embedding { cfg.embedding = embedding }
        if let layers { cfg.layers = layers }
        if let heads { cfg.heads = heads }
        cfg.dropout = dropout ?? 0
        return cfg
    }

    /// Refuses sizes whose training could not fit in this machine's memory, by a lower bound:
    /// weights, gradients and AdamW's two moments (16 bytes a parameter), the logits and their
    /// gradient, and one residual stream per layer (4 bytes a value).
    func checkMemory(_ cfg: GPTConfig, batch: Int) throws {
        let (v, t, c, l) = (Double(cfg.vocabularySize), Double(cfg.contextLength), Double(cfg.embedding), Double(cfg.layers))
        let parameters = v * c + t * c + l * 12 * c * c
        let activations = Double(batch) * t * (2 * v + l * c)
        let bytes = 16 * parameters + 4 * activations
        let physical = Double(ProcessInfo.processInfo.physicalMemory)
        guard bytes <= physical else {
            throw CLIError(String(format: "--batch %d × --context %d with this model (%.0f M parameters) needs at least %.1f GiB to train; this machine has %.1f GiB: lower --batch, --context or the model size",
                                  batch, cfg.contextLength, parameters / 1e6, bytes / 1_073_741_824, physical / 1_073_741_824))
        }
    }

    /// Under mpirun every rank runs this: rank 0 prepares the data and writes the run folder,
    /// every rank trains on its share of each batch (see `Trainer`); an error on any rank ends
    /// the whole job with its message.
    func run() throws { try runOnEveryRank(train) }

    /// Progress lines, from rank 0 only.
    func say(_ line: String, terminator: String = "\n") {
        if Distributed.isMain { print(line, terminator: terminator) }
    }

    /// Under mpirun, ranks other than 0 take the tokenizer and token file rank 0 made (the same
    /// choices as rank 0's preparation below, reading instead of writing).
    func preparedByRankZero(runDir: String, tokenizer: String)
        throws -> (tokenFile: String, tok: (any TextTokenizer)?, chars: CharTokenizer?, ref: String, folder: String?) {
        let folder = runDir + "/tokenizer", tokens = runDir + "/data.tok"
        if tokenizer == "char" {
            guard let c = try loadCharTokenizer(folder) else { throw CLIError("rank 0's character tokenizer is missing from \(folder)") }
            return (tokens, nil, c, folder, folder)
        }
        if data.count == 1, (try? TokenFile(path: data[0])) != nil {
            let tok: (any TextTokenizer)? = tokenizer == "train" ? nil : try (tokenizer == "gpt2" ? loadGPT2() : Tokenizer.load(path: tokenizer))
            return (data[0], tok, nil, tokenizer, nil)
        }
        switch tokenizer {
        case "gpt2": return (tokens, try loadGPT2(), nil, "gpt2", nil)
        case "train": return (tokens, try Tokenizer.load(path: folder), nil, folder, folder)
        default: return (tokens, try Tokenizer.load(path: tokenizer), nil, tokenizer, nil)
        }
    }

    func train() throws {
        global.apply()
        let runDir = resume ?? out ?? Self.defaultOut
        let tokenizer = self.tokenizer ?? "gpt2", arch = self.arch ?? "gpt"
        let context = self.context ?? 256, batch = self.batch ?? 8, seed = self.seed ?? 1337
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let trainer: Trainer, tok: (any TextTokenizer)?, tokenizerRef: String
        var tokenizerFolder: String?
        var charTokenizer: CharTokenizer?
        if let resume {
            let folder = Checkpoint.latest(resume)!
            let state = try Checkpoint.readState(folder)
            let model = try ModelFolder.load(folder)
            if let saved = state.architecture, saved != model.architecture {
                throw CLIError("\(folder): state.json says \(saved) but the weights are \(model.architecture)")
            }
            var options = state.options
            if let steps { options.steps = steps }
            trainer = try Trainer(model: model, data: TokenFile(path: state.data), options: options, shardOptimizer: shardOptimizer)
            try Checkpoint.restore(trainer, from: folder, state: state)
            tokenizerRef = state.tokenizer
            tok = try modelTokenizer(folder: folder, vocabularySize: model.vocabularySize, explicit: nil)
            if FileManager.default.fileExists(atPath: folder + "/" + Tokenizer.configFileName) { tokenizerFolder = runDir + "/tokenizer" }
            if let c = try loadCharTokenizer(folder) { charTokenizer = c; tokenizerFolder = runDir + "/tokenizer" }
            say("resuming \(resume) at step \(state.step)")
        } else {
            // Tokenizer and token file: rank 0 makes them (into the run folder), the other ranks
            // then read what it made.
            let tokenFile: String
            if !Distributed.isMain {
                Distributed.barrier()
                let r = try preparedByRankZero(runDir: runDir, tokenizer: tokenizer)
                tokenFile = r.tokenFile; tok = r.tok; charTokenizer = r.chars; tokenizerRef = r.ref; tokenizerFolder = r.folder
            } else if tokenizer == "char" {
                var text = ""
                for p in data { for f in try expandInputs(p) { text += try utf8Text(try readFile(f), source: f) } }
                let c = CharTokenizer(training: text)
                tokenizerFolder = runDir + "/tokenizer"
                try FileManager.default.createDirectory(atPath: tokenizerFolder!, withIntermediateDirectories: true)
                try atomicWrite(try JSONEncoder().encode(c), to: tokenizerFolder! + "/" + charTokenizerFile)
                tokenFile = runDir + "/data.tok"
                try TokenFile.write(c.encode(text), vocabularySize: c.vocabularySize, to: tokenFile)
                say("character-level tokenizer: \(c.vocabularySize) ids (\(c.alphabet.count) characters + unknown), \(text.unicodeScalars.count) tokens")
                charTokenizer = c
                tok = nil
                tokenizerRef = tokenizerFolder!
            } else if data.count == 1, (try? TokenFile(path: data[0])) != nil {
                tokenFile = data[0]
                tok = tokenizer == "train" ? nil : try (tokenizer == "gpt2" ? loadGPT2() : Tokenizer.load(path: tokenizer))
                tokenizerRef = tokenizer
            } else {
                let t: Tokenizer
                switch tokenizer {
                case "gpt2": t = try loadGPT2(); tokenizerRef = "gpt2"
                case "train":
                    var texts: [[UInt8]] = []
                    for p in data { for f in try expandInputs(p) where !f.hasSuffix(".jsonl") { texts.append(Array(try readFile(f))) } }
                    let vocabSize = self.vocabSize ?? 4096
                    say("training a tokenizer: vocabulary \(vocabSize), GPT-4 split pattern, on \(texts.reduce(0) { $0 + $1.count }) bytes")
                    t = try BPETrainer(vocabularySize: vocabSize, pattern: .gpt4, specialTokens: ["<|endoftext|>"]).train(texts)
                    tokenizerFolder = runDir + "/tokenizer"
                    try t.save(to: tokenizerFolder!)
                    tokenizerRef = tokenizerFolder!
                default: t = try Tokenizer.load(path: tokenizer); tokenizerRef = tokenizer
                }
                tok = t
                tokenFile = runDir + "/data.tok"
                say(try prepareCorpus(inputs: data, jsonlField: "text", tokenizer: t, out: tokenFile, threads: Parallel.threads))
            }
            if Distributed.isMain { Distributed.barrier() }
            let file = try TokenFile(path: tokenFile)
            let cfg = modelConfig(vocabularySize: tok?.vocabularySize ?? charTokenizer?.vocabularySize ?? file.vocabularySize)
            guard cfg.embedding % cfg.heads == 0 else { throw CLIError("--embedding \(cfg.embedding) is not divisible by \(cfg.heads) heads (--heads)") }
            try checkMemory(cfg, batch: batch)
            let kv = kvHeads ?? cfg.heads
            guard kv > 0, cfg.heads % kv == 0 else { throw CLIError("--kv-heads \(kv): the head count \(cfg.heads) must be a multiple of it") }
            guard arch == "gpt" || (cfg.embedding / cfg.heads) % 2 == 0 else { throw CLIError("--arch llama needs an even head size (RoPE rotates pairs); got \(cfg.embedding / cfg.heads)") }
            // The same sizes as a Llama: SwiGLU about 8/3·C wide (a multiple of 32), RoPE, tied head.
            let llamaConfig = LlamaConfig(vocabularySize: cfg.vocabularySize, contextLength: cfg.contextLength, embedding: cfg.embedding,
                                          hidden: (8 * cfg.embedding / 3 + 31) / 32 * 32, layers: cfg.layers, heads: cfg.heads, kvHeads: kv,
                                          rmsNormEpsilon: 1e-5, tiedEmbeddings: true)
            func makeModel() -> any TrainableModel {
                arch == "llama" ? Llama(llamaConfig, rng: RandomGenerator(seed: seed)) : GPT(cfg, rng: RandomGenerator(seed: seed))
            }
            // --batch is per rank: a step's global batch is batch × grad-accum × ranks.
            var options = TrainingOptions(steps: steps ?? 1_000_000, batch: batch * Distributed.size, context: context)
            options.gradAccum = gradAccum ?? 1; options.learningRate = lr ?? Self.defaultLR; options.minLearningRate = minLr ?? min(1e-4, lr ?? Self.defaultLR)
            options.warmup = warmup ?? 50; options.weightDecay = weightDecay ?? 0.1; options.clip = clip ?? 1
            options.evalEvery = evalEvery ?? 50; options.sampleEvery = sampleEvery ?? 0; options.seed = seed
            options.stride = stride
            let model = makeModel()
            var t = try Trainer(model: model, data: file, options: options, shardOptimizer: shardOptimizer)
            if steps == nil {
                guard let minutes else { throw CLIError("give --steps or --minutes") }
                // Time two steps on a throwaway copy of the trainer, then size the schedule to the
                // budget (every rank agrees: the slowest one's time).
                let probe = try Trainer(model: makeModel(), data: file, options: options, shardOptimizer: shardOptimizer)
                _ = try probe.trainStep()
                let s = Distributed.allReduceMax([try probe.trainStep().seconds])[0]
                options.steps = max(10, Int(minutes * 60 / s * 0.93))
                t = try Trainer(model: model, data: file, options: options, shardOptimizer: shardOptimizer)
                say("about \(String(format: "%.2f", s)) s per step: \(options.steps) steps in \(minutes) minutes")
            }
            trainer = t
            say("model: \(model.summary), context \(cfg.contextLength): \(grouped(model.parameterCount)) parameters")
            say("data: \(grouped(file.count)) tokens (\(grouped(trainer.valRange.count)) held out for validation)")
        }
        if Distributed.isParallel {
            let o = trainer.optimizer, unsharded = trainer.parallel!.total * 8
            say("data parallel: \(Distributed.size) ranks × \(trainer.rows.count) windows = \(trainer.options.batch) windows per micro-batch; "
                + "AdamW state per rank \(String(format: "%.1f", Double(o.stateBytes) / 1_048_576)) MiB"
                + (o.owned != nil ? " (sharded; \(String(format: "%.1f", Double(unsharded) / 1_048_576)) MiB whole)" : ""))
        }
        let sample: ((any LanguageModel) -> String)?
        if let tok { sample = { sampleText($0, tok) } } else if let c = charTokenizer { sample = { sampleText($0, c) } } else { sample = nil }
        try loop(trainer, runDir: runDir, sample: sample, tokenizerRef: tokenizerRef, tokenizerFolder: tokenizerFolder)
    }

    func loop(_ trainer: Trainer, runDir: String, sample: ((any LanguageModel) -> String)?, tokenizerRef: String, tokenizerFolder: String?) throws {
        let o = trainer.options
        // Rank 0 keeps the log and the plot; every rank trains, evaluates and checkpoints
        // (collectives), and only rank 0 writes.
        let log = Distributed.isMain ? try RunLog(folder: runDir, keepingThrough: trainer.step) : nil
        let baseline = Distributed.isMain ? trainer.unigramLoss() : 0
        say("unigram baseline loss \(String(format: "%.3f", baseline)); run folder \(runDir)")
        let started = Date()
        let firstStep = trainer.step
        var lastVal: Float?
        let last = min(o.steps, stopAfter ?? o.steps)
        while trainer.step < last {
            var s: StepStats
            do { s = try trainer.trainStep() } catch let e as TrainingError {
                FileHandle.standardError.write(Data("\n".utf8))
                throw CLIError(e.description)
            }
            let isEval = (o.evalEvery > 0 && s.step % o.evalEvery == 0) || s.step == last
            if isEval { lastVal = try trainer.evaluate(); s.valLoss = lastVal }
            if isEval, !Distributed.isMain { try Checkpoint.save(trainer, run: runDir, tokenizer: tokenizerRef, tokenizerFiles: tokenizerFolder) }
            guard let log else { continue }
            try log.append(s)
            let elapsed = Date().timeIntervalSince(started), done = s.step - firstStep
            let tps = Double(s.tokens - (log.entries.first { $0.step == firstStep + 1 }?.tokens ?? 0) + o.batch * o.context * o.gradAccum) / max(elapsed, 1e-9)
            let eta = elapsed / Double(done) * Double(o.steps - s.step)
            let val = lastVal.map { String(format: "%.3f (ppl %.1f)", $0, Foundation.exp($0)) } ?? "  -  "
            let line = "step \(s.step)/\(o.steps)  loss \(String(format: "%.3f", s.loss))  val \(val)  lr \(String(format: "%.2e", s.learningRate))  |g| \(String(format: "%.2f", s.gradNorm))  \(Int(tps)) tok/s  ETA \(Int(eta / 60))m\(String(format: "%02d", Int(eta) % 60))s"
            say("\r" + line + "   ", terminator: ""); fflush(stdout)
            if isEval {
                say("")
                try log.plot(baseline: baseline)
                try Checkpoint.save(trainer, run: runDir, tokenizer: tokenizerRef, tokenizerFiles: tokenizerFolder)
            }
            if o.sampleEvery > 0, s.step % o.sampleEvery == 0, let sample {
                say("\n  sample: " + sample(trainer.model).replacingOccurrences(of: "\n", with: "\n          "))
            }
        }
        if trainer.step < o.steps { say("stopped at step \(trainer.step) of \(o.steps); continue with --resume \(runDir)") }
        say("done: \(trainer.step) steps, \(grouped(trainer.tokensSeen)) tokens; checkpoint in \(Checkpoint.folder(runDir)), log \(runDir)/log.jsonl, plot \(runDir)/loss.svg")
    }
}

/// A short sample (temperature 0.8, top-k 40) after an end-of-text token.
func sampleText(_ model: any LanguageModel, _ tok: any TextTokenizer, tokens: Int = 60, seed: UInt64 = 0) -> String {
    let eotId: UInt32 = tok.specialTokenId("<|endoftext|>") ?? 0
    var gen = Generator(model: model, sampler: Sampler(temperature: 0.8, topK: 40, seed: seed))
    if tok.specialTokenId("<|endoftext|>") != nil { gen.stopIds = [Int32(eotId)] }
    let ids = (try? gen.generate(prompt: [Int32(eotId)], maxNewTokens: tokens)) ?? []
    model.train()
    return (try? tok.decode(ids.map { UInt32($0) })) ?? ""
}

/// The same for a character-level model, starting from a newline (or the first character).
func sampleText(_ model: any LanguageModel, _ chars: CharTokenizer, tokens: Int = 120, seed: UInt64 = 0) -> String {
    let start = chars.encode("\n").first.flatMap { $0 == CharTokenizer.unknownId ? nil : $0 } ?? 1
    var gen = Generator(model: model, sampler: Sampler(temperature: 0.8, topK: 40, seed: seed))
    let ids = (try? gen.generate(prompt: [Int32(start)], maxNewTokens: tokens)) ?? []
    model.train()
    return (try? chars.decode(ids.map { UInt32($0) })) ?? ""
}
