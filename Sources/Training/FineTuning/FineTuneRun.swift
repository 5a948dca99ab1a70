import Foundation
import Models
import NN
import Tensors
import Tokenization

/// What a fine-tuning run folder says about itself (RUN/finetune.json): the base model it
/// started from, the task, the labels of a classifier, and the options.
public struct FineTuneRunInfo: Codable, Sendable {
    public var base: String
    public var options: FineTuneOptions
    public var labels: [String]?
    /// Training files, validation files (empty: held out of `data`), and how they were read.
    public var data: [String]
    public var validation: [String]
    public var placeholders: [String: String]
    public var columns: [String]?
    /// The tokenizer given with --tokenizer (nil: the model's own).
    public var tokenizer: String?
    /// The LoRA adapter the run started from (DPO after SFT): the run's adapter continues it and
    /// replaces it; base + this adapter is the reference policy.
    public var adapter: String?
    public var formatVersion = 1

    public init(base: String, options: FineTuneOptions, labels: [String]?, data: [String], validation: [String],
                placeholders: [String: String], columns: [String]?) {
        self.base = base; self.options = options; self.labels = labels; self.data = data
        self.validation = validation; self.placeholders = placeholders; self.columns = columns
    }

    enum CodingKeys: String, CodingKey { case base, options, labels, data, validation, placeholders, columns, tokenizer, adapter, formatVersion = "format_version" }
}

/// A fine-tuning run's files:
///   finetune.json                 FineTuneRunInfo
///   adapter_config.json + adapter_model.safetensors   LoRA (PEFT's format; a classifier's head inside)
///   model/                        full fine-tuning: a Hugging Face folder of the whole model
///   score.safetensors             a classifier's head, when not LoRA
///   checkpoint/                   trainable.safetensors (every trained tensor by name),
///                                 optimizer.safetensors (AdamW's m./v.), state.json: for --resume
///   log.jsonl, loss.svg           as pretraining writes them
/// Every file is written under a temporary name and renamed; the checkpoint folder is swapped
/// in whole, as pretraining's is.
public enum FineTuneRun {
    public static let infoFile = "finetune.json", scoreFile = "score.safetensors", modelFolder = "model"

    public struct State: Codable {
        public var step: Int
        public var tokensSeen: Int
        public var batches: [String: [UInt64]]
        public var modelRNG: [UInt64]
        public var adamSteps: Int
        enum CodingKeys: String, CodingKey {
            case step, batches
            case tokensSeen = "tokens_seen", modelRNG = "model_rng", adamSteps = "adam_steps"
        }
    }

    public static func isRun(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path + "/" + infoFile) }

    public static func readInfo(_ run: String) throws -> FineTuneRunInfo {
        let path = run + "/" + infoFile
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError.file(path, "cannot read (not a fine-tuning run?)") }
        do { return try JSONDecoder().decode(FineTuneRunInfo.self, from: data) } catch { throw TrainingError.file(path, describeJSONError(error, in: data)) }
    }

    /// Writes what the run has learned (adapter, model, head) and the checkpoint to resume from.
    /// `moments`: AdamW's whole moments (`FineTuner.wholeMoments`; nil: the optimizer's own).
    public static func save(_ tuner: FineTuner, run: String, info: FineTuneRunInfo, tokenizer: (any TextTokenizer)?,
                            moments: (m: [Tensor], v: [Tensor])? = nil) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: run, withIntermediateDirectories: true)
        let o = tuner.options
        let score = tuner.classifier.map { $0.score.weight }
        switch o.method {
        case .lora:
            try PEFTAdapter.save(tuner.model, config: o.lora, baseModel: info.base, score: score, to: run)
        case .full:
            let tmp = run + "/" + modelFolder + ".tmp"
            try? fm.removeItem(atPath: tmp)
            try saveHuggingFaceFolder(tuner.model, to: tmp)
            // The tokenizer beside the weights, so the folder stands on its own.
            switch tokenizer {
            case let bpe as Tokenizer: try bpe.save(to: tmp)
            case let sentencePiece as SentencePieceTokenizer: try sentencePiece.save(modelFile: tmp + "/tokenizer.model")
            default: break
            }
            try? fm.removeItem(atPath: run + "/" + modelFolder)
            try fm.moveItem(atPath: tmp, toPath: run + "/" + modelFolder)
        case .head:
            break
        }
        if let score, o.method != .lora { try Safetensors.write(["score.weight": score], to: run + "/" + scoreFile) }

        let tmp = run + "/checkpoint.tmp"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let named = trainedTensors(tuner)
        try Safetensors.write(Dictionary(uniqueKeysWithValues: named.map { ($0.name, $0.tensor) }), to: tmp + "/trainable.safetensors")
        let whole = moments ?? (tuner.optimizer.m, tuner.optimizer.v)
        try Checkpoint.writeMoments(whole.m, whole.v, of: tuner.optimizer, in: tuner.trainee, to: tmp + "/optimizer.safetensors")
        let state = State(step: tuner.step, tokensSeen: tuner.tokensSeen, batches: tuner.batches.state,
                          modelRNG: tuner.model.rng.snapshot, adamSteps: tuner.optimizer.stepCount)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(try encoder.encode(state), to: tmp + "/state.json")
        try Checkpoint.swapIn(tmp, as: run + "/checkpoint")
        try atomicWrite(try encoder.encode(info), to: run + "/" + infoFile)
    }

    /// Puts trained tensors, optimizer moments, data order, dropout generator and counters back.
    public static func restore(_ tuner: FineTuner, run: String) throws -> State {
        guard let folder = Checkpoint.latest(run), let data = FileManager.default.contents(atPath: folder + "/state.json") else {
            throw TrainingError.file(run + "/checkpoint/state.json", "cannot read: nothing to resume")
        }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: data) } catch { throw TrainingError.file(folder + "/state.json", describeJSONError(error, in: data)) }
        let trained = try Safetensors.read(folder + "/trainable.safetensors")
        for (name, t) in trainedTensors(tuner) {
            let v = try trained.tensor(name)
            guard v.shape == t.shape else { throw TrainingError.config("\(folder): \(name) is \(Shape.describe(v.shape)) there, \(Shape.describe(t.shape)) here (different options?)") }
            t.assign(v)
        }
        try Checkpoint.readMoments(into: tuner.optimizer, of: tuner.trainee, step: state.adamSteps, from: folder + "/optimizer.safetensors")
        try tuner.batches.restore(state.batches)
        tuner.model.rng.restore(from: RandomGenerator(snapshot: state.modelRNG))
        tuner.restore(step: state.step, tokensSeen: state.tokensSeen)
        return state
    }

    /// Every trainable tensor with its name in the trainee (a tensor under two names once).
    static func trainedTensors(_ tuner: FineTuner) -> [(name: String, tensor: Tensor)] {
        var seen = Set<ObjectIdentifier>()
        return tuner.trainee.namedParameters().filter { $0.tensor.requiresGrad && seen.insert(ObjectIdentifier($0.tensor)).inserted }
    }
}
