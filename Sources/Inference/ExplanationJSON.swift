import Foundation
import Tensors

extension Explanation {
    /// Every number of the explanation as one JSON object (`llm explain --json`), for plotting
    /// elsewhere. T positions, L layers, H heads, C wide:
    ///
    ///   model, ids (T), pieces (T), prompt_tokens,
    ///   attentions       L × H × T × T   row = query
    ///   hidden_states    L + 1 × T × C   embeddings first, final norm applied to the last
    ///                                    (as transformers' output_hidden_states=True)
    ///   logit_lens       L × T           {id, probability}: layer l's top next token
    ///   surprise         T − 1           −log p(ids[t + 1]) at position t, nats
    ///   top_predictions  T × 5           {id, probability}
    ///   norms            residual (L + 1 × T), attention (L × T), mlp (L × T)
    public func json() -> Data {
        var w = JSONWriter()
        writeTokens(&w, promptKey: "prompt_tokens")
        let t = ids.count
        w.key("attentions")
        w.array(layers) { w, l in
            let a = recording.attentions[l]                                  // (H, T, T)
            w.array(heads) { w, h in w.array(t) { w, q in w.numbers(a.data + (h * t + q) * t, count: t) } }
        }
        w.key("hidden_states")
        w.array(layers + 1) { w, l in
            let x = recording.hiddenStates[l], c = x.shape[1]                // (T, C)
            w.array(t) { w, i in w.numbers(x.data + i * c, count: c) }
        }
        w.key("logit_lens")
        w.array(layers) { w, l in
            w.array(t) { w, i in
                w.raw("{\"id\": "); w.number(Int(lens.top[l][i])); w.raw(", \"probability\": "); w.number(lens.probability[l][i]); w.raw("}")
            }
        }
        w.key("surprise"); w.numbers(surprise)
        w.key("top_predictions")
        w.array(t) { w, i in
            w.array(predictions[i].count) { w, k in
                w.raw("{\"id\": "); w.number(Int(predictions[i][k].id)); w.raw(", \"probability\": "); w.number(predictions[i][k].probability); w.raw("}")
            }
        }
        writeNorms(&w)
        w.raw("}\n")
        return Data(w.bytes)
    }

    /// `{"model": …, "ids": […], "pieces": […], "<promptKey>": P` (the object left open).
    func writeTokens(_ w: inout JSONWriter, promptKey: String) {
        w.raw("{")
        w.key("model", first: true); w.string(model)
        w.key("ids"); w.array(ids.count) { $0.number(Int(ids[$1])) }
        w.key("pieces"); w.array(pieces.count) { $0.string(pieces[$1]) }
        w.key(promptKey); w.number(promptLength)
    }

    /// `, "norms": {"residual": …, "attention": …, "mlp": …}`.
    func writeNorms(_ w: inout JSONWriter) {
        w.key("norms")
        w.raw("{")
        w.key("residual", first: true); w.array(residualNorms.count) { $0.numbers(residualNorms[$1]) }
        w.key("attention"); w.array(attentionNorms.count) { $0.numbers(attentionNorms[$1]) }
        w.key("mlp"); w.array(mlpNorms.count) { $0.numbers(mlpNorms[$1]) }
        w.raw("}")
    }
}
