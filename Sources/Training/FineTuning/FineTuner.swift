import Cluster
import Foundation
import Models
import NN
import Tensors

/// sft: next-token loss on responses; classify: a label per text; dpo: preference pairs (DPO).
public enum FineTuneTask: String, Codable, Sendable, CaseIterable { case sft, classify, dpo }

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
    /// DPO's β and log-probability averaging (task dpo only).
    public var dpo: DPOOptions?
    /// Only the first N records of each data file (quick trials; nil: all).
    public var maxSamples: Int?

    public init() {}
}

/// What a fine-tuning run minimizes over its training items (examples, or preference pairs).
public protocol FineTuneObjective: AnyObject {
    /// Each training item's length in tokens: batches group items of similar length.
    var trainLengths: [Int] { get }
    /// Whether there are held-out items to evaluate.
    var hasValidation: Bool { get }
    /// The mean loss of the training items at `indices` (recorded for backward), the real tokens
    /// they hold, and what to log beside the loss.
    func loss(_ indices: [Int]) throws -> ObjectiveStep
    /// The loss and metrics over the held-out items, `batch` items at a time.
    func evaluate(batch: Int) throws -> Evaluation
}

public struct ObjectiveStep {
    /// The mean over the batch (of trained tokens, rows or pairs).
    public var loss: Tensor
    public var tokens: Int
    /// What the mean divides by: trained tokens (SFT), rows (classification), pairs (DPO). Data
    /// parallelism weights each rank's mean by its share of the whole batch's weight.
    public var weight: Int
    public var metrics: [String: Float]
    public init(loss: Tensor, tokens: Int, weight: Int, metrics: [String: Float] = [:]) {
        self.loss = loss; self.tokens = tokens; self.weight = weight; self.metrics = metrics
    }
}

public struct Evaluation: Sendable {
    public var loss: Float
    /// Classification: the share of held-out texts labeled right.
    public var accuracy: Float?
    public var metrics: [String: Float]
    public init(loss: Float, accuracy: Float? = nil, metrics: [String: Float] = [:]) { self.loss = loss; self.accuracy = accuracy; self.metrics = metrics }
}

/// SFT (next-token loss on the trained tokens) or classification (cross-entropy of the head at
/// each row's last real token) over encoded examples.
public final class ExampleObjective: FineTuneObjective {
    public let model: DecoderModel
    public let classifier: SequenceClassifier?
    public let train: [EncodedExample]
    public let validation: [EncodedExample]
    public let pad: Int32
    public let task: FineTuneTask

    public init(model: DecoderModel, classifier: SequenceClassifier?, train: [EncodedExample], validation: [EncodedExample], pad: Int32, task: FineTuneTask) {
        self.model = model; self.classifier = classifier; self.train = train; self.validation = validation; self.pad = pad; self.task = task
    }

    public var trainLengths: [Int] { train.map(\.tokens.count) }
    public var hasValidation: Bool { !validation.isEmpty }

    public func loss(_ indices: [Int]) throws -> ObjectiveStep {
        let b = PaddedBatch(indices.map { train[$0] }, pad: pad, task: task)
        let loss = try classifier.map { try $0.loss(b.ids, lengths: b.lengths, length: b.length, labels: b.labels) }
            ?? model.loss(b.ids, targets: b.targets, batch: b.batch, length: b.length)
        let weight = classifier != nil ? b.batch : b.targets.reduce(0) { $0 + ($1 == defaultIgnoreIndex ? 0 : 1) }
        return ObjectiveStep(loss: loss, tokens: b.realTokens, weight: weight)
    }

    public func evaluate(batch: Int) throws -> Evaluation {
        let r = try FineTuner.evaluate(validation, model: model, classifier: classifier, pad: pad, batch: batch, task: task,
                                       acrossRanks: Distributed.isParallel)
        return Evaluation(loss: r.loss, accuracy: r.accuracy)
    }
}

/// The fine-tuning loop over length-grouped batches of an objective's items: gradient
/// accumulation, clipping, AdamW on the trainable parameters only, warmup + cosine schedule,
/// evaluation on the held-out items.
///
/// Under mpirun `options.batch` is the global batch: each rank takes its slice of every batch
/// one process would draw, and weights its mean loss by its share of the batch's trained tokens
/// (rows, pairs), so the averaged gradient is the one-process gradient whatever the lengths.
public final class FineTuner {
    public let options: FineTuneOptions
    public let model: DecoderModel
    public let classifier: SequenceClassifier?
    public let objective: FineTuneObjective
    public let optimizer: AdamW
    public let schedule: WarmupCosineLR
    public var batches: LengthGroupedBatches
    public let totalSteps: Int
    public private(set) var step = 0
    public private(set) var tokensSeen = 0
    /// Under mpirun: the trainable parameters' gradients averaged across ranks.
    public let parallel: DataParallel?

    /// What trains: the classifier (head + its base) or the model.
    public var trainee: Module { classifier ?? model }

    /// SFT or classification over encoded examples (`pad` fills batches out).
    public convenience init(model: DecoderModel, classifier: SequenceClassifier?, train: [EncodedExample], validation: [EncodedExample],
                            pad: Int32, options: FineTuneOptions, shardOptimizer: Bool = false) throws {
        guard (classifier != nil) == (options.task == .classify) else { throw TrainingError.config("a classification run needs a classifier, SFT none") }
        try self.init(model: model, classifier: classifier,
                      objective: ExampleObjective(model: model, classifier: classifier, train: train, validation: validation, pad: pad, task: options.task),
                      options: options, shardOptimizer: shardOptimizer)
    }

    /// With `shardOptimizer` under mpirun, each rank keeps AdamW's moments for its slice of the
    /// trainable parameters only (ZeRO stage 1) and the updated slices are gathered every step.
    public init(model: DecoderModel, classifier: SequenceClassifier?, objective: FineTuneObjective, options: FineTuneOptions,
                shardOptimizer: Bool = false) throws {
        let lengths = objective.trainLengths
        guard !lengths.isEmpty else { throw TrainingError.config("no training examples left (all dropped? see the summary)") }
        self.model = model; self.classifier = classifier; self.objective = objective; self.options = options
        model.checkpointActivations = options.checkpointActivations ?? false
        batches = LengthGroupedBatches(lengths: lengths, batch: options.batch, seed: options.seed)
        totalSteps = options.steps ?? max(1, options.epochs * ((batches.count + options.gradAccum - 1) / options.gradAccum))
        let trainee: Module = classifier ?? model
        guard !trainee.trainableParameters.isEmpty else { throw TrainingError.config("nothing to train: every parameter is frozen") }
        let groups = ParameterGroup.decayMatrices(of: trainee, weightDecay: options.weightDecay)
        let total = groups.flatMap(\.parameters).reduce(0) { $0 + $1.count }
        optimizer = AdamW(groups, learningRate: options.learningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                          owned: shardOptimizer && Distributed.isParallel ? DataParallel.shard(total: total) : nil)
        schedule = WarmupCosineLR(maxLR: options.learningRate, minLR: options.minLearningRate,
                                  warmupSteps: options.warmup, decaySteps: totalSteps)
        if Distributed.isParallel {
            guard options.batch % Distributed.size == 0 else {
                throw TrainingError.config("a global batch of \(options.batch) examples does not split evenly over \(Distributed.size) ranks")
            }
            parallel = DataParallel(parameters: optimizer.groups.flatMap(\.parameters))
            parallel!.broadcastParameters()                                    // every rank starts from rank 0's adapters and head
        } else {
            parallel = nil
        }
    }

    /// This rank's slice of a batch's items (all of them in one process). A rank whose slice is
    /// empty (a last batch smaller than the job) runs the batch's first item with weight 0, so
    /// that it still takes part in the gradient all-reduce with zeros.
    func share(of items: [Int]) -> (items: [Int], counts: Bool) {
        guard Distributed.isParallel else { return (items, true) }
        let (r, n) = (Distributed.rank, Distributed.size)
        let slice = Array(items[(items.count * r / n)..<(items.count * (r + 1) / n)])
        return slice.isEmpty ? ([items[0]], false) : (slice, true)
    }

    /// One optimizer step over `gradAccum` batches.
    public func trainStep() throws -> StepStats {
        let start = Date()
        trainee.train()
        var lossSum: Float = 0, tokens = 0, metrics: [String: Float] = [:]
        let parts = Float(options.gradAccum)
        for k in 0..<options.gradAccum {
            let (items, counts) = share(of: batches.next())
            let part = try objective.loss(items)
            guard part.loss.item.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the loss (\(part.loss.item))") }
            // This rank's share of the micro-batch's mean: its weight over the whole batch's.
            var share: Float = 1
            if let parallel {
                let weights = Distributed.allReduceSum([counts ? Double(part.weight) : 0, counts ? Double(part.tokens) : 0])
                share = counts ? Float(Double(part.weight) / weights[0]) : 0
                tokens += Int(weights[1])
                // Averaging divides by the ranks: scaled up here so the ranks' shares sum to the mean.
                let loss = part.loss * (share * Float(Distributed.size) / parts)
                if k == options.gradAccum - 1 { loss.backward(leafReady: parallel.gradientReady) } else { loss.backward() }
            } else {
                tokens += part.tokens
                (part.loss * (1 / parts)).backward()
            }
            lossSum += part.loss.item * share / parts
            for (key, v) in part.metrics { metrics[key, default: 0] += v * share / parts }
        }
        if let parallel {
            parallel.averageGradients()
            let keys = metrics.keys.sorted()
            let sums = Distributed.allReduceSum([Double(lossSum)] + keys.map { Double(metrics[$0]!) })
            lossSum = Float(sums[0])
            for (i, key) in keys.enumerated() { metrics[key] = Float(sums[i + 1]) }
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
        if optimizer.owned != nil { parallel?.gatherParameters() }     // each rank's updated slice, on every rank
        optimizer.zeroGrad()
        step += 1
        tokensSeen += tokens
        var s = StepStats(step: step, loss: lossSum, learningRate: lr, gradNorm: norm, tokens: tokensSeen,
                          seconds: Date().timeIntervalSince(start))
        s.metrics = metrics
        return s
    }

    /// The objective on the held-out items (nil without any), in evaluation mode.
    public func evaluate() throws -> Evaluation? {
        guard objective.hasValidation else { return nil }
        trainee.eval()
        defer { trainee.train() }
        return try objective.evaluate(batch: max(1, options.batch / Distributed.size))   // a rank's share of the batch
    }

    /// Loss (token-weighted for SFT, per row for classification) and accuracy over examples.
    /// `acrossRanks` (under mpirun): each rank scores every size-th batch and the sums are added.
    public static func evaluate(_ examples: [EncodedExample], model: DecoderModel, classifier: SequenceClassifier?, pad: Int32,
                                batch: Int, task: FineTuneTask, acrossRanks: Bool = false) throws -> (loss: Float, accuracy: Float?) {
        var total = 0.0, weight = 0.0, correct = 0
        let groups = LengthGroupedBatches(lengths: examples.map(\.tokens.count), batch: batch, seed: 0).groups
        for (i, g) in groups.enumerated() where !acrossRanks || i % Distributed.size == Distributed.rank {
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
        if acrossRanks {
            let sums = Distributed.allReduceSum([total, weight, Double(correct)])
            (total, weight, correct) = (sums[0], sums[1], Int(sums[2]))
        }
        let loss = Float(total / max(weight, 1))
        return (loss, task == .classify ? Float(correct) / Float(examples.count) : nil)
    }

    /// Puts the loop back where a checkpoint left it.
    public func restore(step: Int, tokensSeen: Int) { self.step = step; self.tokensSeen = tokensSeen }

    /// AdamW's moments, whole, for a checkpoint: a sharded optimizer's slices gathered on rank 0
    /// (nil on the other ranks). Under mpirun every rank calls it.
    public func wholeMoments() -> (m: [Tensor], v: [Tensor])? {
        guard let parallel else { return (optimizer.m, optimizer.v) }
        return parallel.gatherMoments(optimizer)
    }
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
