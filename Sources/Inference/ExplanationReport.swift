import Foundation
import Tensors

extension Explanation {
    /// The explanation as one self-contained HTML page (`llm explain --output report.html`): the
    /// page of `explanationPageTemplate` with the numbers it draws inside. Attention weights travel
    /// as 16-bit fixed point (p × 65535, rounded: within 1/131070 of the float), base64; the page
    /// needs no hidden states, only their norms. `--json` has every number in full.
    public func html() -> Data {
        var w = JSONWriter()
        writeTokens(&w, promptKey: "promptTokens")
        w.key("layers"); w.number(layers)
        w.key("heads"); w.number(heads)
        w.key("windows")
        w.array(windows.count) { w, l in
            if let window = windows[l] { w.number(window) } else { w.raw("null") }
        }
        w.key("attention"); w.raw("\""); w.raw(attentionFixedPoint().base64EncodedString()); w.raw("\"")
        w.key("surprise"); w.numbers(surprise)
        w.key("top")
        w.array(predictions.count) { w, t in
            w.array(predictions[t].count) { w, k in
                let p = predictions[t][k]
                w.raw("["); w.string(piece(p.id)); w.raw(","); w.number(p.probability); w.raw(","); w.number(Int(p.id)); w.raw("]")
            }
        }
        w.key("lens")
        w.raw("{")
        w.key("ids", first: true); w.array(layers) { w, l in w.array(ids.count) { $0.number(Int(lens.top[l][$1])) } }
        w.key("pieces"); w.array(layers) { w, l in w.array(ids.count) { $0.string(piece(lens.top[l][$1])) } }
        w.key("probabilities"); w.array(layers) { $0.numbers(lens.probability[$1]) }
        w.raw("}")
        writeNorms(&w)
        w.raw("}")
        let page = explanationPageTemplate.replacingOccurrences(of: "/*DATA*/", with: String(decoding: w.bytes, as: UTF8.self))
        return Data(page.utf8)
    }

    /// Every attention weight as a little-endian UInt16, round(p × 65535), in (layer, head,
    /// query, key) order.
    func attentionFixedPoint() -> Data {
        var out = [UInt8]()
        out.reserveCapacity(layers * heads * ids.count * ids.count * 2)
        for a in recording.attentions {
            for i in 0..<a.count {
                let v = UInt16((min(max(a.data[i], 0), 1) * 65535).rounded())
                out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8))
            }
        }
        return Data(out)
    }
}
