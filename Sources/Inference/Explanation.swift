import Foundation
import Models
import Tensors
import Tokenization

/// A look inside one forward pass (`llm explain`): for a prompt, and optionally a greedy
/// continuation, every layer's attention weights, residual stream and contributions, the logit
/// lens, and how surprised the model is by each token. T positions, L layers, H heads, C wide.
public struct Explanation {
    public let model: String
    public let ids: [Int32]
    /// Each token as text (SentencePiece: its piece, ▁ for a space; byte-level BPE: its bytes,
    /// with \xNN for bytes that are not whole UTF-8 characters).
    public let pieces: [String]
    /// How many of the ids are the prompt; the rest is the greedy continuation.
    public let promptLength: Int
    public let recording: ForwardRecording
    public let lens: LogitLens
    /// T − 1 values: −log p(ids[t + 1]) under the model at position t, in nats.
    public let surprise: [Float]
    /// T × 5: the most likely next tokens at each position, with their probabilities.
    public let predictions: [[(id: Int32, probability: Float)]]
    /// L + 1 × T: the L2 norm of the residual stream at each position, entering layer 0 and after
    /// each layer (before the final norm).
    public let residualNorms: [[Float]]
    /// L × T: the norms of what each layer's attention and MLP add to the stream.
    public let attentionNorms: [[Float]], mlpNorms: [[Float]]
    /// Each layer's sliding window (nil: full causal attention).
    public let windows: [Int?]
    /// The text of every id the explanation mentions (the sequence, the lens, the predictions).
    let pieceTexts: [Int32: String]

    /// An id the explanation mentions, as text (see `pieces`).
    public func piece(_ id: Int32) -> String { pieceTexts[id] ?? "#\(id)" }

    public var layers: Int { recording.attentions.count }
    public var heads: Int { recording.attentions.first?.shape[0] ?? 0 }

    /// The bytes the attention maps of `tokens` positions take in memory, for `model`.
    public static func attentionBytes(_ model: DecoderModel, tokens: Int) -> Double {
        Double(model.spec.layers) * Double(model.spec.heads) * Double(tokens) * Double(tokens) * 4
    }

    /// The largest attention maps (all layers and heads together) explain keeps: 2 GiB.
    public static let attentionByteLimit = 2.0 * 1024 * 1024 * 1024

    /// Runs `prompt` (ids, BOS included where the model wants one), first extending it with up to
    /// `continuation` greedy tokens (ending early at a stop token), through one recorded forward
    /// pass, and reads everything off it.
    public static func make(_ loaded: LoadedModel, prompt: [Int32], continuation: Int = 0) throws -> Explanation {
        guard let model = loaded.model as? DecoderModel else { throw InferenceError("this model's forward pass cannot be recorded") }
        guard !prompt.isEmpty else { throw InferenceError("the prompt is empty") }
        try loaded.check(prompt, what: "prompt")
        let context = model.contextLength
        guard prompt.count + continuation <= context else {
            throw InferenceError("the prompt has \(prompt.count) tokens" + (continuation > 0 ? " and up to \(continuation) more to generate" : "")
                                 + ": more than the model's context of \(context)")
        }
        let bytes = attentionBytes(model, tokens: prompt.count + continuation)
        guard bytes <= attentionByteLimit else {
            throw InferenceError(String(format: "%d positions need %.1f GiB of attention maps (%d layers × %d heads × T²); explain keeps at most %.0f GiB: use a shorter prompt",
                                        prompt.count + continuation, bytes / 1073741824, model.spec.layers, model.spec.heads, attentionByteLimit / 1073741824))
        }
        var ids = prompt
        if continuation > 0 {
            var generator = Generator(model: model, sampler: Sampler(temperature: 0), stopIds: loaded.stopIds)
            ids += try generator.generate(prompt: prompt, maxNewTokens: continuation)
        }
        let recording = try model.record(ids)
        let lens = model.logitLens(recording)
        let (surprise, predictions) = readLogits(recording.logits, ids: ids)
        var texts: [Int32: String] = [:]
        for id in ids + lens.top.joined() + predictions.joined().map(\.id) where texts[id] == nil { texts[id] = loaded.piece(id) }
        return Explanation(model: loaded.summary, ids: ids, pieces: ids.map { texts[$0]! }, promptLength: prompt.count,
                           recording: recording, lens: lens, surprise: surprise, predictions: predictions,
                           residualNorms: recording.residuals.map(rowNorms), attentionNorms: recording.attentionOutputs.map(rowNorms),
                           mlpNorms: recording.mlpOutputs.map(rowNorms), windows: (0..<model.spec.layers).map { model.spec.window(ofLayer: $0) },
                           pieceTexts: texts)
    }

    /// Logits (T, V) → the surprise of each next id (T − 1) and the top 5 at each position (T × 5).
    /// log Z of each row comes from the fused log-softmax `targetLogProbabilities` (target: the
    /// next id; the last row, which has none, any id).
    static func readLogits(_ logits: Tensor, ids: [Int32]) -> ([Float], [[(id: Int32, probability: Float)]]) {
        let (t, v) = (logits.shape[0], logits.shape[1])
        let targets = (0..<t).map { i in i + 1 < t ? ids[i + 1] : 0 }
        let logP = logits.targetLogProbabilities(targets).scalars                  // (T)
        var predictions: [[(id: Int32, probability: Float)]] = []
        for i in 0..<t {
            let row = UnsafeBufferPointer(start: logits.data + i * v, count: v)
            let logZ = row[Int(targets[i])] - logP[i]                             // log Σ exp(z)
            var best: [(id: Int32, probability: Float)] = []                 // logits, kept sorted, most likely first
            for (j, z) in row.enumerated() where best.count < 5 || z > best[best.count - 1].probability {
                let at = best.firstIndex { z > $0.probability } ?? best.count
                best.insert((Int32(j), z), at: at)
                if best.count > 5 { best.removeLast() }
            }
            predictions.append(best.map { (id: $0.id, probability: expf($0.probability - logZ)) })
        }
        return (logP.dropLast().map { -$0 }, predictions)
    }

    /// (T, C) → the L2 norm of each row (T).
    static func rowNorms(_ x: Tensor) -> [Float] {
        let (t, c) = (x.shape[0], x.shape[1])
        return (0..<t).map { i in
            let row = x.data + i * c
            var sum = 0.0
            for j in 0..<c { sum += Double(row[j]) * Double(row[j]) }
            return Float(sum.squareRoot())
        }
    }
}

extension LoadedModel {
    /// One token as text for display: its SentencePiece piece, else its bytes (\xNN for bytes
    /// that do not make whole UTF-8 characters, \n and \t as escapes), else `#id`.
    public func piece(_ id: Int32) -> String {
        if let chars { return (try? chars.decode([UInt32(bitPattern: id)])) ?? "#\(id)" }
        guard let tokenizer, id >= 0 else { return "#\(id)" }
        if tokenizer is SentencePieceTokenizer, let p = tokenizer.piece(UInt32(id)) { return p }
        guard let bytes = tokenizer.tokenBytes(UInt32(id)) else { return "#\(id)" }
        return String(readableBytes(bytes).dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")   // unquoted
    }
}
