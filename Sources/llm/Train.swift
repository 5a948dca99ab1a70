import ArgumentParser
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

    @Option(parsing: .upToNextOption, help: "Text files/folders/.jsonl, or one token file.") var data: [String] = []
    @Option(help: "gpt2, a tokenizer path, 'train' (learn a BPE from --data first), or 'char' (one id per character).") var tokenizer = "gpt2"
    @Option(help: "Vocabulary size when --tokenizer train.") var vocabSize = 4096
    @Option(help: "Architecture: gpt (GPT-2: learned positions, LayerNorm, GELU) or llama (RoPE, RMSNorm, SwiGLU, no biases).") var arch = "gpt"
    @Option(help: "Model preset (sizes): \(GPTConfig.presets.keys.sorted().joined(separator: ", ")).") var config = "tiny"
    @Option(help: "Override the preset's embedding width.") var embedding: Int?
    @Option(help: "Override the preset's layer count.") var layers: Int?
    @Option(help: "Override the preset's head count.") var heads: Int?
    @Option(help: "With --arch llama: key/value heads (grouped-query attention; default: the head count).") var kvHeads: Int?
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Train for this many minutes instead (steps estimated from the first ones).") var minutes: Double?
    @Option var batch = 8
    @Option var context = 256
    @Option(help: "Distance between training windows (default: the context length).") var stride: Int?
    @Option var gradAccum = 1
    @Option var lr: Float = 1e-3
    @Option var minLr: Float = 1e-4
    @Option var warmup = 50
    @Option var weightDecay: Float = 0.1
    @Option var clip: Float = 1
    @Option var dropout: Float = 0
    @Option var evalEvery = 50
    @Option(help: "Generate a sample every this many steps (0: never).") var sampleEvery = 0
    @Option var seed: UInt64 = 1337
    @Option(help: "Run folder (checkpoints, log.jsonl, loss.svg).") var out: String = "runs/latest"
    @Option(help: "Resume the run in this folder from its checkpoint.") var resume: String?
    @Option(help: "Stop after this step with a checkpoint, keeping the schedule of --steps (continue later with --resume).") var stopAfter: Int?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        if let stopAfter, stopAfter <= 0 { throw CLIError("--stop-after \(stopAfter): expected a positive step") }
        let runDir = resume ?? out
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let trainer: Trainer, tok: (any TextTokenizer)?, tokenizerRef: String
        var tokenizerFolder: String?
        var charTokenizer: CharTokenizer?
        if let resume {
            guard let folder = Checkpoint.latest(resume) else { throw CLIError("\(resume) has no checkpoint to resume from") }
            let state = try Checkpoint.readState(folder)
            let model = try ModelFolder.load(folder)
            if let saved = state.architecture, saved != model.architecture {
                throw CLIError("\(folder): state.json says \(saved) but the weights are \(model.architecture)")
            }
            var options = state.options
            if let steps { options.steps = steps }
            trainer = try Trainer(model: model, data: TokenFile(path: state.data), options: options)
            try Checkpoint.restore(trainer, from: folder, state: state)
            tokenizerRef = state.tokenizer
            tok = try modelTokenizer(folder: folder, vocabularySize: model.vocabularySize, explicit: nil)
            if FileManager.default.fileExists(atPath: folder + "/" + Tokenizer.configFileName) { tokenizerFolder = runDir + "/tokenizer" }
            if let c = try loadCharTokenizer(folder) { charTokenizer = c; tokenizerFolder = runDir + "/tokenizer" }
            print("resuming \(resume) at step \(state.step)")
        } else {
            guard !data.isEmpty else { throw CLIError("give --data (text files or a token file), or --resume") }
            guard ["gpt", "llama"].contains(arch) else { throw CLIError("--arch \(arch): expected gpt or llama") }
            if kvHeads != nil && arch != "llama" { throw CLIError("--kv-heads is for --arch llama") }
            // Tokenizer and token file.
            let tokenFile: String
            if tokenizer == "char" {
                var text = ""
                for p in data { for f in try expandInputs(p) { text += try utf8Text(try readFile(f), source: f) } }
                let c = CharTokenizer(training: text)
                tokenizerFolder = runDir + "/tokenizer"
                try FileManager.default.createDirectory(atPath: tokenizerFolder!, withIntermediateDirectories: true)
                try atomicWrite(try JSONEncoder().encode(c), to: tokenizerFolder! + "/" + charTokenizerFile)
                tokenFile = runDir + "/data.tok"
                try TokenFile.write(c.encode(text), vocabularySize: c.vocabularySize, to: tokenFile)
                print("character-level tokenizer: \(c.vocabularySize) ids (\(c.alphabet.count) characters + unknown), \(text.unicodeScalars.count) tokens")
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
                    print("training a tokenizer: vocabulary \(vocabSize), GPT-4 split pattern, on \(texts.reduce(0) { $0 + $1.count }) bytes")
                    t = try BPETrainer(vocabularySize: vocabSize, pattern: .gpt4, specialTokens: ["<|endoftext|>"]).train(texts)
                    tokenizerFolder = runDir + "/tokenizer"
                    try t.save(to: tokenizerFolder!)
                    tokenizerRef = tokenizerFolder!
                default: t = try Tokenizer.load(path: tokenizer); tokenizerRef = tokenizer
                }
                tok = t
                tokenFile = runDir + "/data.tok"
                print(try prepareCorpus(inputs: data, jsonlField: "text", tokenizer: t, out: tokenFile, threads: Parallel.threads))
            }
            let file = try TokenFile(path: tokenFile)
            guard var cfg = GPTConfig.presets[config] else { throw CLIError("unknown --config '\(config)' (known: \(GPTConfig.presets.keys.sorted().joined(separator: ", ")))") }
            cfg.vocabularySize = tok?.vocabularySize ?? charTokenizer?.vocabularySize ?? file.vocabularySize
            cfg.contextLength = context
            if let embedding { cfg.embedding = embedding }
            if let layers { cfg.layers = layers }
            if let heads { cfg.heads = heads }
            cfg.dropout = dropout
            guard cfg.embedding > 0, cfg.layers > 0, cfg.heads > 0 else { throw CLIError("--embedding, --layers and --heads must be positive") }
            guard cfg.embedding % cfg.heads == 0 else { throw CLIError("embedding \(cfg.embedding) is not divisible by \(cfg.heads) heads") }
            guard context > 0, batch > 0, gradAccum > 0 else { throw CLIError("--context, --batch and --grad-accum must be positive") }
            guard dropout >= 0 && dropout < 1 else { throw CLIError("--dropout \(dropout): expected a value in [0, 1)") }
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
            var options = TrainingOptions(steps: steps ?? 1_000_000, batch: batch, context: context)
            options.gradAccum = gradAccum; options.learningRate = lr; options.minLearningRate = minLr; options.warmup = warmup
            options.weightDecay = weightDecay; options.clip = clip; options.evalEvery = evalEvery; options.sampleEvery = sampleEvery
            options.seed = seed
            options.stride = stride
            let model = makeModel()
            var t = try Trainer(model: model, data: file, options: options)
            if steps == nil {
                guard let minutes else { throw CLIError("give --steps or --minutes") }
                // Time two steps on a throwaway copy of the trainer, then size the schedule to the budget.
                let probe = try Trainer(model: makeModel(), data: file, options: options)
                _ = try probe.trainStep()
                let s = try probe.trainStep().seconds
                options.steps = max(10, Int(minutes * 60 / s * 0.93))
                t = try Trainer(model: model, data: file, options: options)
                print("about \(String(format: "%.2f", s)) s per step: \(options.steps) steps in \(minutes) minutes")
            }
            trainer = t
            print("model: \(model.summary), context \(cfg.contextLength): \(grouped(model.parameterCount)) parameters")
            print("data: \(grouped(file.count)) tokens (\(grouped(trainer.valRange.count)) held out for validation)")
        }
        let sample: ((any LanguageModel) -> String)?
        if let tok { sample = { sampleText($0, tok) } } else if let c = charTokenizer { sample = { sampleText($0, c) } } else { sample = nil }
        try loop(trainer, runDir: runDir, sample: sample, tokenizerRef: tokenizerRef, tokenizerFolder: tokenizerFolder)
    }

    func loop(_ trainer: Trainer, runDir: String, sample: ((any LanguageModel) -> String)?, tokenizerRef: String, tokenizerFolder: String?) throws {
        let o = trainer.options
        let log = try RunLog(folder: runDir, keepingThrough: trainer.step)
        let baseline = trainer.unigramLoss()
        print("unigram baseline loss \(String(format: "%.3f", baseline)); run folder \(runDir)")
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
            let isEval = s.step % o.evalEvery == 0 || s.step == last
            if isEval { lastVal = try trainer.evaluate(); s.valLoss = lastVal }
            try log.append(s)
            let elapsed = Date().timeIntervalSince(started), done = s.step - firstStep
            let tps = Double(s.tokens - (log.entries.first { $0.step == firstStep + 1 }?.tokens ?? 0) + o.batch * o.context * o.gradAccum) / max(elapsed, 1e-9)
            let eta = elapsed / Double(done) * Double(o.steps - s.step)
            let val = lastVal.map { String(format: "%.3f (ppl %.1f)", $0, Foundation.exp($0)) } ?? "  -  "
            let line = "step \(s.step)/\(o.steps)  loss \(String(format: "%.3f", s.loss))  val \(val)  lr \(String(format: "%.2e", s.learningRate))  |g| \(String(format: "%.2f", s.gradNorm))  \(Int(tps)) tok/s  ETA \(Int(eta / 60))m\(String(format: "%02d", Int(eta) % 60))s"
            print("\r" + line + "   ", terminator: ""); fflush(stdout)
            if isEval {
                print("")
                try log.plot(baseline: baseline)
                try Checkpoint.save(trainer, run: runDir, tokenizer: tokenizerRef, tokenizerFiles: tokenizerFolder)
            }
            if o.sampleEvery > 0, s.step % o.sampleEvery == 0, let sample {
                print("\n  sample: " + sample(trainer.model).replacingOccurrences(of: "\n", with: "\n          "))
            }
        }
        if trainer.step < o.steps { print("stopped at step \(trainer.step) of \(o.steps); continue with --resume \(runDir)") }
        print("done: \(trainer.step) steps, \(grouped(trainer.tokensSeen)) tokens; checkpoint in \(Checkpoint.folder(runDir)), log \(runDir)/log.jsonl, plot \(runDir)/loss.svg")
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
