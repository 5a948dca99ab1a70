import Foundation
import Tokenization
import NN
import Tensors

/// A Hugging Face `Gemma3ForCausalLM` folder (model_type "gemma3_text"): `config.json` +
/// `model.safetensors`, with HF's names
///
///   model.embed_tokens.weight                          (V, C), also the output head (tied)
///   model.layers.N.input_layernorm.weight              (C)   before attention
///   model.layers.N.self_attn.{q,k,v,o}_proj.weight     (H·D, C), (Hkv·D, C), (Hkv·D, C), (C, H·D)
///   model.layers.N.self_attn.{q,k}_norm.weight         (D)   on every query / key head
///   model.layers.N.post_attention_layernorm.weight     (C)   after attention
///   model.layers.N.pre_feedforward_layernorm.weight    (C)   before the MLP
///   model.layers.N.mlp.{gate,up,down}_proj.weight      (F, C), (F, C), (C, F)
///   model.layers.N.post_feedforward_layernorm.weight   (C)   after the MLP
///   model.norm.weight                                  (C)
///
/// Every norm computes x / rms(x) · (1 + w): the loader stores 1 + w in our RMSNorm (the same
/// float32 sum transformers forms), the writer stores it back as (1 + w) − 1, which is exact.
public enum HuggingFaceGemma3 {
    static let names: [DecoderWeight: String] = [
        .attentionNorm: "input_layernorm.weight", .q: "self_attn.q_proj.weight", .k: "self_attn.k_proj.weight",
        .v: "self_attn.v_proj.weight", .o: "self_attn.o_proj.weight", .qNorm: "self_attn.q_norm.weight", .kNorm: "self_attn.k_norm.weight",
        .postAttentionNorm: "post_attention_layernorm.weight", .mlpNorm: "pre_feedforward_layernorm.weight",
        .gate: "mlp.gate_proj.weight", .up: "mlp.up_proj.weight", .down: "mlp.down_proj.weight",
        .postMLPNorm: "post_feedforward_layernorm.weight",
    ]

    /// Whether a folder's config.json describes a Gemma 3 model.
    public static func isGemma3(folder: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: folder + "/config.json"),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        let type = json["model_type"] as? String
        return type == "gemma3_text" || type == "gemma3" || (json["architectures"] as? [String])?.contains("Gemma3ForCausalLM") == true
    }

    /// (1 + w) from HF's w, trainable.
    static func scale(_ w: Tensor) -> Tensor {
        Tensor(shape: w.shape, w.scalars.map { 1 + $0 }, requiresGrad: true)
    }

    public static func load(folder: String) throws(ModelError) -> Gemma3 {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw .file(configPath, "cannot read") }
        let config: Gemma3Config
        do { config = try JSONDecoder().decode(Gemma3Config.self, from: data) } catch {
            throw .file(configPath, "not a Gemma 3 text config: \(describeJSONError(error, in: data))")
        }
        try config.validate()
        let spec = config.decoder()
        var reader = WeightReader(try Safetensors.read(folder + "/model.safetensors"))
        let c = config.embedding
        let rng = RandomGenerator(seed: 0)
        let layers = try reader.huggingFaceLayers(spec, names: names, rng: rng, normScale: scale)
        let embed = Embedding(weight: try reader.tensor("model.embed_tokens.weight", [config.vocabularySize, c]))
        let finalNorm = RMSNorm(weight: scale(try reader.tensor("model.norm.weight", [c])), eps: config.rmsNormEpsilon)
        var head: Linear? = nil
        if config.tiedEmbeddings {
            reader.allow { $0 == "lm_head.weight" }
        } else {
            head = Linear(weight: try reader.tensor("lm_head.weight", [config.vocabularySize, c]))
        }
        try reader.finish(folder)
        return Gemma3(config: config, embedTokens: embed, layers: layers, norm: finalNorm, lmHead: head, rng: rng)
    }

    /// The model's weights under HF's names (float weights only: merge adapters, or load a float model).
    public static func tensors(of model: Gemma3) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        func weight(_ name: String, _ layer: (any LinearLayer)?) throws {
            guard let l = layer as? Linear else { throw ModelError.weights("Gemma 3 export: \(name) is not a float Linear (merge adapters, or dequantize)") }
            out[name] = l.weight
        }
        func norm(_ name: String, _ n: (any NormLayer)?) throws {
            guard let r = n as? RMSNorm else { throw ModelError.weights("Gemma 3 export: \(name) is not an RMSNorm") }
            out[name] = Tensor(shape: r.weight.shape, r.weight.scalars.map { $0 - 1 })
        }
        guard let embed = model.embedTokens as? Embedding else { throw ModelError.weights("Gemma 3 export: the token table is not float weights") }
        out["model.embed_tokens.weight"] = embed.weight
        for (i, layer) in model.layers.enumerated() {
            let p = "model.layers.\(i)."
            for role in DecoderWeight.roles(model.spec) {
                if role.shape(model.spec) != nil { try weight(p + names[role]!, layer.projection(role)) } else { try norm(p + names[role]!, layer.normalization(role)) }
            }
        }
        try norm("model.norm.weight", model.norm)
        if let head = model.lmHead { try weight("lm_head.weight", head) }
        return out
    }

    /// Writes an HF Gemma 3 folder that `Gemma3ForCausalLM.from_pretrained` loads.
    public static func save(_ model: Gemma3, to folder: String) throws {
        try writeHuggingFaceFolder(config: model.config, tensors: try tensors(of: model), to: folder)
    }
}
