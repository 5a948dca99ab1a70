import Foundation
import Models
import NN
import Tensors

/// What a projection (or several sharing one input) received over the calibration rows: XᵀX
/// summed in Double, the first row of every calibration sequence counted `firstTokenWeight` times
/// (see ModelGPTQ), and Σ|x| per channel with every row counted once (AWQ's activation size).
final class InputStatistics {
    let width: Int
    let sequenceLength: Int
    let firstTokenWeight: Float
    private(set) var gram: [Double]
    private(set) var absoluteSum: [Double]
    private(set) var samples = 0
    private var last: ObjectIdentifier? = nil

    init(width: Int, sequenceLength: Int, firstTokenWeight: Float) {
        self.width = width
        self.sequenceLength = sequenceLength
        self.firstTokenWeight = firstTokenWeight
        gram = [Double](repeating: 0, count: width * width)
        absoluteSum = [Double](repeating: 0, count: width)
    }

    /// mean |x| per input channel (width).
    var meanAbsolute: [Float] { absoluteSum.map { Float($0 / Double(max(samples, 1))) } }

    /// Adds x (B·T rows of width); the same tensor handed in again (q, k and v share theirs)
    /// counts once.
    func add(_ x: Tensor) {
        let id = ObjectIdentifier(x)
        if id == last { return }
        last = id
        let n = x.count / width
        let product = Tensor.zeros([width, width])
        // (width, width) = xᵀ (width, n) · x (n, width)
        BLAS.sgemm(transposeA: true, transposeB: false, m: width, n: width, k: n, x.data, lda: width, x.data, ldb: width,
                   beta: 0, product.data, ldc: width)
        if firstTokenWeight != 1 {
            // + (weight − 1) · Σ x₀x₀ᵀ over the sequences' first rows.
            let firsts = stride(from: 0, to: n, by: sequenceLength).map { $0 }
            let rows = Tensor.zeros([firsts.count, width])
            for (i, r) in firsts.enumerated() { (rows.data + i * width).update(from: x.data + r * width, count: width) }
            BLAS.sgemm(transposeA: true, transposeB: false, m: width, n: width, k: firsts.count, alpha: firstTokenWeight - 1,
                       rows.data, lda: width, rows.data, ldb: width, beta: 1, product.data, ldc: width)
        }
        let p = product.data
        for i in 0..<(width * width) { gram[i] += Double(p[i]) }
        var sums = [Float](repeating: 0, count: width)
        for r in 0..<n {
            let row = x.data + r * width
            for c in 0..<width { sums[c] += abs(row[c]) }
        }
        for c in 0..<width { absoluteSum[c] += Double(sums[c]) }
        samples += n
    }

    /// A new tensor begins: forget which tensor was seen last.
    func reset() { last = nil }
}

/// A projection that records its inputs' statistics, then computes as the projection it wraps.
final class RecordingLinear: Module, LinearLayer {
    let inner: any LinearLayer
    let statistics: InputStatistics
    init(_ inner: any LinearLayer, _ statistics: InputStatistics) { self.inner = inner; self.statistics = statistics }
    var inFeatures: Int { inner.inFeatures }
    var outFeatures: Int { inner.outFeatures }
    func callAsFunction(_ x: Tensor) -> Tensor {
        statistics.add(x)
        return inner(x)
    }
    func inputGradient(_ g: Tensor) -> Tensor { inner.inputGradient(g) }
}

/// Calibration through a model one layer at a time, as GPTQ and AWQ both work: the sequences'
/// stream enters layer 0 as the embeddings; in each layer the inputs of the projections `roles`
/// are recorded (q, k and v share one input and one record, gate and up another), `change`
/// rewrites the layer from those records (rounds or rescales its weights), and the changed
/// layer's output on the stream becomes the next layer's input, so every layer is calibrated on
/// what the layers already changed before it hand on.
enum LayerByLayer {
    static func run(_ model: DecoderModel, calibration: [[Int32]], firstTokenWeight: Float, sequencesPerPass: Int,
                    roles: (Int, DecoderLayer) -> [DecoderWeight],
                    change: (Int, DecoderLayer, [DecoderWeight: InputStatistics]) throws -> Void,
                    done: (Int, Double) -> Void) throws {
        guard let length = calibration.first?.count, length > 0, calibration.allSatisfy({ $0.count == length }) else {
            throw ModelError.input("calibration: the sequences must be non-empty and of one length")
        }
        model.eval()
        // The stream entering the current layer, per pass of `sequencesPerPass` sequences: (B, T, C) each.
        var streams: [Tensor] = []
        withNoGrad {
            for start in stride(from: 0, to: calibration.count, by: sequencesPerPass) {
                let batch = Array(calibration[start..<min(start + sequencesPerPass, calibration.count)])
                streams.append(model.embedded(batch.flatMap { $0 }, batch: batch.count, length: length))
            }
        }
        for (i, layer) in model.layers.enumerated() {
            let started = Date()
            var statistics: [DecoderWeight: InputStatistics] = [:]
            var shared: [String: InputStatistics] = [:]
            var originals: [DecoderWeight: any LinearLayer] = [:]
            for role in roles(i, layer) {
                guard let p = layer.projection(role) else { continue }
                let key = [.q, .k, .v].contains(role) ? "qkv" : [.gate, .up].contains(role) ? "gateup" : role.rawValue
                let stats = shared[key] ?? InputStatistics(width: p.inFeatures, sequenceLength: length, firstTokenWeight: firstTokenWeight)
                shared[key] = stats
                statistics[role] = stats
                originals[role] = p
                layer.setProjection(role, RecordingLinear(p, stats))
            }
            withNoGrad {
                for x in streams {
                    _ = layer(x)
                    for s in shared.values { s.reset() }
                }
            }
            for (role, p) in originals { layer.setProjection(role, p) }
            try change(i, layer, statistics)
            withNoGrad { streams = streams.map { layer($0) } }
            done(i, Date().timeIntervalSince(started))
        }
    }
}

/// GPTQ over a whole model, layer by layer (as the GPTQ paper does; see LayerByLayer): each
/// projection is rounded by GPTQ to the type the plan gives its tensor, against the inputs it
/// receives from the layers already quantized. The projections become `QuantizedLinear`s of
/// those blocks, which the GGUF writer then copies as they are. The token table and the output
/// head are left to round-to-nearest.
///
/// The first token of every sequence is weighted up in the Hessians (64 times by default). That
/// token is the attention sink: it holds huge activations in a few channels that the model needs
/// intact, yet it is one row in 512, so plain GPTQ (every row counted once) moves rounding error
/// into exactly those channels. Measured on SmolLM2-135M (dequantized Q4_1 → Q4_0 weights, Q8_0
/// head, 4096 calibration tokens, perplexity on 8 held-out chunks of 512): round-to-nearest
/// 14.01; GPTQ with every row counted once 15.34 (worse, although each projection's own GPTQ
/// loss fell to 0.03–0.6 of round-to-nearest's); with the first rows left out 17.87 (down RTN);
/// with them counted 64 times 13.24. F32 is 11.11.
public enum ModelGPTQ {
    public struct LayerReport: Sendable {
        public let layer: Int, layers: Int
        public let seconds: Double
    }

    /// `typeOf(layer, role)`: the block type the plan gives that projection (nil: leave it).
    /// `firstTokenWeight`: how many times the first position of every calibration sequence counts
    /// in the Hessians (see above).
    public static func quantize(_ model: DecoderModel, calibration: [[Int32]], typeOf: (Int, DecoderWeight) -> GGMLType?,
                                damping: Double = 0.01, firstTokenWeight: Float = 64, sequencesPerPass: Int = 8,
                                progress: (LayerReport) -> Void = { _ in }) throws {
        try LayerByLayer.run(model, calibration: calibration, firstTokenWeight: firstTokenWeight, sequencesPerPass: sequencesPerPass,
                             roles: { i, _ in DecoderWeight.allCases.filter { typeOf(i, $0) != nil } },
                             change: { i, layer, statistics in
            for (role, stats) in statistics.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                let (weight, bias) = try floatWeight(layer.projection(role)!, name: "GPTQ: layer \(i)'s \(role.rawValue)")
                let q = try GPTQ.quantize(weight, hessian: stats.gram, samples: stats.samples, as: typeOf(i, role)!, damping: damping)
                layer.setProjection(role, QuantizedLinear(q, bias: bias, roundActivations: false))
            }
        }, done: { i, seconds in progress(LayerReport(layer: i, layers: model.layers.count, seconds: seconds)) })
    }
}

/// Calibration sequences from a text: tokenized, cut into `count` windows of `length` tokens
/// (as many as the text has, up to `tokens` in all), each starting with `bos` when there is one.
public func calibrationSequences(_ ids: [Int32], length: Int, tokens: Int, bos: Int32?) -> [[Int32]] {
    let body = length - (bos == nil ? 0 : 1)
    guard body > 0 else { return [] }
    var out: [[Int32]] = []
    var start = 0
    while start + body <= ids.count && (out.count + 1) * length <= max(tokens, length) {
        out.append((bos.map { [$0] } ?? []) + Array(ids[start..<(start + body)]))
        start += body
    }
    return out
}
