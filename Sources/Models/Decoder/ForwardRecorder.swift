import Foundation
import Tensors

/// What one recorded forward pass keeps, layer by layer (see `DecoderModel.record`). Ordinary
/// passes carry no recorder, so they keep nothing and pay for nothing.
final class ForwardRecorder {
    /// Attention weights of each layer, (B, H, T, T) with B = 1, row = query.
    var attentions: [Tensor] = []
    /// What each layer adds to the residual stream: its attention's and its MLP's output, (T, C)
    /// each (after the post-norms where the layer has them).
    var contributions: [(attention: Tensor, mlp: Tensor)] = []
}

/// Everything a forward pass over one sequence of T tokens saw, for looking inside the model
/// (`llm explain`). L layers, H heads, C wide, V tokens in the vocabulary.
public struct ForwardRecording {
    public let ids: [Int32]
    /// L × (H, T, T): each layer's attention weights, row = query; each row sums to 1 and is
    /// zero above the diagonal and before the sliding window.
    public let attentions: [Tensor]
    /// L + 1 × (T, C): the residual stream entering layer 0 (embeddings, scaled, plus positions),
    /// then after each layer. The last is before the final norm.
    public let residuals: [Tensor]
    /// L × (T, C): what each layer's attention adds to the stream.
    public let attentionOutputs: [Tensor]
    /// L × (T, C): what each layer's MLP adds.
    public let mlpOutputs: [Tensor]
    /// (T, V): the model's next-token logits at every position.
    public let logits: Tensor
    /// (T, C): the final norm of the last residual, which the output head reads.
    public let finalNormed: Tensor

    /// L + 1 × (T, C) as `transformers` returns them with `output_hidden_states=True`: the
    /// residuals, the final norm applied to the last.
    public var hiddenStates: [Tensor] { Array(residuals.dropLast()) + [finalNormed] }
}

/// The logit lens: each layer's residual stream read as if it were the last, through the final
/// norm and the output head. `top[l][t]` is the most likely next token after layer l at position
/// t and `probability[l][t]` its softmax probability; the last layer's equals the model's own.
public struct LogitLens {
    public let top: [[Int32]]               // L × T
    public let probability: [[Float]]       // L × T
}

extension DecoderModel {
    /// One forward pass over `ids` (one sequence, from position 0, no cache, in eval mode) that
    /// keeps every layer's attention weights, residual stream and contributions. The numbers are
    /// the model's own: the same kernels as any other pass, the attention weights straight from
    /// the fused attention kernel.
    public func record(_ ids: [Int32]) throws(ModelError) -> ForwardRecording {
        guard !ids.isEmpty else { throw .input("no ids to record") }
        guard ids.count <= contextLength else { throw .input("\(ids.count) positions exceed the context of \(contextLength)") }
        try checkIds(ids, what: "ids")
        eval()
        let t = ids.count
        let recorder = ForwardRecorder()
        var pass = ForwardPass.rectangular(batch: 1, length: t)
        pass.recorder = recorder
        return withNoGrad {
            var residuals = [embeddingDropout(embed(ids, pass))]                  // (T, C)
            for (i, layer) in layers.enumerated() { residuals.append(layer(residuals[i], pass, index: i)) }
            let normed = norm(residuals[layers.count])                             // (T, C)
            return ForwardRecording(ids: ids, attentions: recorder.attentions.map { $0.reshaped(spec.heads, t, t) },
                                    residuals: residuals, attentionOutputs: recorder.contributions.map(\.attention),
                                    mlpOutputs: recorder.contributions.map(\.mlp), logits: headOnNormed(normed), finalNormed: normed)
        }
    }

    /// The logit lens of a recording: layer l's stream (after the layer) → final norm → head →
    /// softmax, keeping the top token and its probability at each position. Costs one output-head
    /// pass per layer (L × T × V logits, one layer at a time).
    public func logitLens(_ recording: ForwardRecording) -> LogitLens {
        var top: [[Int32]] = [], probability: [[Float]] = []
        withNoGrad {
            for l in 1..<recording.residuals.count {
                let z = head(recording.residuals[l])                               // (T, V)
                let (ids, p) = topProbabilities(z)
                top.append(ids); probability.append(p)
            }
        }
        return LogitLens(top: top, probability: probability)
    }

    /// Rows of logits (R, V) → each row's most likely id and its softmax probability (the
    /// log-softmax through the fused, threaded `targetLogProbabilities`).
    func topProbabilities(_ z: Tensor) -> (ids: [Int32], probabilities: [Float]) {
        let (r, v) = (z.shape[0], z.shape[1])
        let ids: [Int32] = (0..<r).map { i in
            let row = z.data + i * v
            var best = 0
            for j in 1..<v where row[j] > row[best] { best = j }
            return Int32(best)
        }
        let logP = z.targetLogProbabilities(ids)                               // (R)
        return (ids, logP.scalars.map { expf($0) })
    }
}
