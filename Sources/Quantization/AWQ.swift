import Foundation
import Models
import NN
import Tensors

/// AWQ, activation-aware weight quantization (Lin et al., 2023): before rounding, each input
/// channel of a projection is scaled by s (its weight column times s, its input divided by s),
/// which leaves the product unchanged but makes the columns that meet large activations larger,
/// so rounding costs them relatively less. The division of the input is folded into whatever
/// made that input, so the model computes the same function and keeps its architecture:
///
///   attention norm  → q, k, v        the norm's weight (and LayerNorm's bias) ÷ s, q/k/v columns × s
///   v               → o              v's rows (and bias) ÷ s, o's columns × s (with grouped heads,
///                                    the query heads reading one value head share its scales)
///   MLP norm        → gate, up (or GPT's c_fc)
///   up              → down           gated MLPs only: down's input is act(gate) ⊙ up, linear in up;
///                                    GPT's down reads gelu(c_fc), which no scale passes through
///
/// The scales: s = mean|x|^α / mean|ŵ|^(1−α) per input channel, where mean|x| is the channel's
/// activation size on the calibration data and mean|ŵ| its weights' size, each weight taken
/// relative to the largest in its row's block of 32 (AutoAWQ's "duo" scaling); normalized so that
/// √(max·min) = 1. α is searched over 0, 1/n, …, (n−1)/n for the least output error of the group's
/// projections on the calibration inputs, ‖(W − Ŵ)X‖² = Σ rows δ·(XᵀX)·δᵀ with
/// Ŵ = round(W·diag(s))·diag(s)⁻¹, round being ggml's round-to-nearest for the projection's type;
/// no rescaling (s = 1, round to nearest) is a candidate too, so a group is never worse than
/// round-to-nearest on the calibration data. Layer by layer (see LayerByLayer): a layer's scales are searched on inputs that came through
/// the layers already rescaled and rounded.
///
/// Measured (2026-12-02, perplexity on held-out text, Float32 arithmetic): SmolLM2-135M at Q4_0
/// with a Q8_0 head, 4,096 calibration tokens — round to nearest 13.94, scales from activations
/// alone (s = mean|x|^α) 12.95, with the weights' size too 12.90, and with every calibration row
/// counted once in XᵀX 12.66 (the attention-sink weighting that GPTQ needs hurts here: AWQ moves
/// no error between channels, it only weighs the search); our GPT at Q4_K: round to nearest 57.58,
/// activations alone 57.62 (worse), with the weights' size and rows counted once 57.24.
public enum ModelAWQ {
    /// The scales chosen for one layer's four groups (nil where a group was not rescaled).
    public struct LayerScales: Sendable {
        public var attention: [Float]?        // (C): attention norm → q, k, v
        public var output: [Float]?           // (Hkv·D): v → o
        public var mlp: [Float]?              // (C): MLP norm → gate, up
        public var down: [Float]?             // (F): up → down
        public init(attention: [Float]? = nil, output: [Float]? = nil, mlp: [Float]? = nil, down: [Float]? = nil) {
            self.attention = attention; self.output = output; self.mlp = mlp; self.down = down
        }

        subscript(kind: GroupKind) -> [Float]? {
            get {
                switch kind {
                case .attention: return attention
                case .output: return output
                case .mlp: return mlp
                case .down: return down
                }
            }
            set {
                switch kind {
                case .attention: attention = newValue
                case .output: output = newValue
                case .mlp: mlp = newValue
                case .down: down = newValue
                }
            }
        }
    }

    /// The four places a layer's scales go (see the table above).
    public enum GroupKind: String, Sendable {
        case attention, output, mlp, down
    }

    /// One group's search: the α chosen (nil: no rescaling beat round-to-nearest) and the
    /// calibration error with it and with round-to-nearest.
    public struct GroupReport: Sendable {
        public let group: String
        public let alpha: Float?
        public let error: Double, roundToNearestError: Double
    }

    public struct LayerReport: Sendable {
        public let layer: Int, layers: Int
        public let groups: [GroupReport]
        public let seconds: Double
    }

    /// Rescales and rounds every projection that `typeOf(layer, role)` gives a block type (nil:
    /// leave it in float; it is still rescaled when its group is). The projections become
    /// `QuantizedLinear`s of round-to-nearest blocks of the rescaled weights, the norms and the
    /// projections that stay float take the folded scales. Returns the scales per layer.
    /// `weightAware`: s from activations and weights (the default) or from activations alone;
    /// `firstTokenWeight`: how many times each sequence's first row counts in XᵀX (see above).
    @discardableResult
    public static func quantize(_ model: DecoderModel, calibration: [[Int32]], typeOf: (Int, DecoderWeight) -> GGMLType?,
                                grid: Int = 20, weightAware: Bool = true, firstTokenWeight: Float = 1, sequencesPerPass: Int = 8,
                                progress: (LayerReport) -> Void = { _ in }) throws -> [LayerScales] {
        guard grid >= 1 else { throw ModelError.input("AWQ: the α grid needs at least one point, got \(grid)") }
        var all: [LayerScales] = []
        var reports: [GroupReport] = []
        try LayerByLayer.run(model, calibration: calibration, firstTokenWeight: firstTokenWeight, sequencesPerPass: sequencesPerPass,
                             roles: { _, layer in DecoderWeight.allCases.filter { layer.projection($0) != nil } },
                             change: { i, layer, statistics in
            var weights = try FloatProjections(layer, layer: i)
            var scales = LayerScales()
            reports = []
            for group in groups(of: layer, model: model) {
                let members = group.members.filter { typeOf(i, $0) != nil }
                guard !members.isEmpty, let stats = statistics[group.members[0]] else { continue }
                let (s, report) = search(group, members: members.map { (weights[$0].weight, typeOf(i, $0)!) }, statistics: stats,
                                         grid: grid, weightAware: weightAware)
                reports.append(report)
                scales[group.kind] = s
            }
            try fold(scales, into: layer, weights: &weights, model: model)
            for role in DecoderWeight.allCases where layer.projection(role) != nil {
                let w = weights[role]
                if let type = typeOf(i, role) {
                    layer.setProjection(role, QuantizedLinear(QuantizedMatrix.quantize(w.weight, as: type), bias: w.bias, roundActivations: false))
                } else if weights.changed.contains(role) {
                    layer.setProjection(role, Linear(weight: w.weight, bias: w.bias))
                }
            }
            all.append(scales)
        }, done: { i, seconds in progress(LayerReport(layer: i, layers: model.layers.count, groups: reports, seconds: seconds)) })
        return all
    }

    /// Folds `scales` into the layer (norms ÷ s, the projections after them × s, as above) and
    /// leaves its projections as float `Linear`s: the layer computes what it did, up to float
    /// rounding.
    public static func fold(_ scales: LayerScales, into layer: DecoderLayer, model: DecoderModel) throws {
        var weights = try FloatProjections(layer, layer: model.layers.firstIndex { $0 === layer } ?? 0)
        try fold(scales, into: layer, weights: &weights, model: model)
        for role in weights.changed { layer.setProjection(role, Linear(weight: weights[role].weight, bias: weights[role].bias)) }
    }

    // MARK: - Groups

    /// A set of projections sharing one input, the scales' width, and which input column of the
    /// members each scale serves (the identity but for o under grouped-query attention).
    struct Group {
        let kind: GroupKind
        let members: [DecoderWeight]
        let width: Int
        let scaleOfColumn: [Int]
    }

    /// The groups a layer can be rescaled in: those whose input comes from a norm or a projection
    /// that can take the division (see the table above).
    static func groups(of layer: DecoderLayer, model: DecoderModel) -> [Group] {
        let spec = model.spec
        let c = spec.embedding
        var out: [Group] = []
        let preNorms = layer.placement == .pre
        if preNorms { out.append(Group(kind: .attention, members: [.q, .k, .v], width: c, scaleOfColumn: Array(0..<c))) }
        // o's column h·D + d reads value channel (h / (H / Hkv))·D + d.
        let (h, hkv, d) = (spec.heads, spec.kvHeads, spec.headSize)
        out.append(Group(kind: .output, members: [.o], width: hkv * d,
                         scaleOfColumn: (0..<(h * d)).map { j in (j / d / (h / hkv)) * d + j % d }))
        if preNorms { out.append(Group(kind: .mlp, members: layer.mlp.gate == nil ? [.up] : [.gate, .up], width: c, scaleOfColumn: Array(0..<c))) }
        if layer.mlp.gate != nil {
            out.append(Group(kind: .down, members: [.down], width: spec.hidden, scaleOfColumn: Array(0..<spec.hidden)))
        }
        return out
    }

    // MARK: - Search

    /// The α with the least output error over the group's rounded members, and its scales (width);
    /// no rescaling at all (round to nearest, s = 1) is a candidate too, so a group never does
    /// worse than round-to-nearest on the calibration data.
    static func search(_ group: Group, members: [(weight: Tensor, type: GGMLType)], statistics: InputStatistics,
                       grid: Int, weightAware: Bool) -> ([Float], GroupReport) {
        let cols = group.scaleOfColumn.count
        // mean|x| per scale: the average over the columns that share it.
        let meanAbs = statistics.meanAbsolute
        var size = [Float](repeating: 0, count: group.width), shared = [Float](repeating: 0, count: group.width)
        for j in 0..<cols { size[group.scaleOfColumn[j]] += meanAbs[j]; shared[group.scaleOfColumn[j]] += 1 }
        for i in 0..<group.width { size[i] = max(size[i] / max(shared[i], 1), 1e-4) }
        // XᵀX / samples as Float (cols, cols): the error's quadratic form.
        let n = Double(max(statistics.samples, 1))
        let gram = Tensor(shape: [cols, cols], statistics.gram.map { Float($0 / n) })
        let weightSize = weightAware ? relativeWeightSize(members.map(\.weight), group) : nil
        func error(_ s: [Float]) -> Double {
            let column = group.scaleOfColumn.map { s[$0] }
            return members.reduce(0.0) { $0 + outputError($1.weight, columnScales: column, type: $1.type, gram: gram) }
        }
        let ones = [Float](repeating: 1, count: group.width)
        let rtn = error(ones)
        var best: (alpha: Float?, error: Double, scales: [Float]) = (nil, rtn, ones)
        for step in 0..<grid {
            let alpha = Float(step) / Float(grid)
            var s: [Float]
            if let weightSize {
                s = zip(size, weightSize).map { max(Foundation.pow($0, alpha) / (Foundation.pow($1, 1 - alpha) + 1e-4), 1e-4) }
            } else {
                s = size.map { Foundation.pow($0, alpha) }
            }
            let norm = (s.max()! * s.min()!).squareRoot()
            s = s.map { $0 / norm }
            let e = error(s)
            if e < best.error { best = (alpha, e, s) }
        }
        return (best.scales, GroupReport(group: group.kind.rawValue, alpha: best.alpha, error: best.error, roundToNearestError: rtn))
    }

    /// mean|ŵ| per scale: |w| relative to the largest |w| in its row's block of 32, averaged over
    /// the members' rows (and over the columns that share a scale).
    static func relativeWeightSize(_ ws: [Tensor], _ group: Group) -> [Float] {
        var sum = [Float](repeating: 0, count: group.width), count = [Float](repeating: 0, count: group.width)
        for w in ws {
            let (rows, cols) = (w.shape[0], w.shape[1])
            for r in 0..<rows {
                for b in stride(from: 0, to: cols, by: 32) {
                    var m: Float = 1e-6
                    for j in b..<min(b + 32, cols) { m = max(m, abs(w.data[r * cols + j])) }
                    for j in b..<min(b + 32, cols) { sum[group.scaleOfColumn[j]] += abs(w.data[r * cols + j]) / m; count[group.scaleOfColumn[j]] += 1 }
                }
            }
        }
        return zip(sum, count).map { $0 / max($1, 1) }
    }

    /// Σ rows δ·G·δᵀ for δ = W − round(W·diag(c))·diag(c)⁻¹: the squared output error per input row.
    static func outputError(_ w: Tensor, columnScales c: [Float], type: GGMLType, gram: Tensor) -> Double {
        let (rows, cols) = (w.shape[0], w.shape[1])
        let scaled = Tensor(zeros: [rows, cols])
        let (src, dst) = (w.data, scaled.data)
        for r in 0..<rows { for j in 0..<cols { dst[r * cols + j] = src[r * cols + j] * c[j] } }
        let rounded = QuantizedMatrix.quantize(scaled, as: type).dequantized()
        let delta = rounded   // reused: δ (rows, cols)
        let q = delta.data
        for r in 0..<rows { for j in 0..<cols { q[r * cols + j] = src[r * cols + j] - q[r * cols + j] / c[j] } }
        let product = Tensor(zeros: [rows, cols])
        // (rows, cols) = δ (rows, cols) · G (cols, cols)
        BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: cols, k: cols, q, lda: cols, gram.data, ldb: cols,
                   beta: 0, product.data, ldc: cols)
        let p = product.data
        var total = 0.0
        for r in 0..<rows {
            var sum: Float = 0
            for j in 0..<cols { sum += p[r * cols + j] * q[r * cols + j] }
            total += Double(sum)
        }
        return total
    }

    // MARK: - Folding

    /// A layer's projections as float weights, copied so that folding changes only the copies.
    struct FloatProjections {
        private var values: [DecoderWeight: (weight: Tensor, bias: Tensor?)] = [:]
        private(set) var changed: Set<DecoderWeight> = []

        init(_ layer: DecoderLayer, layer index: Int) throws {
            for role in DecoderWeight.allCases {
                guard let p = layer.projection(role) else { continue }
                let (w, b) = try floatWeight(p, name: "AWQ: layer \(index)'s \(role.rawValue)")
                values[role] = (Tensor(shape: w.shape, w.scalars), b.map { Tensor(shape: $0.shape, $0.scalars) })
            }
        }

        subscript(role: DecoderWeight) -> (weight: Tensor, bias: Tensor?) { values[role]! }

        /// Input column j × c[j].
        mutating func scaleColumns(_ role: DecoderWeight, _ c: [Float]) {
            let w = values[role]!.weight, (rows, cols) = (w.shape[0], w.shape[1])
            for r in 0..<rows { for j in 0..<cols { w.data[r * cols + j] *= c[j] } }
            changed.insert(role)
        }

        /// Output row i (and bias i) ÷ s[i].
        mutating func divideRows(_ role: DecoderWeight, _ s: [Float]) {
            let (w, b) = values[role]!, cols = w.shape[1]
            for i in 0..<w.shape[0] {
                for j in 0..<cols { w.data[i * cols + j] /= s[i] }
                if let b { b.data[i] /= s[i] }
            }
            changed.insert(role)
        }
    }

    static func fold(_ scales: LayerScales, into layer: DecoderLayer, weights: inout FloatProjections, model: DecoderModel) throws {
        let groups = groups(of: layer, model: model)
        // Everything checked before anything changes.
        for kind in [GroupKind.attention, .output, .mlp, .down] where scales[kind] != nil {
            guard let group = groups.first(where: { $0.kind == kind }) else {
                throw ModelError.input("AWQ: this layer has no place for \(kind.rawValue) scales (\(kind == .down ? "its MLP has no gate" : "its norms come after"))")
            }
            let s = scales[kind]!
            guard s.count == group.width, s.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ModelError.input("AWQ: the \(kind.rawValue) scales must be \(group.width) positive finite values, got \(s.count)")
            }
        }
        for norm in [layer.attentionNorm, layer.mlpNorm] where !(norm is RMSNorm || norm is LayerNorm) {
            throw ModelError.weights("AWQ: cannot fold scales into a \(type(of: norm))")
        }
        for group in groups {
            guard let s = scales[group.kind] else { continue }
            switch group.kind {
            case .attention: divideNorm(layer.attentionNorm, s)
            case .output: weights.divideRows(.v, s)
            case .mlp: divideNorm(layer.mlpNorm, s)
            case .down: weights.divideRows(.up, s)
            }
            let column = group.scaleOfColumn.map { s[$0] }
            for role in group.members where layer.projection(role) != nil { weights.scaleColumns(role, column) }
        }
    }

    /// A norm's output ÷ s: its weight (and LayerNorm's bias) divided, in new tensors (RMSNorm or
    /// LayerNorm, checked by the caller).
    static func divideNorm(_ norm: any NormLayer, _ s: [Float]) {
        func divided(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, zip(t.scalars, s).map { $0 / $1 }) }
        if let n = norm as? RMSNorm {
            n.weight = divided(n.weight)
        } else if let n = norm as? LayerNorm {
            n.weight = divided(n.weight)
            n.bias = n.bias.map(divided)
        }
    }
}

extension ModelAWQ {
    /// The search for one projection on its own: W (rows, cols) and the inputs it receives
    /// x (n, cols). Returns the scales chosen (cols), the α and the output errors with them and
    /// with round-to-nearest, ‖(W − Ŵ)xᵀ‖² / n.
    public static func searchScales(weight: Tensor, inputs x: Tensor, as type: GGMLType, grid: Int = 20,
                                    weightAware: Bool = true) -> (scales: [Float], report: GroupReport) {
        let cols = weight.shape[1]
        precondition(x.shape.last == cols, "AWQ: inputs of width \(x.shape.last ?? 0) for a weight of \(cols) columns")
        let stats = InputStatistics(width: cols, sequenceLength: x.count / cols, firstTokenWeight: 1)
        stats.add(x)
        // One projection: reported under the attention group's name.
        return search(Group(kind: .attention, members: [], width: cols, scaleOfColumn: Array(0..<cols)),
                      members: [(weight, type)], statistics: stats, grid: max(grid, 1), weightAware: weightAware)
    }
}
