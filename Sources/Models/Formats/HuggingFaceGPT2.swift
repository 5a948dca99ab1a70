import Foundation
import NN
import Tokenization
import Tensors

/// Hugging Face GPT-2 checkpoints (`config.json` + `model.safetensors`, GPT2LMHeadModel names).
///
/// HF's GPT-2 uses Conv1D layers that store weights (in, out); our Linear stores (out, in), so
/// those four matrices per block are transposed on the way in and out. Names:
///   transformer.wte.weight → wte.weight            transformer.h.i.ln_1 → blocks.i.ln1
///   transformer.h.i.attn.c_attn → blocks.i.attn.qkv    transformer.h.i.attn.c_proj → blocks.i.attn.proj
///   transformer.h.i.mlp.c_fc → blocks.i.mlp.fc         transformer.h.i.mlp.c_proj → blocks.i.mlp.proj
///   transformer.ln_f → lnF                         lm_head.weight → lmHead.weight (absent when tied)
public enum HuggingFaceGPT2 {
    /// (HF name, our name, stored transposed) for every parameter of a model with this config.
    public static func nameMap(_ config: GPTConfig) -> [(hf: String, ours: String, transposed: Bool)] {
        var map: [(String, String, Bool)] = [("transformer.wte.weight", "wte.weight", false), ("transformer.wpe.weight", "wpe.weight", false)]
        let parts: [(String, String, Bool)] = [("ln_1", "ln1", false), ("attn.c_attn", "attn.qkv", true), ("attn.c_proj", "attn.proj", true),
                                               ("ln_2", "ln2", false), ("mlp.c_fc", "mlp.fc", true), ("mlp.c_proj", "mlp.proj", true)]
        for i in 0..<config.layers {
            for (hf, ours, conv) in parts {
                map.append(("transformer.h.\(i).\(hf).weight", "blocks.\(i).\(ours).weight", conv))
                if config.bias { map.append(("transformer.h.\(i).\(hf).bias", "blocks.\(i).\(ours).bias", false)) }
            }
        }
        map.append(("transformer.ln_f.weight", "lnF.weight", false))
        if config.bias { map.append(("transformer.ln_f.bias", "lnF.bias", false)) }
        if !config.tiedEmbeddings { map.append(("lm_head.weight", "lmHead.weight", false)) }
        return map
    }

    /// Loads an HF GPT-2 folder. Strict: missing, unexpected and mis-shaped tensors are all listed
    /// in one error. (HF's attention-mask buffers `attn.bias` / `attn.masked_bias` are skipped, and a
    /// stored `lm_head.weight` equal to the tied embedding is accepted.)
    public static func load(folder: String) throws -> GPT {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw ModelError.file(configPath, "cannot read") }
        let config: GPTConfig
        do { config = try JSONDecoder().decode(GPTConfig.self, from: data) } catch { throw ModelError.file(configPath, "\(error)") }
        let file = try Safetensors.read(folder + "/model.safetensors")
        let model = GPT(config, rng: RandomGenerator(seed: 0))
        var values: [String: Tensor] = [:]
        var problems: [String] = []
        let map = nameMap(config)
        let known = Set(map.map(\.hf))
        for (hf, ours, transposed) in map {
            // Some exports drop the "transformer." prefix.
            let key = file.entries[hf] != nil ? hf : String(hf.dropFirst("transformer.".count))
            guard file.entries[key] != nil else { problems.append("missing: \(hf)"); continue }
            let t = try file.tensor(key)
            values[ours] = transposed && t.rank == 2 ? t.transposed(0, 1) : t
        }
        for name in file.entries.keys.sorted() where !known.contains(name) && !known.contains("transformer." + name) {
            if name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") { continue }
            if name == "lm_head.weight" && config.tiedEmbeddings { continue }
            problems.append("unexpected: \(name)")
        }
        if !problems.isEmpty { throw ModelError.weights("\(folder): " + problems.joined(separator: "; ")) }
        do { try model.load(values) } catch { throw ModelError.weights("\(folder): \(error.description)") }
        return model
    }

    /// Writes an HF GPT-2 folder that `GPT2LMHeadModel.from_pretrained` loads.
    public static func save(_ model: GPT, to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        var tensors: [String: Tensor] = [:]
        for (hf, ours, transposed) in nameMap(model.config) {
            let t = params[ours]!
            tensors[hf] = transposed ? withNoGrad { t.transposed(0, 1) } : t
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(try encoder.encode(model.config), to: folder + "/config.json")
        try Safetensors.write(tensors, metadata: ["format": "pt"], to: folder + "/model.safetensors")
    }
}
