import Foundation

/// Writes JSON text straight into bytes: fast enough for the millions of numbers `llm explain
/// --json` prints (attention maps, hidden states), where building a tree for JSONEncoder would
/// not be. The caller writes the brackets, keys and commas in order.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    mutating func raw(_ s: String) { bytes += s.utf8 }

    /// `"key": ` (a comma before it unless `first`).
    mutating func key(_ k: String, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        string(k)
        raw(": ")
    }

    /// A JSON string; <, > and & as \u escapes too, so the text can sit inside an HTML script tag.
    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for u in s.unicodeScalars {
            switch u {
            case "\"": raw("\\\"")
            case "\\": raw("\\\\")
            case "\n": raw("\\n")
            case "\r": raw("\\r")
            case "\t": raw("\\t")
            case "<", ">", "&": raw(String(format: "\\u%04x", u.value))
            default:
                if u.value < 0x20 || u.value == 0x2028 || u.value == 0x2029 { raw(String(format: "\\u%04x", u.value)) } else { bytes += String(u).utf8 }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A number; null for NaN or ±∞, which JSON cannot spell.
    mutating func number(_ x: Float) { x.isFinite ? raw(x.description) : raw("null") }
    mutating func number(_ x: Int) { raw(String(x)) }

    /// [a, b, …] of `count` elements, each written by `element(i)`.
    mutating func array(_ count: Int, _ element: (inout JSONWriter, Int) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for i in 0..<count {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, i)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func numbers(_ xs: [Float]) { array(xs.count) { $0.number(xs[$1]) } }
    mutating func numbers(_ p: UnsafePointer<Float>, count: Int) { array(count) { $0.number(p[$1]) } }
}
