import NN
import Tensors

/// What a LoRA run adapts: rank r, alpha (the update is scaled by alpha / r), dropout on the
/// adapter's input, and the projection roles it wraps (q k v o gate up down, for every
/// architecture: a role a model lacks, GPT's gate, is skipped).
public struct LoRAConfig: Codable, Sendable, Equatable {
    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    public var targets: [DecoderWeight]

    public static let projectionRoles: [DecoderWeight] = [.q, .k, .v, .o, .gate, .up, .down]

    public init(rank: Int = 16, alpha: Float = 32, dropout: Float = 0.05, targets: [DecoderWeight] = projectionRoles) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.targets = targets
    }
}

extension DecoderWeight: Codable {}

/// Fine-tuning surgery on a decoder: adapters into its projection slots, merging them back,
/// float copies of quantized weights, and which parameters train.
extension DecoderModel {
    /// Every adapted projection: (layer index, role, adapter), in layer order.
    public var loraLayers: [(layer: Int, role: DecoderWeight, lora: LoRALinear)] {
        var out: [(Int, DecoderWeight, LoRALinear)] = []
        for (i, layer) in layers.enumerated() {
            for role in LoRAConfig.projectionRoles { if let l = layer.projection(role) as? LoRALinear { out.append((i, role, l)) } }
        }
        return out
    }

    /// Freezes every weight, then wraps each targeted projection in a fresh LoRA adapter (the
    /// adapters' A and B are then the only trainable parameters): A drawn from `rng`, dropout
    /// masks from the model's own generator (checkpoints save it; recomputation replays it).
    /// Returns how many were added.
    @discardableResult
    public func addLoRA(_ config: LoRAConfig, rng: RandomGenerator) throws(ModelError) -> Int {
        guard config.rank > 0 else { throw .input("LoRA rank must be positive, got \(config.rank)") }
        guard config.alpha.isFinite, config.alpha > 0 else { throw .input("LoRA alpha must be a positive number, got \(config.alpha)") }
        guard config.dropout >= 0, config.dropout < 1 else { throw .input("LoRA dropout must be in [0, 1), got \(config.dropout)") }
        for role in config.targets where !LoRAConfig.projectionRoles.contains(role) {
            throw .input("LoRA target \(role.rawValue) is not a projection (q, k, v, o, gate, up, down)")
        }
        freeze()
        var added = 0
        for layer in layers {
            for role in config.targets {
                guard let base = layer.projection(role) else { continue }
                guard !(base is LoRALinear) else { throw .input("layer's \(role.rawValue) projection already has an adapter") }
                layer.setProjection(role, LoRALinear(base: base, rank: config.rank, alpha: config.alpha, dropout: config.dropout,
                                                         rng: rng, dropoutRNG: self.rng))
                added += 1
            }
        }
        guard added > 0 else {
            throw .input("none of the LoRA targets (\(config.targets.map(\.rawValue).joined(separator: ","))) is a projection of this \(architecture) model")
        }
        return added
    }

    /// Switches every adapter on or off (off: the base model, as DPO's reference).
    public func setAdaptersEnabled(_ on: Bool) { for (_, _, l) in loraLayers { l.enabled = on } }

    /// Fuses every adapter into its projection: W' = W + (alpha/r)·B·A, as a float `Linear`
    /// (a quantized base is dequantized first). The model then has no adapters.
    public func mergeAdapters() {
        withNoGrad {
            for (i, role, lora) in loraLayers { layers[i].setProjection(role, floatLinear(lora)) }
        }
    }

    /// Replaces every quantized weight (projections, token table, head) with a float copy, so that
    /// all of them can train (full fine-tuning of a GGUF model) or be exported.
    public func dequantizeWeights() {
        withNoGrad {
            for layer in layers {
                for role in LoRAConfig.projectionRoles {
                    guard let p = layer.projection(role) else { continue }
                    if let lora = p as? LoRALinear { lora.base = floatLinear(lora.base); lora.base.freeze() }
                    else if p is QuantizedLinear { layer.setProjection(role, floatLinear(p)) }
                }
            }
            if let table = embedTokens as? QuantizedEmbedding { embedTokens = Embedding(weight: table.weight.dequantized()) }
            if let head = lmHead, head is QuantizedLinear { lmHead = floatLinear(head) }
        }
    }

    /// Trainable: only the last `count` layers, the final norm and the output head (the token
    /// table too when the head is tied to it), as the book's chapter 6 does; the rest frozen.
    public func trainOnlyLastLayers(_ count: Int) throws(ModelError) {
        guard count >= 0, count <= layers.count else { throw .input("--train-layers must be in 0...\(layers.count), got \(count)") }
        freeze()
        for layer in layers.suffix(count) { layer.freeze(false) }
        norm.freeze(false)
        if let head = lmHead { head.freeze(false) } else { embedTokens.freeze(false) }
    }

    /// Final hidden states after the last norm: (B·T, C), every sequence from position 0.
    /// Differentiable (a classification head reads them).
    public func features(_ ids: [Int32], batch: Int, length: Int) throws(ModelError) -> Tensor {
        guard batch > 0, length > 0, ids.count == batch * length else {
            throw .input("\(ids.count) ids do not make a batch of \(batch) × \(length)")
        }
        guard length <= contextLength else { throw .input("\(length) positions exceed the context of \(contextLength)") }
        try checkIds(ids, what: "ids")
        return norm(hidden(ids, .rectangular(batch: batch, length: length)))
    }
}

/// A float `Linear` with the same product: itself, or a quantized layer's weights dequantized.
func floatLinear(_ layer: any LinearLayer) -> Linear {
    if let l = layer as? Linear { return l }
    if let q = layer as? QuantizedLinear { return Linear(weight: q.weight.dequantized(), bias: q.bias.map { $0.detached() }) }
    if let lora = layer as? LoRALinear {
        let base = floatLinear(lora.base)
        return Linear(weight: base.weight + lora.delta(), bias: base.bias)
    }
    fatalError("floatLinear: \(type(of: layer)) has no float form")
}

extension Llama {
    /// The same model with every weight a float tensor in Hugging Face's layout, ready to save:
    /// quantized weights are dequantized and adapters merged (in this model too), and a GGUF
    /// model's q/k rows are put back into RoPE-halves order in the copy (whose spec then pairs
    /// halves). Tensors are shared where nothing changes.
    public func huggingFaceLayout() -> Llama {
        dequantizeWeights()
        mergeAdapters()
        guard spec.ropePairing == .adjacent else { return self }
        var halves = spec
        halves.ropePairing = .halves
        let rebuilt = withNoGrad {
            layers.enumerated().map { i, l in
                DecoderLayer(halves, index: i, rng: rng, linear: { role, _, _ in
                    let p = l.projection(role)!
                    guard role == .q || role == .k else { return p }
                    let w = floatLinear(p)
                    let order = ropeRowOrder(heads: role == .q ? spec.heads : spec.kvHeads, headSize: spec.headSize, toAdjacent: false)
                    return Linear(weight: w.weight.gatherRows(order), bias: w.bias.map { $0.reshaped(-1, 1).gatherRows(order).reshaped(-1) })
                }, norm: { role, _ in l.normalization(role)! })
            }
        }
        return Llama(config: config, spec: halves, embedTokens: embedTokens, layers: rebuilt, norm: norm, lmHead: lmHead, rng: rng)
    }
}

/// Writes a model as a Hugging Face folder of its architecture (a GGUF Llama in HF's layout).
/// Adapters are merged and quantized weights dequantized, in the model itself.
public func saveHuggingFaceFolder(_ model: DecoderModel, to folder: String) throws {
    if let llama = model as? Llama { return try llama.huggingFaceLayout().save(to: folder) }
    model.dequantizeWeights()
    model.mergeAdapters()
    try model.save(to: folder)
}
