import Cluster
import Foundation
import Models
import NN
import Tensors

/// Everything a training run is configured with (saved in checkpoints).
public struct TrainingOptions: Codable, Sendable {
    public var steps: Int
    public var batch: Int
    public var context: Int
    public var gradAccum = 1
    public var learningRate: Float = 6e-4
    public var minLearningRate: Float = 6e-5
    public var warmup = 100
    public var weightDecay: Float = 0.1
    /// Largest global gradient norm (0: no clipping).
    public var clip: Float = 1
    /// Evaluate (and checkpoint) every this many steps; 0: only at the end.
    public var evalEvery = 100
    public var evalBatches = 20
    public var sampleEvery = 0
    public var seed: UInt64 = 1337
    public var valFraction = 0.1
    /// Distance between training windows (nil: the context length, so windows do not overlap).
    public var stride: Int?

    public init(steps: Int, batch: Int, context: Int) { self.steps = steps; self.batch = batch; self.context = context }
}

/// What one optimizer step did.
public struct StepStats: Codable, Sendable {
    public var step: Int
    public var loss: Float
    public var learningRate: Float
    public var gradNorm: Float
    public var tokens: Int
    public var seconds: Double
    public var valLoss: Float?
    /// Classification fine-tuning: accuracy on the validation examples.
    public var valAccuracy: Float?
    /// What else the objective reports, logged as top-level keys: DPO's "rewards/chosen", … for
    /// the step, "val_rewards/chosen", … on the held-out pairs.
    public var metrics: [String: Float] = [:]

    public init(step: Int, loss: Float, learningRate: Float, gradNorm: Float, tokens: Int, seconds: Double) {
        self.step = step; self.loss = loss; self.learningRate = learningRate; self.gradNorm = gradNorm
        self.tokens = tokens; self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case step, loss, tokens, seconds
        case learningRate = "lr", gradNorm = "grad_norm", valLoss = "val_loss", valAccuracy = "val_accuracy"
    }

    struct MetricKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        step = try c.decode(Int.self, forKey: .step)
        loss = try c.decode(Float.self, forKey: .loss)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        gradNorm = try c.decode(Float.self, forKey: .gradNorm)
        tokens = try c.decode(Int.self, forKey: .tokens)
        seconds = try c.decode(Double.self, forKey: .seconds)
        valLoss = try c.decodeIfPresent(Float.self, forKey: .valLoss)
        valAccuracy = try c.decodeIfPresent(Float.self, forKey: .valAccuracy)
        let known = Set(CodingKeys.allCases.map(\.stringValue))
        let all = try decoder.container(keyedBy: MetricKey.self)
        for k in all.allKeys where !known.contains(k.stringValue) {
            if let v = try? all.decode(Float.self, forKey: k) { metrics[k.stringValue] = v }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step); try c.encode(loss, forKey: .loss); try c.encode(learningRate, forKey: .learningRate)
        try c.encode(gradNorm, forKey: .gradNorm); try c.encode(tokens, forKey: .tokens); try c.encode(seconds, forKey: .seconds)
        try c.encodeIfPresent(valLoss, forKey: .valLoss); try c.encodeIfPresent(valAccuracy, forKey: .valAccuracy)
        var m = encoder.container(keyedBy: MetricKey.self)
        for (k, v) in metrics { try m.encode(v, forKey: MetricKey(stringValue: k)) }
    }
}

/// The training loop: micro-batches with gradient accumulation, clipping, AdamW with weight decay
/// on matrices only, warmup + cosine schedule, periodic evaluation on held-out windows.
public final class Trainer {
    public let model: any TrainableModel
    public let options: TrainingOptions
    public let optimizer: AdamW
    public let schedule: WarmupCosineLR
    public var train: SlidingWindowBatches
    public let data: TokenFile
    public let valRange: Range<Int>
    public private(set) var step = 0
    public private(set) var tokensSeen = 0
    /// Under mpirun: gradient averaging, weight broadcast and optimizer sharding across ranks.
    public let parallel: DataParallel?
    /// This rank's rows of every batch of `options.batch` windows (all of them in one process).
    public let rows: Range<Int>

    /// `options.batch` is the global batch: each of the job's ranks takes its share of every batch
    /// (rank r the r-th), so any number of ranks dividing it sees the same data as one process.
    /// With `shardOptimizer`, each rank keeps AdamW's moments for its slice of the parameters only.
    public init(model: any TrainableModel, data: TokenFile, options: TrainingOptions, shardOptimizer: Bool = false) throws {
        self.model = model
        self.options = options
        self.data = data
        guard data.vocabularySize <= model.vocabularySize else {
            throw TrainingError.config("\(data.path) holds a vocabulary of \(data.vocabularySize) but the model has \(model.vocabularySize)")
        }
        guard options.context <= model.contextLength else {
            throw TrainingError.config("context \(options.context) exceeds the model's \(model.contextLength)")
        }
        let split = data.count - Int(Double(data.count) * options.valFraction)
        valRange = split..<data.count
        let ranks = Distributed.size
        guard options.batch % ranks == 0 else {
            throw TrainingError.config("a global batch of \(options.batch) windows does not split evenly over \(ranks) ranks")
        }
        rows = (Distributed.rank * options.batch / ranks)..<((Distributed.rank + 1) * options.batch / ranks)
        train = try SlidingWindowBatches(file: data, range: 0..<split, context: options.context, stride: options.stride,
                                         batch: options.batch, seed: options.seed)
        let groups = ParameterGroup.decayMatrices(of: model, weightDecay: options.weightDecay)
        let parameters = groups.flatMap(\.parameters)
        let total = parameters.reduce(0) { $0 + $1.count }
        optimizer = AdamW(groups, learningRate: options.learningRate, beta1: 0.9, beta2: 0.95, eps: 1e-8,
                          owned: shardOptimizer && Distributed.isParallel ? DataParallel.shard(total: total) : nil)
        let dataParallel = Distributed.isParallel ? DataParallel(parameters: parameters) : nil
        parallel = dataParallel
        schedule = WarmupCosineLR(maxLR: options.learningRate, minLR: options.minLearningRate,
                                  warmupSteps: options.warmup, decaySteps: options.steps)
        dataParallel?.broadcastParameters()                                  // every rank starts from rank 0's weights
    }

    /// One optimizer step over `gradAccum` micro-batches.
    public func trainStep() throws -> StepStats {
        let start = Date()
        model.train()
        let (b, t) = (options.batch, options.context)
        var lossSum: Float = 0
        for k in 0..<options.gradAccum {
            let (x, y) = train.next(rows: rows)                              // this rank's rows of the batch
            let loss = try model.loss(x, targets: y, batch: rows.count, length: t) * (1 / Float(options.gradAccum))
            lossSum += loss.item
            // The last backward of the step averages gradients as they become final.
            if let parallel, k == options.gradAccum - 1 { loss.backward(leafReady: parallel.gradientReady) } else { loss.backward() }
        }
        if let parallel {
            parallel.averageGradients()
            lossSum = Float(Distributed.allReduceSum([Double(lossSum)])[0] / Double(Distributed.size))
        }
        guard lossSum.isFinite else { throw TrainingError.nonFinite(step: step + 1, what: "the loss (\(lossSum))") }
        for (name, p) in model.namedParameters() {
            if let g = p.grad, !g.scalars.allSatisfy(\.isFinite) {
                throw TrainingError.nonFinite(step: step + 1, what: "the gradient of \(name)")
            }
        }
        let norm = options.clip > 0 ? clipGradNorm(model.parameters, maxNorm: options.clip) : gradNorm(model.parameters)
        let lr = schedule.learningRate(at: step)
        optimizer.learningRate = lr
        optimizer.step()
        if optimizer.owned != nil { parallel?.gatherParameters() }
        optimizer.zeroGrad()
        step += 1
        tokensSeen += b * t * options.gradAccum
        return StepStats(step: step, loss: lossSum, learningRate: lr, gradNorm: norm, tokens: tokensSeen,
                         seconds: Date().timeIntervalSince(start))
    }

    /// Mean loss over up to `evalBatches` fixed windows of the validation range (the same windows every time).
    public func evaluate() throws -> Float {
        model.eval()
        defer { model.train() }
        let (b, t) = (options.batch, options.context)
        guard valRange.count >= t + 1 else { return .nan }
        var batches = try SlidingWindowBatches(file: data, range: valRange, context: t, batch: b, seed: 0)
        let n = min(options.evalBatches, max(1, batches.windowCount / b))
        var total: Float = 0
        for _ in 0..<n {
            let (x, y) = batches.next(rows: rows)
            total += try withNoGrad { try model.loss(x, targets: y, batch: rows.count, length: t).item }
        }
        if parallel != nil { total = Float(Distributed.allReduceSum([Double(total)])[0] / Double(Distributed.size)) }
        return total / Float(n)
    }

    /// Puts the loop back where a checkpoint left it.
    public func restore(step: Int, tokensSeen: Int) {
        self.step = step
        self.tokensSeen = tokensSeen
    }

    /// Entropy (nats/token) of the training range's unigram distribution: the loss a model that
    /// ignores context entirely would reach.
    public func unigramLoss() -> Float {
        var counts = [Int](repeating: 0, count: data.vocabularySize)
        let sample = min(train.range.count, 2_000_000)
        for id in data.tokens(train.range.lowerBound..<(train.range.lowerBound + sample)) { counts[Int(id)] += 1 }
        var h = 0.0
        for c in counts where c > 0 { let p = Double(c) / Double(sample); h -= p * Foundation.log(p) }
        return Float(h)
    }
}
