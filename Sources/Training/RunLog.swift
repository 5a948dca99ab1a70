import Foundation
import Tokenization

/// A run's log: one JSON line per step in RUN/log.jsonl, and RUN/loss.svg, a plot of train and
/// validation loss against tokens seen, redrawn as training goes.
public final class RunLog {
    public let folder: String
    public private(set) var entries: [StepStats] = []
    private let encoder = JSONEncoder()

    /// Opens RUN/log.jsonl, keeping only entries up to `step` (a resumed run drops what came after
    /// its checkpoint).
    public init(folder: String, keepingThrough step: Int = 0) throws {
        self.folder = folder
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let path = folder + "/log.jsonl"
        if step > 0, let data = FileManager.default.contents(atPath: path) {
            let decoder = JSONDecoder()
            entries = data.split(separator: 0x0A).compactMap { try? decoder.decode(StepStats.self, from: Data($0)) }.filter { $0.step <= step }
        }
        var text = Data()
        for e in entries { text.append(try encoder.encode(e)); text.append(0x0A) }
        try text.write(to: URL(fileURLWithPath: path))
    }

    public func append(_ s: StepStats) throws {
        entries.append(s)
        var line = try encoder.encode(s)
        line.append(0x0A)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/log.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
        try handle.close()
    }

    /// Redraws RUN/loss.svg (temporary file, then rename). `baseline` is drawn as a dashed line.
    public func plot(baseline: Float? = nil) throws {
        let train = entries.map { (Double($0.tokens), Double($0.loss)) }
        let val = entries.compactMap { e in e.valLoss.map { (Double(e.tokens), Double($0)) } }
        guard let maxX = train.map(\.0).max(), maxX > 0 else { return }
        let ys = train.map(\.1) + val.map(\.1) + (baseline.map { [Double($0)] } ?? [])
        let (lo, hi) = (max(0, (ys.min() ?? 0) * 0.95), (ys.max() ?? 1) * 1.02)
        let (w, h, left, bottom, top, right) = (720.0, 420.0, 60.0, 40.0, 30.0, 20.0)
        func px(_ x: Double) -> Double { left + x / maxX * (w - left - right) }
        func py(_ y: Double) -> Double { top + (hi - y) / max(hi - lo, 1e-9) * (h - top - bottom) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(f(left))\" y=\"18\" font-size=\"14\">loss vs tokens seen</text>\n"
        for i in 0...5 {
            let y = lo + (hi - lo) * Double(i) / 5, x = maxX * Double(i) / 5
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(y)))\" x2=\"\(f(w - right))\" y2=\"\(f(py(y)))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(String(format: "%.2f", y))</text>\n"
            svg += "<text x=\"\(f(px(x)))\" y=\"\(f(h - bottom + 16))\" text-anchor=\"middle\">\(Self.short(x))</text>\n"
        }
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(h - bottom))\" x2=\"\(f(w - right))\" y2=\"\(f(h - bottom))\" stroke=\"black\"/>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(h - bottom))\" stroke=\"black\"/>\n"
        if let baseline {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(Double(baseline))))\" x2=\"\(f(w - right))\" y2=\"\(f(py(Double(baseline))))\" stroke=\"gray\" stroke-dasharray=\"5,4\"/>"
            svg += "<text x=\"\(f(w - right - 4))\" y=\"\(f(py(Double(baseline)) - 4))\" text-anchor=\"end\" fill=\"gray\">unigram baseline</text>\n"
        }
        let points = train.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"\(points)\"/>\n"
        if !val.isEmpty {
            svg += "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"\(val.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " "))\"/>\n"
            for v in val { svg += "<circle cx=\"\(f(px(v.0)))\" cy=\"\(f(py(v.1)))\" r=\"3\" fill=\"#d62728\"/>" }
        }
        svg += "\n<text x=\"\(f(w - right - 150))\" y=\"\(f(top + 14))\" fill=\"#1f77b4\">— train</text>"
        svg += "<text x=\"\(f(w - right - 80))\" y=\"\(f(top + 14))\" fill=\"#d62728\">— validation</text>\n</svg>\n"
        try atomicWrite(Data(svg.utf8), to: folder + "/loss.svg")
    }

    static func short(_ x: Double) -> String {
        x >= 1e6 ? String(format: "%.1fM", x / 1e6) : x >= 1e3 ? String(format: "%.0fk", x / 1e3) : String(format: "%.0f", x)
    }
}
