import ArgumentParser
import Cluster
import Foundation
import Inference
import Models
import NN
import Tensors
import Tokenization
import Training

/// `llm dpo`: preference tuning with Direct Preference Optimization on chosen/rejected pairs,
/// LoRA (QLoRA on a quantized base) or full, against the starting policy as the frozen reference.
struct PreferenceTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpo",
        abstract: "Preference-tune a model with DPO on chosen/rejected pairs (LoRA or full), the starting model as the frozen reference.")
    @Option(help: "Start from this LoRA adapter (an SFT run or a PEFT folder): it keeps training, and base + it is the reference.") var adapter: String?
    @Option(help: "DPO's beta: how far the policy may move from the reference (default 0.1).") var beta: Float?
    @Flag(help: "Average each answer's log-probability over its tokens (the book) instead of summing it (the DPO paper and TRL; the default).") var averageLogprobs = false
    @OptionGroup var tuning: TuningArguments
    @OptionGroup var global: GlobalOptions

    static let heldOutFile = "validation.jsonl", referenceFile = "reference.safetensors"

    func validate() throws {
        try existing(adapter, "--adapter", .folder)
        try positive(beta, "--beta")
        if tuning.resume == nil { _ = try options() }   // the combinations
    }

    /// Under mpirun every rank runs this (see `runOnEveryRank`); each scores the reference on
    /// its own, rank 0 alone writes the run.
    func run() throws { try runOnEveryRank(tune) }

    func tune() throws {
        global.apply()
        var (info, runDir) = try tuning.runInfo(options: options, extraFixed: [("--beta", beta != nil), ("--average-logprobs", averageLogprobs),
                                                                                ("--adapter", adapter != nil)])
        Distributed.barrier()                                  // every rank has checked the run folder before rank 0 writes to it
        let resumed = tuning.resume != nil
        if !resumed { info.options.batch *= Distributed.size } // --batch is per rank; the run keeps the global batch
        if !resumed { try resolveBase(&info) }
        guard info.options.task == .dpo, let dpo = info.options.dpo else {
            throw CLIError("\(runDir) is not a DPO run (task \(info.options.task.rawValue)): continue it with llm finetune --resume \(runDir)")
        }

        // The base (with the adapter it starts from), in Float32 arithmetic; GGUF weights stay quantized.
        let loaded = try LoadedModel.load(info.base, tokenizer: info.tokenizer, adapter: info.adapter, arithmetic: .float32)
        guard let decoder = loaded.model as? DecoderModel else { throw CLIError("\(info.base): this model cannot be fine-tuned") }
        guard let tokenizer = loaded.tokenizer else { throw CLIError("\(info.base): DPO needs a BPE tokenizer (the model has none, or a character-level one): give --tokenizer") }
        try checkDataAndLength(&info, decoder: decoder, lengthGiven: tuning.maxLength != nil, resumed: resumed)
        var o = info.options
        let eos = loaded.responseEnd

        // Data: records read (errors name file and line), the held-out share split off and kept
        // in the run folder as JSONL, so that `llm evaluate` can score any model on the same pairs.
        let template = loaded.chat ?? ChatTemplate()
        func pairs(_ records: [(String, [String: Any])]) throws -> [PreferencePair] {
            try records.map { try PreferenceData.pair($1, source: $0, format: o.promptFormat, template: template, placeholders: info.placeholders) }
        }
        var trainRecords = try info.data.flatMap { first(try InstructionData.records($0), o.maxSamples) }
        var heldRecords = try info.validation.flatMap { first(try InstructionData.records($0), o.maxSamples) }
        guard !trainRecords.isEmpty else { throw CLIError("--data: no records in \(info.data.joined(separator: ", "))") }
        if info.validation.isEmpty { (trainRecords, heldRecords) = split(trainRecords, fraction: o.valFraction, rng: RandomGenerator(seed: o.seed)) }
        let (train, summary) = try FineTuneEncoding.pairs(try pairs(trainRecords), tokenizer: tokenizer, bos: loaded.bos, eos: eos, maxLength: o.maxLength)
        let (held, heldSummary) = try FineTuneEncoding.pairs(try pairs(heldRecords), tokenizer: tokenizer, bos: loaded.bos, eos: eos, maxLength: o.maxLength)
        if Distributed.isMain { try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true) }
        if !heldRecords.isEmpty, Distributed.isMain { try writeJSONL(heldRecords.map(\.1), to: runDir + "/" + Self.heldOutFile) }

        // What trains. The model's generator draws new adapters' init and every dropout mask.
        decoder.rng.restore(from: RandomGenerator(seed: o.seed &+ 1))
        let startAdapter = !decoder.loraLayers.isEmpty
        switch o.method {
        case .lora where startAdapter:
            // The adapter keeps training: its rank, alpha and targets are the run's.
            let layers = decoder.loraLayers
            let first = layers[0].lora
            guard layers.allSatisfy({ $0.lora.rank == first.rank && $0.lora.scale == first.scale }) else {
                throw CLIError("--adapter \(info.adapter ?? info.base): its adapters differ in rank or scale (rsLoRA or per-module alpha); fuse it with llm merge and start from the merged model")
            }
            o.lora = LoRAConfig(rank: first.rank, alpha: first.alpha, dropout: o.lora.dropout,
                                targets: LoRAConfig.projectionRoles.filter { r in layers.contains { $0.role == r } })
            for (_, _, l) in layers {
                l.loraA.requiresGrad = true; l.loraB.requiresGrad = true
                l.dropout = Dropout(o.lora.dropout, rng: decoder.rng)
            }
        case .lora:
            do { try decoder.addLoRA(o.lora, rng: decoder.rng) } catch { throw CLIError("--lora-targets: \(error)") }
        case .full:
            if startAdapter { decoder.mergeAdapters() }
            decoder.dequantizeWeights()
            decoder.freeze(false)
        case .head:
            throw CLIError("--method must be lora or full for DPO")
        }
        info.options = o

        // The reference: the policy as it starts, frozen. Its log-probabilities are computed once
        // (new LoRA adapters switched off: their update is zero) and cached in the run folder.
        decoder.eval()
        let refStarted = Date()
        var cached = false
        let reference: (train: [PairLogProbs], held: [PairLogProbs])
        if resumed, let r = try? readReference(runDir, train: train, held: held) {
            reference = r; cached = true
        } else {
            if o.method == .lora && !startAdapter { decoder.setAdaptersEnabled(false) }
            let rows = max(1, o.batch / Distributed.size)
            reference = (try DPO.logProbs(decoder, pairs: train, pad: eos, batch: rows), try DPO.logProbs(decoder, pairs: held, pad: eos, batch: rows))
            decoder.setAdaptersEnabled(true)
            if Distributed.isMain { try writeReference(reference, to: runDir) }
        }

        let objective = try DPOObjective(model: decoder, train: train, validation: held, trainReference: reference.train,
                                         validationReference: reference.held, pad: eos, options: dpo)
        let tuner: FineTuner
        do { tuner = try FineTuner(model: decoder, classifier: nil, objective: objective, options: o, shardOptimizer: tuning.shardOptimizer) } catch let e as TrainingError {
            throw CLIError(e.description)
        }
        if resumed {
            let state = try FineTuneRun.restore(tuner, run: runDir)
            print("resumed \(runDir) at step \(state.step)")
        }

        print("model: \(loaded.summary)")
        print("data: \(summary.examples) training pairs (\(summary.tokens) tokens, \(summary.trainedTokens) answer tokens, longest side \(summary.longest)); \(summary.truncated) cut to --max-length \(o.maxLength), \(summary.dropped) dropped; \(held.count) held-out pairs (\(heldSummary.truncated) cut, \(heldSummary.dropped) dropped)\(heldRecords.isEmpty ? "" : ", kept in \(runDir)/\(Self.heldOutFile)")")
        let how = o.method == .lora ? describeLoRA(o, decoder) + (startAdapter ? ", continuing \(info.adapter!)" : "")
            : "every weight (full fine-tuning)" + (startAdapter ? " of the base with \(info.adapter!) merged" : "")
        print("method: DPO, beta \(formatFloat(dpo.beta)), answer log-probabilities \(dpo.averageLogprobs ? "averaged over tokens" : "summed"); \(how)\(o.checkpointActivations == true ? "; activations recomputed in the backward pass" : "")")
        print(describeTrainable(tuner.trainee))
        let refWhat = o.method == .lora && !startAdapter ? "the base with the adapters switched off" : startAdapter ? "the base with \(info.adapter!)" : "the starting weights"
        print("reference: \(refWhat), \(train.count + held.count) pairs \(cached ? "read from \(runDir)/\(Self.referenceFile)" : "scored in \(String(format: "%.1f", Date().timeIntervalSince(refStarted))) s, cached in \(runDir)/\(Self.referenceFile)")")
        if !held.isEmpty {
            let before = DPO.report(policy: reference.held, reference: reference.held, options: dpo, referenceIsPolicy: true)
            print("held-out before training: the model prefers the chosen answer in \(percent(before.logprobAccuracy)) of \(held.count) pairs (log-prob accuracy); rewards are 0 by definition")
        }
        if Distributed.isParallel { print(describeDataParallel(tuner, unit: "pairs")) }
        print("schedule: \(tuner.totalSteps) steps of \(o.batch) × \(o.gradAccum) pairs, lr \(formatFloat(o.learningRate)) → \(formatFloat(o.minLearningRate)), warmup \(o.warmup); run folder \(runDir)")

        let last = try runTuning(tuner, info: info, runDir: runDir, tokenizer: tokenizer, stopAfter: tuning.stopAfter) { v in
            String(format: "%.3f", v.loss) + " (acc \(v.metrics["val_rewards/accuracies"].map(percent) ?? "-"), margin \(String(format: "%.3f", v.metrics["val_rewards/margins"] ?? 0)))"
        }
        if let v = last {
            let m = v.metrics
            print("held-out at step \(tuner.step): reward accuracy \(m["val_rewards/accuracies"].map(percent) ?? "-"), margin \(String(format: "%.3f", m["val_rewards/margins"] ?? 0)) (chosen \(String(format: "%+.3f", m["val_rewards/chosen"] ?? 0)), rejected \(String(format: "%+.3f", m["val_rewards/rejected"] ?? 0))), loss \(String(format: "%.4f", v.loss))")
        }
        print("try it: llm generate --model \(runDir) --chat --prompt \"...\"; llm evaluate --model \(runDir)\(heldRecords.isEmpty ? " --data PAIRS" : "")")
    }

    /// The options from the command line, each checked (DPO's defaults: 4 pairs per batch, no
    /// LoRA dropout, as TRL disables dropout, so policy and reference agree at the start).
    func options() throws -> FineTuneOptions {
        var o = FineTuneOptions()
        o.task = .dpo
        o.batch = 4
        o.lora.dropout = 0
        if let method = tuning.method {
            guard let m = FineTuneMethod(rawValue: method), m != .head else { throw CLIError("--method must be lora or full, got \(method)") }
            o.method = m
        }
        try tuning.apply(to: &o, defaultLR: o.method == .lora ? 5e-4 : 1e-6)
        o.dpo = DPOOptions(beta: beta ?? 0.1, averageLogprobs: averageLogprobs)
        if adapter != nil, o.method == .lora, tuning.loraRank != nil || tuning.loraAlpha != nil || tuning.loraTargets != nil {
            throw CLIError("--lora-rank/--lora-alpha/--lora-targets cannot be given with --adapter: the adapter keeps its own")
        }
        return o
    }

    /// A new run's base and starting adapter: --model may itself be a LoRA run (its base and it).
    func resolveBase(_ info: inout FineTuneRunInfo) throws {
        if let adapter {
            guard FileManager.default.fileExists(atPath: adapter + "/" + PEFTAdapter.configFile) else {
                throw CLIError("--adapter \(adapter): no \(PEFTAdapter.configFile) (expected a LoRA fine-tuning run or a PEFT adapter folder)")
            }
            info.adapter = absolute(adapter)
        }
        guard FineTuneRun.isRun(info.base) else { return }
        let base = try FineTuneRun.readInfo(info.base)
        guard base.options.task != .classify else { throw CLIError("--model \(info.base) is a classification run") }
        guard base.options.method == .lora else { return }        // a fully fine-tuned run loads as a model
        guard adapter == nil else { throw CLIError("--model \(info.base) is a LoRA run already: give its base as --model and it as --adapter") }
        info.adapter = info.base
        info.base = base.base
    }

    /// reference.safetensors: "train" and "validation", (pairs, 4) rows of chosen and rejected
    /// summed log-probabilities and their token counts.
    func writeReference(_ r: (train: [PairLogProbs], held: [PairLogProbs]), to run: String) throws {
        func table(_ rows: [PairLogProbs]) -> Tensor {
            Tensor(shape: [rows.count, 4], rows.flatMap { [$0.chosen, $0.rejected, Float($0.chosenTokens), Float($0.rejectedTokens)] })
        }
        var tensors = ["train": table(r.train)]
        if !r.held.isEmpty { tensors["validation"] = table(r.held) }
        try Safetensors.write(tensors, to: run + "/" + Self.referenceFile)
    }

    /// The cached reference when it matches these pairs (count and token counts), else nil.
    func readReference(_ run: String, train: [EncodedPair], held: [EncodedPair]) throws -> (train: [PairLogProbs], held: [PairLogProbs])? {
        let file = try Safetensors.read(run + "/" + Self.referenceFile)
        func rows(_ name: String, _ pairs: [EncodedPair]) throws -> [PairLogProbs]? {
            if pairs.isEmpty { return [] }
            let t = try file.tensor(name)
            guard t.shape == [pairs.count, 4] else { return nil }
            let v = t.scalars
            let out = (0..<pairs.count).map { PairLogProbs(chosen: v[4 * $0], rejected: v[4 * $0 + 1], chosenTokens: Int(v[4 * $0 + 2]), rejectedTokens: Int(v[4 * $0 + 3])) }
            for (p, r) in zip(pairs, out) where p.chosen.trainedTargets != r.chosenTokens || p.rejected.trainedTargets != r.rejectedTokens { return nil }
            return out
        }
        guard let t = try rows("train", train), let h = try rows("validation", held) else { return nil }
        return (t, h)
    }
}

/// JSON objects one per line, written under a temporary name and renamed.
func writeJSONL(_ records: [[String: Any]], to path: String) throws {
    var data = Data()
    for r in records {
        data.append(try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys, .withoutEscapingSlashes]))
        data.append(0x0A)
    }
    try atomicWrite(data, to: path)
}

func percent(_ x: Float) -> String { String(format: "%.1f%%", x * 100) }
