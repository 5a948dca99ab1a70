import Foundation
import NN
import Tokenization
import Tensors

/// Hugging Face GPT-2 checkpoints (`config.json` + `model.safetensors`, GPT2LMHeadModel names).
///
/// HF's GPT-2 uses Conv1D layers that store weights (in, out); our projections store (out, in), so
/// those matrices are transposed on the way in and out, and HF's fused `c_attn` (C, 3C) is split
/// into the q, k and v slots (and joined again on saving). Names:
///   transformer.wte.weight → embedTokens            transformer.wpe.weight → embedPositions
///   transformer.h.i.ln_1 → layers.i.attentionNorm    transformer.h.i.attn.c_attn → attention.{q,k,v}
///   transformer.h.i.attn.c_proj → attention.o        transformer.h.i.ln_2 → layers.i.mlpNorm
///   transformer.h.i.mlp.c_fc → mlp.up                transformer.h.i.mlp.c_proj → mlp.down
///   transformer.ln_f → norm                          lm_head.weight → lmHead (absent when tied)
public enum HuggingFaceGPT2 {
    /// Loads an HF GPT-2 folder. Strict: missing, unexpected and mis-shaped tensors are all listed
    /// in one error. (HF's attention-mask buffers `attn.bias` / `attn.masked_bias` are skipped, and a
    /// stored `lm_head.weight` copy of the tied embedding is accepted.)
    public static func load(folder: String) throws -> GPT {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw ModelError.file(configPath, "cannot read") }
        let config: GPTConfig
        do { config = try JSONDecoder().decode(GPTConfig.self, from: data) } catch { throw ModelError.file(configPath, "not a GPT-2 config: \(describeJSONError(error, in: data))") }
        let spec = config.decoder
        try spec.validate()
        var reader = WeightReader(try Safetensors.read(folder + "/model.safetensors"))
        let c = config.embedding
        // Some exports drop the "transformer." prefix.
        func tensor(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor {
            try reader.tensor("transformer." + name, shape, aliases: [name])
        }
        func bias(_ name: String, _ n: Int) throws(ModelError) -> Tensor? { config.bias ? try tensor(name + ".bias", [n]) : nil }
        func conv(_ name: String, _ inF: Int, _ outF: Int) throws(ModelError) -> (weight: Tensor, bias: Tensor?) {
            let w = try tensor(name + ".weight", [inF, outF])
            return (withNoGrad { w.transposed(0, 1) }, try bias(name, outF))
        }
        func norm(_ name: String) throws(ModelError) -> LayerNorm {
            LayerNorm(weight: try tensor(name + ".weight", [c]), bias: try bias(name, c), eps: config.layerNormEpsilon)
        }
        let rng = RandomGenerator(seed: 0)
        var layers: [DecoderLayer] = []
        for i in 0..<config.layers {
            let p = "h.\(i)."
            let attn = try conv(p + "attn.c_attn", c, 3 * c)                    // (3C, C) after the transpose: q | k | v rows
            let parts = withNoGrad { attn.weight.split([c, c, c], axis: 0) }
            let biases = attn.bias.map { b in withNoGrad { b.split([c, c, c], axis: 0) } }
            let proj = try conv(p + "attn.c_proj", c, c), fc = try conv(p + "mlp.c_fc", c, 4 * c), down = try conv(p + "mlp.c_proj", 4 * c, c)
            let ln1 = try norm(p + "ln_1"), ln2 = try norm(p + "ln_2")
            layers.append(DecoderLayer(spec, index: i, rng: rng, linear: { role, _, _ in
                switch role {
                case .q, .k, .v:
                    let j = role == .q ? 0 : role == .k ? 1 : 2
                    return Linear(weight: parts[j].copy(), bias: biases?[j].copy())
                case .o: return Linear(weight: proj.weight, bias: proj.bias)
                case .up: return Linear(weight: fc.weight, bias: fc.bias)
                default: return Linear(weight: down.weight, bias: down.bias)
                }
            }, norm: { role, _ in role == .attentionNorm ? ln1 : ln2 }))
        }
        let wte = Embedding(weight: try tensor("wte.weight", [config.vocabularySize, c]))
        let wpe = Embedding(weight: try tensor("wpe.weight", [config.contextLength, c]))
        let lnF = try norm("ln_f")
        var head: Linear? = nil
        if config.tiedEmbeddings {
            reader.allow { $0 == "lm_head.weight" }
        } else {
            head = Linear(weight: try reader.tensor("lm_head.weight", [config.vocabularySize, c]))
        }
        reader.allow { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") }
        try reader.finish(folder)
        return GPT(config: config, embedTokens: wte, embedPositions: wpe, layers: layers, norm: lnF, lmHead: head, rng: rng)
    }

    /// The model's weights under HF's names and in HF's layout (Conv1D matrices (in, out), c_attn fused).
    public static func tensors(of model: GPT) throws -> [String: Tensor] {
        guard let wte = model.embedTokens as? Embedding, let wpe = model.embedPositions as? Embedding,
              let lnF = model.norm as? LayerNorm else { throw ModelError.weights("GPT-2 export: the model's tables are not float weights") }
        return try withNoGrad { () throws -> [String: Tensor] in
            var out: [String: Tensor] = ["transformer.wte.weight": wte.weight, "transformer.wpe.weight": wpe.weight]
            func put(_ name: String, _ layer: any LinearLayer) throws {
                guard let l = layer as? Linear else { throw ModelError.weights("GPT-2 export: \(name) is not a float Linear (merge adapters first)") }
                out[name + ".weight"] = l.weight.transposed(0, 1)
                if let b = l.bias { out[name + ".bias"] = b }
            }
            func putNorm(_ name: String, _ n: any NormLayer) throws {
                guard let ln = n as? LayerNorm else { throw ModelError.weights("GPT-2 export: \(name) is not a LayerNorm") }
                out[name + ".weight"] = ln.weight
                if let b = ln.bias { out[name + ".bias"] = b }
            }
            for (i, layer) in model.layers.enumerated() {
                let p = "transformer.h.\(i)."
                let a = layer.attention
                guard let q = a.q as? Linear, let k = a.k as? Linear, let v = a.v as? Linear else {
                    throw ModelError.weights("GPT-2 export: layer \(i)'s q/k/v are not float Linears (merge adapters first)")
                }
                out[p + "attn.c_attn.weight"] = Tensor.concat([q.weight, k.weight, v.weight], axis: 0).transposed(0, 1)
                if let qb = q.bias, let kb = k.bias, let vb = v.bias { out[p + "attn.c_attn.bias"] = Tensor.concat([qb, kb, vb], axis: 0) }
                try put(p + "attn.c_proj", a.o)
                try put(p + "mlp.c_fc", layer.mlp.up)
                try put(p + "mlp.c_proj", layer.mlp.down)
                try putNorm(p + "ln_1", layer.attentionNorm)
                try putNorm(p + "ln_2", layer.mlpNorm)
            }
            try putNorm("transformer.ln_f", lnF)
            if let head = model.lmHead {
                guard let l = head as? Linear else { throw ModelError.weights("GPT-2 export: lm_head is not a float Linear") }
                out["lm_head.weight"] = l.weight
            }
            return out
        }
    }

    /// Writes an HF GPT-2 folder that `GPT2LMHeadModel.from_pretrained` loads.
    public static func save(_ model: GPT, to folder: String) throws {
        try writeHuggingFaceFolder(config: model.config, tensors: try tensors(of: model), to: folder)
    }
}
