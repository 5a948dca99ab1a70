import Foundation
import Tensors
import Tokenization

/// An example as ids: for SFT, which tokens are trained on (a target where `trained` is true);
/// for classification, the label's index.
public struct EncodedExample: Sendable {
    public var tokens: [Int32]
    public var trained: [Bool]
    public var label: Int32?

    public init(tokens: [Int32], trained: [Bool], label: Int32? = nil) { self.tokens = tokens; self.trained = trained; self.label = label }
}

/// What encoding did to the data, for the summary.
public struct EncodingSummary: Sendable {
    public var examples = 0, truncated = 0, dropped = 0, tokens = 0, trainedTokens = 0, longest = 0
    public init() {}
}

public enum FineTuneEncoding {
    /// SFT examples → ids: each segment encoded (special-token text such as <|im_end|> read as
    /// the special token), BOS first when the model wants it, `eos` appended (trained) unless the
    /// response already ends with it. Longer than `maxLength`: cut, counted; an example left with
    /// nothing to train on is dropped, counted. With `maskPrompt` false every token is trained.
    public static func sft(_ examples: [SFTExample], tokenizer: any TextTokenizer, bos: Int32?, eos: Int32, maxLength: Int,
                           maskPrompt: Bool) throws -> ([EncodedExample], EncodingSummary) {
        var out: [EncodedExample] = [], s = EncodingSummary()
        for e in examples {
            var tokens: [Int32] = bos.map { [$0] } ?? [], trained: [Bool] = bos == nil ? [] : [false]
            for seg in e.segments {
                let ids: [Int32]
                do { ids = try tokenizer.encode(seg.text, allowedSpecial: .all).map { Int32($0) } } catch {
                    throw TrainingError.file(e.source, "cannot tokenize: \(error)")
                }
                tokens += ids
                trained += [Bool](repeating: seg.trained || !maskPrompt, count: ids.count)
            }
            if tokens.last != eos { tokens.append(eos); trained.append(true) }
            if tokens.count > maxLength {
                tokens.removeLast(tokens.count - maxLength); trained.removeLast(trained.count - maxLength)
                s.truncated += 1
            }
            // Position 0 is never a target: something after it must be trained.
            guard tokens.count >= 2, trained.dropFirst().contains(true) else { s.dropped += 1; continue }
            s.examples += 1; s.tokens += tokens.count; s.trainedTokens += trained.dropFirst().filter { $0 }.count
            s.longest = max(s.longest, tokens.count)
            out.append(EncodedExample(tokens: tokens, trained: trained))
        }
        return (out, s)
    }

    /// Texts with labels → ids (cut to `maxLength`, counted), labels as indices into `labels`.
    public static func classification(_ examples: [LabeledText], labels: [String], tokenizer: any TextTokenizer, bos: Int32?,
                                      maxLength: Int) throws -> ([EncodedExample], EncodingSummary) {
        let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, Int32($0)) })
        var out: [EncodedExample] = [], s = EncodingSummary()
        for e in examples {
            guard let label = index[e.label] else {
                throw TrainingError.file(e.source, "label \"\(e.label)\" is not one of the run's labels (\(labels.joined(separator: ", ")))")
            }
            var tokens: [Int32] = (bos.map { [$0] } ?? []) + tokenizer.encodeOrdinary(e.text).map { Int32($0) }
            if tokens.isEmpty { throw TrainingError.file(e.source, "the text encodes to no tokens") }
            if tokens.count > maxLength { tokens.removeLast(tokens.count - maxLength); s.truncated += 1 }
            s.examples += 1; s.tokens += tokens.count; s.longest = max(s.longest, tokens.count)
            out.append(EncodedExample(tokens: tokens, trained: [], label: label))
        }
        return (out, s)
    }
}

/// A padded batch: B rows of `length` ids (right-padded), the real length of each row, and for
/// SFT the targets (-100 on prompt and padding positions).
public struct PaddedBatch {
    public var ids: [Int32]
    public var targets: [Int32]
    public var labels: [Int32]
    public var lengths: [Int]
    public var length: Int
    public var batch: Int { lengths.count }
    /// Tokens that are not padding.
    public var realTokens: Int { lengths.reduce(0, +) }

    /// Examples padded with `pad` to the longest: SFT rows are the inputs tokens[..<n−1] with
    /// targets tokens[1...] where trained; classification rows are the whole text.
    public init(_ examples: [EncodedExample], pad: Int32, task: FineTuneTask) {
        let rows = examples.map { task == .sft ? $0.tokens.count - 1 : $0.tokens.count }
        length = rows.max() ?? 1
        lengths = rows
        ids = []; targets = []; labels = []
        ids.reserveCapacity(examples.count * length)
        for (e, n) in zip(examples, rows) {
            ids += e.tokens[..<n] + [Int32](repeating: pad, count: length - n)
            if task == .sft {
                targets += (1...n).map { e.trained[$0] ? e.tokens[$0] : -100 } + [Int32](repeating: -100, count: length - n)
            } else {
                labels.append(e.label ?? 0)
            }
        }
    }
}

/// Batches of examples of similar length, so little compute goes to padding: the examples
/// sorted by length and cut into batches, the batches visited in a fresh seeded order each epoch.
public struct LengthGroupedBatches {
    public let groups: [[Int]]
    public let rng: RandomGenerator
    public private(set) var epoch = 0
    public private(set) var cursor = 0
    private var order: [Int]

    public init(lengths: [Int], batch: Int, seed: UInt64) {
        let sorted = lengths.indices.sorted { (lengths[$0], $0) < (lengths[$1], $1) }
        groups = stride(from: 0, to: sorted.count, by: batch).map { Array(sorted[$0..<min($0 + batch, sorted.count)]) }
        rng = RandomGenerator(seed: seed)
        order = rng.permutation(groups.count)
    }

    public var count: Int { groups.count }

    /// The next batch's example indices (a new epoch starts when the last was given).
    public mutating func next() -> [Int] {
        if cursor == order.count { epoch += 1; cursor = 0; order = rng.permutation(groups.count) }
        cursor += 1
        return groups[order[cursor - 1]]
    }

    public var state: [String: [UInt64]] {
        ["rng": rng.snapshot, "epoch": [UInt64(epoch)], "cursor": [UInt64(cursor)], "order": order.map { UInt64($0) }]
    }

    public mutating func restore(_ s: [String: [UInt64]]) throws {
        guard let r = s["rng"], r.count == 4, let e = s["epoch"]?.first, let c = s["cursor"]?.first, let o = s["order"], o.count == groups.count else {
            throw TrainingError.config("the checkpoint's batch order does not fit this data (different files, --batch or --max-length?)")
        }
        rng.restore(from: RandomGenerator(snapshot: r))
        epoch = Int(e); cursor = Int(c); order = o.map { Int($0) }
    }
}
