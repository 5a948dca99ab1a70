import Foundation
import Models
import NN
import Tensors
import Tokenization

/// Direct Preference Optimization (Rafailov et al., 2023): raise the likelihood of the chosen
/// answer relative to the rejected one, each measured against a frozen reference model (the
/// policy as training starts), with no reward model. For a pair, with π = log πθ(y|x) and
/// ρ = log π_ref(y|x) summed over the answer's tokens (or averaged: `averageLogprobs`),
///     reward(y) = β · (π(y) − ρ(y))                       the implicit reward
///     loss      = −log σ(reward(chosen) − reward(rejected))
public struct DPOOptions: Codable, Sendable, Equatable {
    /// β: how far the policy may move from the reference (higher: less far).
    public var beta: Float = 0.1
    /// Average each answer's log-probability over its tokens (the book) instead of summing it
    /// (the DPO paper, TRL).
    public var averageLogprobs = false

    public init(beta: Float = 0.1, averageLogprobs: Bool = false) { self.beta = beta; self.averageLogprobs = averageLogprobs }

    enum CodingKeys: String, CodingKey { case beta, averageLogprobs = "average_logprobs" }
}

/// A pair as ids: both sides start with the same prompt; only their answers are trained.
public struct EncodedPair: Sendable {
    public var chosen: EncodedExample
    public var rejected: EncodedExample
    public init(chosen: EncodedExample, rejected: EncodedExample) { self.chosen = chosen; self.rejected = rejected }
    /// The longer side, which sets the pair's padded length.
    public var length: Int { max(chosen.tokens.count, rejected.tokens.count) }
}

/// Summed log-probabilities of a pair's two answers (and how many tokens each sums over).
public struct PairLogProbs: Sendable, Equatable {
    public var chosen: Float
    public var rejected: Float
    public var chosenTokens: Int
    public var rejectedTokens: Int

    public init(chosen: Float, rejected: Float, chosenTokens: Int, rejectedTokens: Int) {
        self.chosen = chosen; self.rejected = rejected; self.chosenTokens = chosenTokens; self.rejectedTokens = rejectedTokens
    }

    /// The two values DPO compares: sums, or averages per token.
    public func values(average: Bool) -> (chosen: Float, rejected: Float) {
        average ? (chosen / Float(max(chosenTokens, 1)), rejected / Float(max(rejectedTokens, 1))) : (chosen, rejected)
    }
}

extension EncodedExample {
    /// Positions whose next token is trained: what an answer's log-probability sums over.
    public var trainedTargets: Int { trained.dropFirst().filter { $0 }.count }
}

extension FineTuneEncoding {
    /// Pairs → ids, each side as an SFT example (prompt masked, `eos` ending the answer). A pair
    /// longer than `maxLength` is cut as TRL does ("keep_end"): the shared prompt first loses its
    /// beginning (BOS kept), but keeps at least half of `maxLength`; then the answers lose their
    /// ends. Counted per pair; a pair left with a side that has nothing trained is dropped.
    public static func pairs(_ pairs: [PreferencePair], tokenizer: any TextTokenizer, bos: Int32?, eos: Int32,
                             maxLength: Int) throws -> ([EncodedPair], EncodingSummary) {
        var out: [EncodedPair] = [], s = EncodingSummary()
        for p in pairs {
            var (sides, _) = try sft([p.chosen, p.rejected], tokenizer: tokenizer, bos: bos, eos: eos, maxLength: .max, maskPrompt: true)
            guard sides.count == 2 else { s.dropped += 1; continue }
            let longest = max(sides[0].tokens.count, sides[1].tokens.count)
            if longest > maxLength {
                s.truncated += 1
                let prompt = sides.map { $0.trained.firstIndex(of: true) ?? $0.tokens.count }.min()!
                let keep = max(min(prompt, maxLength - (longest - prompt)), min(prompt, maxLength / 2))
                let first = bos == nil ? 0 : 1
                let cut = first..<max(first, first + prompt - keep)
                for i in sides.indices {
                    sides[i].tokens.removeSubrange(cut); sides[i].trained.removeSubrange(cut)
                    let extra = max(0, sides[i].tokens.count - maxLength)
                    sides[i].tokens.removeLast(extra); sides[i].trained.removeLast(extra)
                }
            }
            guard sides.allSatisfy({ $0.tokens.count >= 2 && $0.trainedTargets > 0 }) else { s.dropped += 1; continue }
            s.examples += 1
            for e in sides { s.tokens += e.tokens.count; s.trainedTokens += e.trainedTargets; s.longest = max(s.longest, e.tokens.count) }
            out.append(EncodedPair(chosen: sides[0], rejected: sides[1]))
        }
        return (out, s)
    }
}

/// What a model makes of a set of pairs against a reference (TRL's names in `metrics`).
public struct PreferenceReport: Sendable {
    public var n: Int
    public var loss: Float
    /// Mean implicit rewards and margin (chosen − rejected).
    public var rewardsChosen: Float, rewardsRejected: Float, rewardMargin: Float
    /// The share of pairs whose chosen reward is higher; nil when the reference is the policy
    /// itself (every reward is 0).
    public var rewardAccuracy: Float?
    /// The share of pairs where the policy alone gives the chosen answer the higher log-probability.
    public var logprobAccuracy: Float
    public var logpsChosen: Float, logpsRejected: Float

    /// "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
    /// "logps/chosen", "logps/rejected", each behind `prefix`.
    public func metrics(prefix: String = "") -> [String: Float] {
        var m = ["rewards/chosen": rewardsChosen, "rewards/rejected": rewardsRejected, "rewards/margins": rewardMargin,
                 "logps/chosen": logpsChosen, "logps/rejected": logpsRejected]
        if let rewardAccuracy { m["rewards/accuracies"] = rewardAccuracy }
        return Dictionary(uniqueKeysWithValues: m.map { (prefix + $0.key, $0.value) })
    }
}

public enum DPO {
    /// Each row's answer log-probability, recorded for backward: the rows of a padded SFT batch
    /// (targets −100 outside the answer) → (R), summed over the row's answer tokens or averaged.
    public static func sequenceLogProbs(_ model: DecoderModel, _ b: PaddedBatch, average: Bool) throws -> Tensor {
        let tokens = try model.targetLogProbabilities(b.ids, targets: b.targets, batch: b.batch, length: b.length)   // (K)
        // (R, K) weights: row r sums (or averages) the positions that belong to it.
        let k = tokens.shape[0]
        let weights = Tensor(zeros: [b.batch, k])
        var col = 0
        for r in 0..<b.batch {
            let row = b.targets[(r * b.length)..<((r + 1) * b.length)].filter { $0 != defaultIgnoreIndex }.count
            guard row > 0 else { throw TrainingError.config("row \(r) of a preference batch has no answer token") }
            for j in col..<(col + row) { weights.data[r * k + j] = average ? 1 / Float(row) : 1 }
            col += row
        }
        return matmul(weights, tokens.reshaped(k, 1)).reshaped(b.batch)                // (R, K) · (K, 1) → (R)
    }

    /// The rows of a batch of pairs: the chosen sides, then the rejected ones, right-padded to one length.
    public static func batch(_ pairs: [EncodedPair], pad: Int32) -> PaddedBatch {
        PaddedBatch(pairs.map(\.chosen) + pairs.map(\.rejected), pad: pad, task: .sft)
    }

    /// The loss over B pairs: `policy` (2B) holds log πθ of the chosen answers, then the rejected
    /// ones (summed or averaged as `reference` is read); mean over pairs of −log σ(margin).
    /// Backward: d/dπ(chosen) = −β σ(−margin) / B, d/dπ(rejected) = +β σ(−margin) / B.
    public static func loss(policy: Tensor, reference: [PairLogProbs], options: DPOOptions) -> (loss: Tensor, report: PreferenceReport) {
        let n = reference.count
        precondition(policy.shape == [2 * n], "DPO.loss: policy \(Shape.describe(policy.shape)) for \(n) pairs")
        let beta = options.beta
        let pi = policy.scalars
        var report = PreferenceReport(n: n, loss: 0, rewardsChosen: 0, rewardsRejected: 0, rewardMargin: 0, rewardAccuracy: 0,
                                      logprobAccuracy: 0, logpsChosen: 0, logpsRejected: 0)
        var dMargin = [Float](repeating: 0, count: n)           // d loss / d margin_i
        var lossSum = 0.0
        for i in 0..<n {
            let ref = reference[i].values(average: options.averageLogprobs)
            let rc = beta * (pi[i] - ref.chosen), rr = beta * (pi[n + i] - ref.rejected)
            let z = rc - rr
            lossSum += Double(softplus(-z))
            dMargin[i] = -1 / (1 + exp(z)) / Float(n)               // −σ(−z) / B
            report.rewardsChosen += rc / Float(n); report.rewardsRejected += rr / Float(n)
            report.rewardAccuracy! += (rc > rr ? 1 : 0) / Float(n)
            report.logprobAccuracy += (pi[i] > pi[n + i] ? 1 : 0) / Float(n)
            report.logpsChosen += pi[i] / Float(n); report.logpsRejected += pi[n + i] / Float(n)
        }
        report.rewardMargin = report.rewardsChosen - report.rewardsRejected
        report.loss = Float(lossSum / Double(n))
        let out = Autograd.custom(Tensor(scalar: report.loss), op: "dpo_loss", inputs: [policy]) { g in
            let gp = Tensor(zeros: [2 * n])
            for i in 0..<n {
                gp.data[i] = g.item * beta * dMargin[i]
                gp.data[n + i] = -g.item * beta * dMargin[i]
            }
            return [gp]
        }
        return (out, report)
    }

    /// log(1 + e^x), without overflow.
    static func softplus(_ x: Float) -> Float { max(x, 0) + log1p(exp(-abs(x))) }

    /// Summed answer log-probabilities of every pair, without gradients, `batch` pairs at a time.
    /// Set the model to evaluation mode first (no dropout): the reference and held-out scores.
    public static func logProbs(_ model: DecoderModel, pairs: [EncodedPair], pad: Int32, batch: Int) throws -> [PairLogProbs] {
        var out: [PairLogProbs] = []
        out.reserveCapacity(pairs.count)
        for start in stride(from: 0, to: pairs.count, by: batch) {
            let group = Array(pairs[start..<min(start + batch, pairs.count)])
            let values = try withNoGrad { try sequenceLogProbs(model, Self.batch(group, pad: pad), average: false).scalars }
            for (i, p) in group.enumerated() {
                out.append(PairLogProbs(chosen: values[i], rejected: values[group.count + i],
                                        chosenTokens: p.chosen.trainedTargets, rejectedTokens: p.rejected.trainedTargets))
            }
        }
        return out
    }

    /// The report for a policy's log-probabilities against a reference's, pair by pair.
    /// `referenceIsPolicy`: the two are one model, so reward accuracy is undefined (nil).
    public static func report(policy: [PairLogProbs], reference: [PairLogProbs], options: DPOOptions,
                              referenceIsPolicy: Bool = false) -> PreferenceReport {
        let sides = policy.map { $0.values(average: options.averageLogprobs) }
        let values = Tensor(sides.map(\.chosen) + sides.map(\.rejected))                 // (2 · pairs)
        var report = withNoGrad { loss(policy: values, reference: reference, options: options).report }
        if referenceIsPolicy { report.rewardAccuracy = nil }
        return report
    }
}

/// DPO over encoded pairs with their reference log-probabilities (computed once, before
/// training): chosen and rejected sides go through the model in one batch.
public final class DPOObjective: FineTuneObjective {
    public let model: DecoderModel
    public let train: [EncodedPair]
    public let validation: [EncodedPair]
    public let trainReference: [PairLogProbs]
    public let validationReference: [PairLogProbs]
    public let pad: Int32
    public let options: DPOOptions

    public init(model: DecoderModel, train: [EncodedPair], validation: [EncodedPair], trainReference: [PairLogProbs],
                validationReference: [PairLogProbs], pad: Int32, options: DPOOptions) throws {
        guard trainReference.count == train.count, validationReference.count == validation.count else {
            throw TrainingError.config("reference log-probabilities for \(trainReference.count) + \(validationReference.count) pairs, data has \(train.count) + \(validation.count)")
        }
        self.model = model; self.train = train; self.validation = validation; self.trainReference = trainReference
        self.validationReference = validationReference; self.pad = pad; self.options = options
    }

    public var trainLengths: [Int] { train.map(\.length) }
    public var hasValidation: Bool { !validation.isEmpty }

    public func loss(_ indices: [Int]) throws -> ObjectiveStep {
        let pairs = indices.map { train[$0] }
        let b = DPO.batch(pairs, pad: pad)
        let policy = try DPO.sequenceLogProbs(model, b, average: options.averageLogprobs)     // (2B)
        let (loss, report) = DPO.loss(policy: policy, reference: indices.map { trainReference[$0] }, options: options)
        return ObjectiveStep(loss: loss, tokens: b.realTokens, weight: pairs.count, metrics: report.metrics())
    }

    public func evaluate(batch: Int) throws -> Evaluation {
        let r = DPO.report(policy: try DPO.logProbs(model, pairs: validation, pad: pad, batch: batch), reference: validationReference, options: options)
        return Evaluation(loss: r.loss, accuracy: nil, metrics: r.metrics(prefix: "val_"))
    }
}
