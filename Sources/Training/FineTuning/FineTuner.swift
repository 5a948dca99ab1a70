import Foundation
import Models
import NN
import Tensors

public enum FineTuneTask: String, Codable, Sendable, CaseIterable { case sft, classify }

/// Which weights train: LoRA adapters (the base frozen, in its blocks when quantized), every
/// weight (or only the last `trainLayers` blocks + final norm + head), or, for classification,
/// the new head alone.
public enum FineTuneMethod: String, Codable, Sendable, CaseIterable { case lora, full, head }

/// Everything a fine-tuning run is configured with (saved in its checkpoint and finetune.json).
public struct FineTuneOptions: Codable, Sendable {
    public var task: FineTuneTask = .sft
    public var method: FineTuneMethod = .lora
    public var lora = LoRAConfig()
    /// With `full`: only the last N blocks, the final norm and the head train (nil: all).
    public var trainLayers: Int?
    public var epochs = 1
    /// Optimizer steps; nil: `epochs` passes over the training examples.
    public var steps: Int?
    public var batch = 8
    public var gradAccum = 1
    public var learningRate: Float = 2e-4
    public var minLearningRate: Float = 0
    public var warmup = 0
    public var weightDecay: Float = 0
    public var clip: Float = 1
    public var maxLength = 512
    public var valFraction = 0.1
    public var seed: UInt64 = 0
    public var maskPrompt = true
    /// Evaluate (and checkpoint) every N steps; 0: only at the end.
    public var evalEvery = 50
    public var promptFormat: PromptFormat = .book
    /// Recompute each layer's activations in the backward pass instead of keeping them (nil: no).
    public var checkpointActivations: Bool?

    public init() {}
}

/// The fine-tuning loop over length-grouped, right-padded batches: gradient accumulation,
/// clipping, AdamW on the trainable parameters only, warmup + cosine schedule, evaluation on the
/// held-out examples. SFT: next-token loss on the trained tokens; classification: cross-entropy
/// of the head at each row's last real token.
public final class FineTuner {
    public let options: FineTuneOptions
    public let model: DecoderModel
    public let classifier: SequenceClassifier?
    public let optimizer: AdamW
    public let schedule: WarmupCosineLR
    public var batches: LengthGroupedBatches
    public let train: [EncodedExample]
    public let validation: [EncodedExample]
    public let pad: Int32
    public let totalSteps: Int
    public private(set) var step = 0
    public private(set) var tokensSeen = 0

    /// What trains: the classifier (head + its base) or the model.
    public var trainee: Module { classifier ?? model }

    public init(model: DecoderModel, classifier: SequenceClassifier?, train: [EncodedExample], validation: [EncodedExample],
                pad: Int32, options: FineTuneOptions) throws {
        guard !train.isEmpty else { throw TrainingError.config("no training examples left (all dropped? see the summary)") }
        guard (classifier != nil) == (options.task == .classify) else { throw TrainingError.config("a classification run needs a classifier, SFT none") }
        self.model = model; self.classifier = classifier; self.options = options
        model.checkpointActivations = options.checkpointActivations ?? false
        self.train = train; self.validation = validation; self.pad = pad
        batches = LengthGroupedBatches(lengths: train.map(\.tokens.count), batch: options.batch, seed: options.seed)
        totalSteps = options.steps ?? max(1, options.epochs * ((batches.count + options.gradAccum - 1) / options.gradAccum))
        let trainee: Module = classifier ?? model
        guard !trainee.trainableParameters.isEmpty else { throw TrainingError.config("nothing to train: every parameter is frozen") }
        optimizer = AdamW(ParameterGroup.decayMatrices(of: trainee, weightDecay: options.weightDecay),
                          learningRate: options.learningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8)
        schedule = WarmupCosineLR(maxLR: options.learningRate, minLR: options.minLearningRate,
                                  warmupSteps: options.warmup, decaySteps: totalSteps)
    }

    /// The loss of one padded batch (mean over trained tokens, or over rows).
    func loss(_ b: PaddedBatch) throws -> Tensor {
        if let classifier { return try classifier.loss(b.ids, lengths: b.lengths, length: b.length, labels: b.labels) }
        return try model.loss(b.ids, targets: b.targets, batch: b.batch, length: b.length)
    }

    /// One optimizer step over `gradAccum` batches.
    public func trainStep() throws -> StepStats {
        let start = Date()
        trainee.train()
        var lossSum: Float = 0, tokens = 0
        for _ in 0..<options.gradAccum {
            let b = PaddedBatch(batches.next().map { train[$0] }, pad: pad, task: options.task)
            let loss = try self.loss(b) * (1 / Float(options.gradAccum))
            guard loss.item.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the loss (\(loss.item))") }
            lossSum += loss.item
            tokens += b.realTokens
            loss.backward()
        }
        let params = optimizer.groups.flatMap(\.parameters)
        for p in params {
            if let g = p.grad, !g.scalars.allSatisfy(\.isFinite) {
                let name = trainee.namedParameters().first { $0.tensor === p }?.name ?? "a parameter"
                throw TrainingError.nonFinite(step: step + 1, what: "the gradient of \(name)")
            }
        }
        let norm = clipGradNorm(params, maxNorm: options.clip)
        let lr = schedule.learningRate(at: step)
        optimizer.learningRate = lr
        optimizer.step()
        optimizer.zeroGrad()
        step += 1
        tokensSeen += tokens
        return StepStats(step: step, loss: lossSum, learningRate: lr, gradNorm: norm, tokens: tokensSeen,
                         seconds: Date().timeIntervalSince(start))
    }

    /// Mean loss over the validation examples (and accuracy, for classification); nil without any.
    public func evaluate() throws -> (loss: Float, accuracy: Float?)? {
        guard !validation.isEmpty else { return nil }
        trainee.eval()
        defer { trainee.train() }
        return try Self.evaluate(validation, model: model, classifier: classifier, pad: pad, batch: options.batch, task: options.task)
    }

    /// Loss (token-weighted for SFT, per row for classification) and accuracy over examples.
    public static func evaluate(_ examples: [EncodedExample], model: DecoderModel, classifier: SequenceClassifier?, pad: Int32,
                                batch: Int, task: FineTuneTask) throws -> (loss: Float, accuracy: Float?) {
        var total = 0.0, weight = 0.0, correct = 0
        let groups = LengthGroupedBatches(lengths: examples.map(\.tokens.count), batch: batch, seed: 0).groups
        for g in groups {
            let b = PaddedBatch(g.map { examples[$0] }, pad: pad, task: task)
            try withNoGrad {
                if let classifier {
                    let logits = try classifier.logits(b.ids, lengths: b.lengths, length: b.length)   // (B, K)
                    total += Double(logits.crossEntropy(targets: b.labels).item) * Double(b.batch)
                    weight += Double(b.batch)
                    let k = classifier.labels.count
                    for r in 0..<b.batch where Int32(argmax(UnsafeBufferPointer(start: logits.data + r * k, count: k))) == b.labels[r] {
                        correct += 1
                    }
                } else {
                    let n = b.targets.filter { $0 != -100 }.count
                    guard n > 0 else { return }
                    total += Double(try model.loss(b.ids, targets: b.targets, batch: b.batch, length: b.length).item) * Double(n)
                    weight += Double(n)
                }
            }
        }
        let loss = Float(total / max(weight, 1))
        return (loss, task == .classify ? Float(correct) / Float(examples.count) : nil)
    }

    /// Puts the loop back where a checkpoint left it.
    public func restore(step: Int, tokensSeen: Int) { self.step = step; self.tokensSeen = tokensSeen }
}

/// Trainable and total parameter counts, quantized weights included in the total.
public func parameterCounts(_ module: Module) -> (trainable: Int, total: Int) {
    var seen = Set<ObjectIdentifier>(), trainable = 0, total = 0
    for (_, t) in module.namedParameters() where seen.insert(ObjectIdentifier(t)).inserted {
        total += t.count
        if t.requiresGrad { trainable += t.count }
    }
    for (_, m) in module.namedModules() {
        if let q = m as? QuantizedLinear, seen.insert(ObjectIdentifier(q.weight)).inserted { total += q.weight.rows * q.weight.cols }
        if let q = m as? QuantizedEmbedding, seen.insert(ObjectIdentifier(q.weight)).inserted { total += q.weight.rows * q.weight.cols }
    }
    return (trainable, total)
}
