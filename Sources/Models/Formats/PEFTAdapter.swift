import Foundation
import NN
import Tensors
import Tokenization

/// LoRA adapters in Hugging Face PEFT's format, so `peft` loads ours onto the matching
/// transformers model and we load theirs:
///
///   adapter_config.json         {"peft_type": "LORA", "r", "lora_alpha", "target_modules",
///                                "base_model_name_or_path", "rank_pattern", "alpha_pattern", ...}
///   adapter_model.safetensors   base_model.model.<module>.lora_A.weight (r, in)
///                               base_model.model.<module>.lora_B.weight (out, r)
///                               base_model.model.score.weight (classes, C): a classification head
///
/// Module names are transformers': Llama's `model.layers.N.self_attn.q_proj` … `mlp.down_proj`;
/// GPT-2's `transformer.h.N.attn.c_attn` (q, k and v in one matrix), `attn.c_proj`, `mlp.c_fc`,
/// `mlp.c_proj`. Our separate q/k/v adapters of rank r become one c_attn adapter of rank n·r
/// (A stacked, B block-diagonal, alpha n·alpha through `rank_pattern`/`alpha_pattern`), which
/// computes exactly the same; loading splits a c_attn adapter back into q, k and v. A GGUF
/// model's q/k rows are in llama.cpp's RoPE order: B's rows are reordered on the way in and out.
public enum PEFTAdapter {
    public static let configFile = "adapter_config.json", weightsFile = "adapter_model.safetensors"

    /// What a saved adapter holds besides the adapters it put into the model.
    public struct Contents {
        public var rank: Int
        public var alpha: Float
        public var dropout: Float
        public var targets: [DecoderWeight]
        public var baseModel: String?
        /// A classification head (classes, C), when the adapter was trained for classification.
        public var score: Tensor?
    }

    /// Writes the model's adapters (and a classification head) into `folder`.
    public static func save(_ model: DecoderModel, config: LoRAConfig, baseModel: String, score: Tensor? = nil, to folder: String) throws {
        let adapters = model.loraLayers
        guard !adapters.isEmpty else { throw ModelError.weights("the model has no LoRA adapters to save") }
        var tensors: [String: Tensor] = [:]
        var targets = Set<String>(), rankPattern: [String: Int] = [:], alphaPattern: [String: Float] = [:]
        try withNoGrad { () throws in
            if model is GPT {
                for (i, layer) in model.layers.enumerated() {
                    let fused = [DecoderWeight.q, .k, .v].compactMap { role in (layer.projection(role) as? LoRALinear).map { (role, $0) } }
                    if !fused.isEmpty {
                        let (a, b) = fuseQKV(fused, width: layer.attention.q.outFeatures)
                        tensors["base_model.model.transformer.h.\(i).attn.c_attn.lora_A.weight"] = a
                        tensors["base_model.model.transformer.h.\(i).attn.c_attn.lora_B.weight"] = b
                        targets.insert("attn.c_attn")
                        if fused.count > 1 { rankPattern["c_attn"] = fused.count * config.rank; alphaPattern["c_attn"] = Float(fused.count) * config.alpha }
                    }
                    for (role, name) in [(DecoderWeight.o, "attn.c_proj"), (.up, "mlp.c_fc"), (.down, "mlp.c_proj")] {
                        guard let l = layer.projection(role) as? LoRALinear else { continue }
                        tensors["base_model.model.transformer.h.\(i).\(name).lora_A.weight"] = l.loraA
                        tensors["base_model.model.transformer.h.\(i).\(name).lora_B.weight"] = l.loraB
                        targets.insert(name)
                    }
                }
            } else if model is Llama {
                for (i, role, l) in adapters {
                    guard let name = llamaModules[role] else { continue }
                    var b = l.loraB
                    if (role == .q || role == .k) && model.spec.ropePairing == .adjacent {
                        b = b.gatherRows(ropeRowOrder(heads: role == .q ? model.spec.heads : model.spec.kvHeads,
                                                      headSize: model.spec.headSize, toAdjacent: false))
                    }
                    tensors["base_model.model.model.layers.\(i).\(name).lora_A.weight"] = l.loraA
                    tensors["base_model.model.model.layers.\(i).\(name).lora_B.weight"] = b
                    targets.insert(String(name.split(separator: ".").last!))
                }
            } else {
                throw ModelError.weights("\(model.architecture) models have no PEFT module names")
            }
        }
        if let score { tensors["base_model.model.score.weight"] = score }
        let json: [String: Any] = [
            "peft_type": "LORA", "task_type": score == nil ? "CAUSAL_LM" : "SEQ_CLS",
            "r": config.rank, "lora_alpha": config.alpha, "lora_dropout": config.dropout,
            "target_modules": targets.sorted(), "bias": "none", "base_model_name_or_path": baseModel,
            "fan_in_fan_out": model is GPT, "inference_mode": true, "init_lora_weights": true,
            "modules_to_save": score == nil ? NSNull() : ["score"] as Any,
            "rank_pattern": rankPattern, "alpha_pattern": alphaPattern, "use_rslora": false, "use_dora": false,
        ]
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Safetensors.write(tensors, metadata: ["format": "pt"], to: folder + "/" + weightsFile)
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try atomicWrite(data, to: folder + "/" + configFile)
    }

    /// Reads an adapter from `folder` (ours or PEFT's) and puts its adapters into the model's
    /// projection slots, each around its base; every other weight is frozen. Every tensor must name a module of this
    /// model with the right shape; the error lists those that do not.
    @discardableResult
    public static func load(_ folder: String, into model: DecoderModel, rng: RandomGenerator = RandomGenerator(seed: 0)) throws -> Contents {
        let configPath = folder + "/" + configFile
        guard let data = FileManager.default.contents(atPath: configPath) else { throw ModelError.file(configPath, "cannot read (not an adapter folder?)") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.file(configPath, jsonSyntaxError(data) ?? "not a JSON object")
        }
        if let type = json["peft_type"] as? String, type != "LORA" { throw ModelError.file(configPath, "peft_type \(type): only LORA adapters are supported") }
        if json["use_dora"] as? Bool == true { throw ModelError.file(configPath, "use_dora: DoRA adapters are not supported") }
        guard let r = json["r"] as? Int, r > 0 else { throw ModelError.file(configPath, "field r (the rank) is missing or not a positive integer") }
        guard let alpha = (json["lora_alpha"] as? NSNumber)?.floatValue, alpha.isFinite, alpha > 0 else {
            throw ModelError.file(configPath, "field lora_alpha is missing or not a positive number")
        }
        let rsLoRA = json["use_rslora"] as? Bool ?? false
        let rankPattern = json["rank_pattern"] as? [String: Int] ?? [:]
        let alphaPattern = (json["alpha_pattern"] as? [String: NSNumber])?.mapValues(\.floatValue) ?? [:]
        let file = try Safetensors.read(folder + "/" + weightsFile)

        func pattern<V>(_ p: [String: V], _ module: String) -> V? {
            for (key, value) in p where module == key || module.hasSuffix("." + key)
                || (try? NSRegularExpression(pattern: "^(.*\\.)?" + key + "$")).map({ $0.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)) != nil }) == true {
                return value
            }
            return nil
        }
        // PEFT's scale is alpha/r (alpha/√r with rsLoRA); ours is alpha/rank, so alpha is converted.
        func effectiveAlpha(_ module: String, rank: Int) -> Float {
            let a = pattern(alphaPattern, module) ?? alpha
            return rsLoRA ? a * Float(rank).squareRoot() : a
        }

        var problems: [String] = [], score: Tensor?
        var pairs: [String: (a: Tensor?, b: Tensor?)] = [:]
        for name in file.entries.keys.sorted() {
            var n = name.hasPrefix("base_model.model.") ? String(name.dropFirst("base_model.model.".count)) : name
            n = n.replacingOccurrences(of: ".default.", with: ".")
            if n == "score.weight" || n == "score.modules_to_save.weight" { score = try file.tensor(name); continue }
            if n.hasSuffix(".lora_A.weight") { pairs[String(n.dropLast(".lora_A.weight".count)), default: (nil, nil)].a = try file.tensor(name) }
            else if n.hasSuffix(".lora_B.weight") { pairs[String(n.dropLast(".lora_B.weight".count)), default: (nil, nil)].b = try file.tensor(name) }
            else { problems.append("\(name): not a LoRA A/B matrix or a score head") }
        }
        var roles = Set<DecoderWeight>()
        model.freeze()                               // as peft: only the adapters train
        withNoGrad {
            for (module, pair) in pairs.sorted(by: { $0.key < $1.key }) {
                guard let a = pair.a, let b = pair.b else { problems.append("\(module): lora_A and lora_B must both be present"); continue }
                guard a.rank == 2, b.rank == 2, a.shape[0] == b.shape[1] else {
                    problems.append("\(module): lora_A \(Shape.describe(a.shape)) and lora_B \(Shape.describe(b.shape)) do not multiply"); continue
                }
                let rank = pattern(rankPattern, module) ?? r
                guard rank == a.shape[0] else { problems.append("\(module): rank \(a.shape[0]) in the file, \(rank) in the config"); continue }
                guard let (index, slots) = moduleSlots(module, model) else { problems.append("\(module): not a projection of this \(model.architecture) model"); continue }
                guard index < model.layers.count else { problems.append("\(module): the model has \(model.layers.count) layers"); continue }
                let layer = model.layers[index]
                let out = slots.reduce(0) { $0 + (layer.projection($1)?.outFeatures ?? 0) }
                guard let first = layer.projection(slots[0]), a.shape[1] == first.inFeatures, b.shape[0] == out else {
                    problems.append("\(module): lora_A \(Shape.describe(a.shape)) and lora_B \(Shape.describe(b.shape)) do not fit the layer"); continue
                }
                let scaleAlpha = effectiveAlpha(module, rank: rank)
                var row = 0
                for role in slots {
                    let base = layer.projection(role)!
                    var bPart = b.slice(axis: 0, row..<(row + base.outFeatures))
                    row += base.outFeatures
                    // The columns (of the rank) this part uses: a fused block-diagonal B gives each
                    // of q, k, v its own slice of A back.
                    let used = (0..<rank).filter { c in (0..<bPart.shape[0]).contains { bPart.data[$0 * rank + c] != 0 } }
                    guard !used.isEmpty else { continue }
                    let cols = used.first!..<(used.last! + 1)
                    var aPart = a
                    if cols.count < rank { aPart = a.slice(axis: 0, cols); bPart = bPart.slice(axis: 1, cols) }
                    if (role == .q || role == .k) && model.spec.ropePairing == .adjacent {
                        bPart = bPart.gatherRows(ropeRowOrder(heads: role == .q ? model.spec.heads : model.spec.kvHeads,
                                                              headSize: model.spec.headSize, toAdjacent: true))
                    }
                    let baseLayer = (base as? LoRALinear)?.base ?? base
                    let lora = LoRALinear(base: baseLayer, a: Tensor(shape: aPart.shape, aPart.scalars), b: Tensor(shape: bPart.shape, bPart.scalars),
                                          alpha: scaleAlpha * Float(cols.count) / Float(rank), rng: rng)
                    layer.setProjection(role, lora)
                    roles.insert(role)
                }
            }
        }
        guard problems.isEmpty else { throw ModelError.file(folder + "/" + weightsFile, problems.joined(separator: "; ")) }
        guard !roles.isEmpty || score != nil else { throw ModelError.file(folder + "/" + weightsFile, "holds no LoRA matrices") }
        return Contents(rank: r, alpha: alpha, dropout: (json["lora_dropout"] as? NSNumber)?.floatValue ?? 0,
                        targets: LoRAConfig.projectionRoles.filter(roles.contains), baseModel: json["base_model_name_or_path"] as? String, score: score)
    }

    /// transformers' module names of Llama's projections (after "model.layers.N.").
    static let llamaModules: [DecoderWeight: String] = [
        .q: "self_attn.q_proj", .k: "self_attn.k_proj", .v: "self_attn.v_proj", .o: "self_attn.o_proj",
        .gate: "mlp.gate_proj", .up: "mlp.up_proj", .down: "mlp.down_proj",
    ]

    /// A module name → (layer index, the projection slots its output rows fill, in order).
    static func moduleSlots(_ module: String, _ model: DecoderModel) -> (Int, [DecoderWeight])? {
        let parts = module.split(separator: ".").map(String.init)
        if model is GPT {
            guard parts.count == 5, parts[0] == "transformer", parts[1] == "h", let i = Int(parts[2]) else { return nil }
            switch parts[3] + "." + parts[4] {
            case "attn.c_attn": return (i, [.q, .k, .v])
            case "attn.c_proj": return (i, [.o])
            case "mlp.c_fc": return (i, [.up])
            case "mlp.c_proj": return (i, [.down])
            default: return nil
            }
        }
        guard parts.count == 5, parts[0] == "model", parts[1] == "layers", let i = Int(parts[2]) else { return nil }
        let tail = parts[3] + "." + parts[4]
        guard let role = llamaModules.first(where: { $0.value == tail })?.key else { return nil }
        return (i, [role])
    }

    /// q, k, v adapters as one c_attn adapter: A (n·r, in) stacked, B (3·C, n·r) block-diagonal.
    static func fuseQKV(_ parts: [(DecoderWeight, LoRALinear)], width: Int) -> (Tensor, Tensor) {
        let r = parts[0].1.rank, n = parts.count
        let a = Tensor.concat(parts.map { $0.1.loraA }, axis: 0)                 // (n·r, in)
        let b = Tensor.zeros([3 * width, n * r])
        for (j, (role, l)) in parts.enumerated() {
            let rowBlock = role == .q ? 0 : role == .k ? 1 : 2
            let src = l.loraB
            for row in 0..<width {
                for c in 0..<r { b.data[(rowBlock * width + row) * (n * r) + j * r + c] = src.data[row * r + c] }
            }
        }
        return (a, b)
    }
}

/// The row order that turns q/k rows from Hugging Face's RoPE layout (pairs i, i + D/2 within a
/// head) into llama.cpp's (pairs 2i, 2i + 1), or back: out row = in row order[k].
public func ropeRowOrder(heads: Int, headSize d: Int, toAdjacent: Bool) -> [Int32] {
    var order = [Int32](repeating: 0, count: heads * d)
    for h in 0..<heads {
        for j in 0..<(d / 2) {
            for t in 0..<2 {
                let adjacent = h * d + 2 * j + t, halves = h * d + t * (d / 2) + j
                if toAdjacent { order[adjacent] = Int32(halves) } else { order[halves] = Int32(adjacent) }
            }
        }
    }
    return order
}
