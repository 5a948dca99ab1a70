import Foundation
import NN
import Tensors

/// The decoder-only transformer, written once for every architecture (`DecoderConfig` says which
/// parts it has). Reads top to bottom:
///
///   ids (N) → embedTokens (N, C) [× scale] [+ embedPositions] → layers → norm → head → logits
///
/// Token rows are flat: N = B·T for a rectangular batch (training), or the sum of every
/// sequence's new tokens for a ragged one (inference), each sequence continuing its own cache.
/// `GPT` and `Llama` are this class with their configs and weight names.
open class DecoderModel: Module, TrainableModel {
    public let spec: DecoderConfig
    public var embedTokens: any TokenEmbedding               // (V, C)
    public var embedPositions: (any TokenEmbedding)?         // (context, C): learned positions
    public var layers: [DecoderLayer]
    public var norm: any NormLayer
    public var lmHead: (any LinearLayer)?                    // (V, C) when not tied
    var embeddingDropout: Dropout
    /// RoPE's inverse frequencies (D/2), a buffer: shown by `namedBuffers`, never loaded.
    let ropeInverseFrequencies: Buffer?
    /// The generator the dropout layers draw from (saved in checkpoints for exact resumes).
    public let rng: RandomGenerator
    /// Training keeps only each layer's input and recomputes the layer's activations during the
    /// backward pass (gradient checkpointing): memory for activations falls from every layer's to
    /// one layer's, for about one more forward pass of compute.
    public var checkpointActivations = false

    public init(spec: DecoderConfig, embedTokens: any TokenEmbedding, embedPositions: (any TokenEmbedding)?, layers: [DecoderLayer],
                norm: any NormLayer, lmHead: (any LinearLayer)?, rng: RandomGenerator) {
        self.spec = spec
        self.embedTokens = embedTokens
        self.embedPositions = embedPositions
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
        self.rng = rng
        embeddingDropout = Dropout(spec.dropout, rng: rng)
        ropeInverseFrequencies = spec.positions == .rotary ? Buffer(Tensor(spec.ropeFrequencies)) : nil
    }

    public var vocabularySize: Int { spec.vocabularySize }
    public var contextLength: Int { spec.contextLength }
    open var architecture: String { "decoder" }
    open var summary: String {
        "\(architecture), \(spec.layers) layers, \(spec.embedding) wide, \(spec.heads) heads / \(spec.kvHeads) kv, vocab \(spec.vocabularySize)"
    }

    /// Writes the model as a folder of its own format (config + safetensors).
    open func save(to folder: String) throws { throw ModelError.weights("\(architecture) models cannot be saved as a folder") }

    /// Whether attention rounds to F16 as llama.cpp does (GGUF models).
    public var halfPrecisionAttention: Bool {
        get { layers.first?.attention.halfPrecision ?? false }
        set { for l in layers { l.attention.halfPrecision = newValue } }
    }

    /// Whether GELU goes through ggml's F16 table as llama.cpp's does (GGUF models).
    public var halfPrecisionGELU: Bool {
        get { layers.first?.mlp.halfPrecisionGELU ?? false }
        set { for l in layers { l.mlp.halfPrecisionGELU = newValue } }
    }

    // MARK: Forward

    /// The residual stream after the last layer, before the final norm: (N, C).
    func hidden(_ ids: [Int32], _ pass: ForwardPass) -> Tensor {
        var x = embeddingDropout(embed(ids, pass))                             // (N, C)
        for (i, layer) in layers.enumerated() {                                 // (N, C)
            x = checkpointActivations && Autograd.isEnabled ? recomputed(layer, x) { layer($0, pass, index: i) } : layer(x, pass, index: i)
        }
        return x
    }

    /// Token embeddings (scaled) plus position embeddings: the stream entering layer 0, (N, C).
    func embed(_ ids: [Int32], _ pass: ForwardPass) -> Tensor {
        var x = embedTokens(ids, shape: nil)                                    // (N, C)
        if let s = spec.embeddingScale { x = x * s }
        if let table = embedPositions { x = x + table(pass.positions.map { Int32($0) }, shape: nil) }   // (N, C)
        return x
    }

    /// The stream entering layer 0 for `batch` sequences of `length` tokens, each from position 0:
    /// (B, T, C). With `layers[i](x)` (B, T, C) → (B, T, C) the model runs one layer at a time
    /// (quantization's calibration does).
    public func embedded(_ ids: [Int32], batch: Int, length: Int) -> Tensor {
        embed(ids, .rectangular(batch: batch, length: length)).reshaped(batch, length, spec.embedding)
    }

    /// `f(x)` run without recording; its backward runs `f` again with recording, on the same
    /// dropout masks (the generator is replayed), and back-propagates through that. The layer's
    /// parameters are inputs of the node (with no gradient of their own: the inner backward adds
    /// theirs), so the node is recorded even when x itself needs no gradient.
    func recomputed(_ layer: Module, _ x: Tensor, _ f: @escaping (Tensor) -> Tensor) -> Tensor {
        let params = layer.trainableParameters
        let state = rng.snapshot
        let y = withNoGrad { f(x) }
        guard x.requiresGrad || !params.isEmpty else { return y }
        let rng = self.rng
        return Autograd.custom(y, op: "recomputed layer", inputs: [x] + params) { g in
            let after = rng.snapshot
            rng.restore(from: RandomGenerator(snapshot: state))
            let xr = x.detached()
            xr.requiresGrad = x.requiresGrad
            let yr = Autograd.withGrad { f(xr) }
            rng.restore(from: RandomGenerator(snapshot: after))
            if yr.requiresGrad { yr.backward(g) }
            return [x.requiresGrad ? xr.grad : nil] + params.map { _ in nil }
        }
    }

    /// Final hidden states → logits: (R, C) → (R, V) [→ c·tanh(z/c)].
    func head(_ x: Tensor) -> Tensor { headOnNormed(norm(x)) }

    /// The output head alone, on rows the final norm has already been applied to: (R, C) → (R, V).
    func headOnNormed(_ h: Tensor) -> Tensor {
        let z = lmHead.map { $0(h) } ?? embedTokens.project(h)
        guard let cap = spec.finalLogitSoftcap else { return z }
        return (z * (1 / cap)).tanh() * cap
    }

    public func logits(_ ids: [Int32], batch: Int, length: Int) throws(ModelError) -> Tensor {
        guard batch > 0, length > 0, ids.count == batch * length else {
            throw .input("\(ids.count) ids do not make a batch of \(batch) × \(length)")
        }
        guard length <= contextLength else { throw .input("\(length) positions exceed the context of \(contextLength)") }
        try checkIds(ids, what: "ids")
        return head(hidden(ids, .rectangular(batch: batch, length: length))).reshaped(batch, length, vocabularySize)  // (B, T, V)
    }

    public func loss(_ ids: [Int32], targets: [Int32], batch: Int, length: Int) throws(ModelError) -> Tensor {
        guard targets.count == ids.count else { throw .input("\(targets.count) targets for \(ids.count) ids") }
        for (i, t) in targets.enumerated() where t != defaultIgnoreIndex && (t < 0 || Int(t) >= vocabularySize) {
            throw .input("target \(t) at position \(i) is outside the vocabulary (0..<\(vocabularySize))")
        }
        return try logits(ids, batch: batch, length: length).reshaped(batch * length, vocabularySize).crossEntropy(targets: targets)
    }

    /// log p(target) at every position that has a target, the output head run at those positions
    /// only: ids, targets (B·T, `defaultIgnoreIndex` where none) → (K) for the K positions with a
    /// target, in order. Preference tuning sums these over each response.
    public func targetLogProbabilities(_ ids: [Int32], targets: [Int32], batch: Int, length: Int) throws(ModelError) -> Tensor {
        guard batch > 0, length > 0, ids.count == batch * length, targets.count == ids.count else {
            throw .input("\(ids.count) ids and \(targets.count) targets do not make a batch of \(batch) × \(length)")
        }
        guard length <= contextLength else { throw .input("\(length) positions exceed the context of \(contextLength)") }
        try checkIds(ids, what: "ids")
        var rows: [Int32] = [], picked: [Int32] = []
        for (i, t) in targets.enumerated() where t != defaultIgnoreIndex {
            guard t >= 0, Int(t) < vocabularySize else { throw .input("target \(t) at position \(i) is outside the vocabulary (0..<\(vocabularySize))") }
            rows.append(Int32(i)); picked.append(t)
        }
        guard !rows.isEmpty else { throw .input("no position has a target") }
        let x = hidden(ids, .rectangular(batch: batch, length: length))            // (B·T, C)
        return head(x.gatherRows(rows)).targetLogProbabilities(picked)             // (K, C) → (K, V) → (K)
    }

    public func forward(_ batch: [SequenceInput]) throws(ModelError) -> Tensor {
        guard !batch.isEmpty else { throw .input("an empty batch") }
        var ids: [Int32] = [], positions: [Int] = [], segments: [CachedSegment] = [], wanted: [Int32] = []
        var owners: [ObjectIdentifier: Int] = [:]
        for (i, s) in batch.enumerated() {
            let n = s.tokens.count, start = s.cache.length
            guard n > 0 else { throw .input("sequence \(i) of the batch has no tokens") }
            if let j = owners.updateValue(i, forKey: ObjectIdentifier(s.cache)) {
                throw .input("sequences \(j) and \(i) of the batch share one cache")
            }
            guard s.cache.layers.count == layers.count else {
                throw .input("sequence \(i): its cache has \(s.cache.layers.count) layers, the model \(layers.count)")
            }
            let limit = min(s.cache.capacity, contextLength)
            guard start + n <= limit else {
                throw .input("sequence \(i): \(start) cached + \(n) new positions exceed the \(limit) it can hold (context \(contextLength))")
            }
            try checkIds(s.tokens, what: "sequence \(i)")
            let row = ids.count
            ids += s.tokens
            positions += start..<(start + n)
            segments.append(CachedSegment(row: row, count: n, cache: s.cache))
            switch s.logits {
            case .last: wanted.append(Int32(row + n - 1))
            case .all: wanted += (row..<(row + n)).map { Int32($0) }
            case .none: break
            }
        }
        let pass = ForwardPass(positions: positions, batching: .cached(segments))
        return withNoGrad {
            let x = hidden(ids, pass)                                            // (N, C)
            for seg in segments { seg.cache.length += seg.count }
            if wanted.isEmpty { return Tensor.zeros([0, vocabularySize]) }
            let rows = wanted.count == ids.count ? x : x.gatherRows(wanted)      // (R, C)
            return head(rows)                                                    // (R, V)
        }
    }

    /// An empty cache for one sequence: a full cache per global layer and, unless
    /// `slidingWindows` is false, a sliding-window cache per local one.
    public func makeCache(capacity: Int? = nil) -> KVCache { makeCache(capacity: capacity, slidingWindows: true) }

    public func makeCache(capacity: Int?, slidingWindows: Bool) -> KVCache {
        let cap = min(capacity ?? contextLength, contextLength)
        let width = spec.kvHeads * spec.headSize
        let perLayer: [any LayerCache] = (0..<spec.layers).map { i in
            if slidingWindows, let w = spec.window(ofLayer: i), w < cap { return SlidingWindowLayerCache(width: width, window: w) }
            return FullLayerCache(width: width, capacity: cap)
        }
        return KVCache(layers: perLayer, capacity: cap)
    }

    /// Every id must be a row of the embedding table; the error names the first that is not.
    func checkIds(_ ids: [Int32], what: String) throws(ModelError) {
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= vocabularySize {
            throw .input("\(what): id \(id) at position \(i) is outside the vocabulary (0..<\(vocabularySize))")
        }
    }
}

extension DecoderModel {
    /// Fresh weights for an RMSNorm decoder (Llama, Gemma), for training from scratch: N(0, 0.02)
    /// projections, token table and untied head, unit norm scales. Drawn in the order layers,
    /// table, head.
    static func randomRMSNormParts(_ spec: DecoderConfig, rng: RandomGenerator)
        -> (embedTokens: Embedding, layers: [DecoderLayer], norm: RMSNorm, lmHead: Linear?) {
        func linear(_ role: DecoderWeight, _ rows: Int, _ cols: Int) -> any LinearLayer {
            Linear(weight: Tensor.randn([rows, cols], std: 0.02, rng: rng))
        }
        func norm(_ role: DecoderWeight, _ size: Int) -> any NormLayer { RMSNorm(size, eps: spec.normEpsilon) }
        let layers = (0..<spec.layers).map { i in DecoderLayer(spec, index: i, rng: rng, linear: linear, norm: norm) }
        let embed = Embedding(spec.vocabularySize, spec.embedding, std: 0.02, rng: rng)
        let head = spec.tiedEmbeddings ? nil : Linear(weight: Tensor.randn([spec.vocabularySize, spec.embedding], std: 0.02, rng: rng))
        return (embed, layers, RMSNorm(spec.embedding, eps: spec.normEpsilon), head)
    }
}
