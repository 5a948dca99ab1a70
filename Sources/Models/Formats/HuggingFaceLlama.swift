import Foundation
import NN
import Tokenization
import Tensors

/// A Hugging Face `LlamaForCausalLM` folder: `config.json` + `model.safetensors`, with HF's names
///
///   model.embed_tokens.weight                         (V, C)
///   model.layers.N.input_layernorm.weight             (C)
///   model.layers.N.self_attn.{q,k,v,o}_proj.weight    (H·D, C), (Hkv·D, C), (Hkv·D, C), (C, H·D)
///   model.layers.N.post_attention_layernorm.weight    (C)
///   model.layers.N.mlp.{gate,up,down}_proj.weight     (F, C), (F, C), (C, F)
///   model.norm.weight                                 (C)
///   lm_head.weight                                    (V, C), absent when tied
///
/// Weights become float `Linear`s (trainable). Q and K rows are in HF's order, so RoPE pairs
/// feature i with i + D/2.
public enum HuggingFaceLlama {
    /// Hugging Face's names for the weights of layer N (after "model.layers.N.").
    static let names: [DecoderWeight: String] = [
        .attentionNorm: "input_layernorm.weight", .q: "self_attn.q_proj.weight", .k: "self_attn.k_proj.weight",
        .v: "self_attn.v_proj.weight", .o: "self_attn.o_proj.weight", .mlpNorm: "post_attention_layernorm.weight",
        .gate: "mlp.gate_proj.weight", .up: "mlp.up_proj.weight", .down: "mlp.down_proj.weight",
    ]

    /// Whether a folder's config.json describes a Llama model.
    public static func isLlama(folder: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: folder + "/config.json"),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        let type = json["model_type"] as? String
        return type == "llama" || type == "mistral" || (json["architectures"] as? [String])?.contains("LlamaForCausalLM") == true
    }

    public static func load(folder: String) throws(ModelError) -> Llama {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw .file(configPath, "cannot read") }
        let config: LlamaConfig
        do { config = try JSONDecoder().decode(LlamaConfig.self, from: data) } catch {
            throw .file(configPath, "not a Llama config: \(describeJSONError(error, in: data))")
        }
        try config.validate()
        let spec = config.decoder()
        var reader = WeightReader(try Safetensors.read(folder + "/model.safetensors"))
        let c = config.embedding
        let rng = RandomGenerator(seed: 0)
        let layers = try reader.huggingFaceLayers(spec, names: names, rng: rng)
        let embed = Embedding(weight: try reader.tensor("model.embed_tokens.weight", [config.vocabularySize, c]))
        let finalNorm = RMSNorm(weight: try reader.tensor("model.norm.weight", [c]), eps: config.rmsNormEpsilon)
        var head: Linear? = nil
        if config.tiedEmbeddings {
            reader.allow { $0 == "lm_head.weight" }          // a saved copy of the tied matrix is allowed
        } else {
            head = Linear(weight: try reader.tensor("lm_head.weight", [config.vocabularySize, c]))
        }
        reader.allow { $0.hasSuffix("rotary_emb.inv_freq") }
        try reader.finish(folder)
        return Llama(config: config, embedTokens: embed, layers: layers, norm: finalNorm, lmHead: head, rng: rng)
    }

    /// The model's weights under HF's names. Float weights in HF's layout only (a GGUF model's
    /// Q/K rows are permuted for llama.cpp's RoPE and its weights quantized: not exportable here).
    public static func tensors(of model: Llama) throws -> [String: Tensor] {
        guard model.spec.ropePairing == .halves else { throw ModelError.weights("Llama export: the model's Q/K rows are in llama.cpp's order") }
        var out: [String: Tensor] = [:]
        func weight(_ name: String, _ layer: any LinearLayer) throws {
            guard let l = layer as? Linear else { throw ModelError.weights("Llama export: \(name) is not a float Linear (merge adapters, or dequantize)") }
            out[name] = l.weight
        }
        func norm(_ name: String, _ n: any NormLayer) throws {
            guard let r = n as? RMSNorm else { throw ModelError.weights("Llama export: \(name) is not an RMSNorm") }
            out[name] = r.weight
        }
        guard let embed = model.embedTokens as? Embedding else { throw ModelError.weights("Llama export: the token table is not float weights") }
        out["model.embed_tokens.weight"] = embed.weight
        for (i, layer) in model.layers.enumerated() {
            let p = "model.layers.\(i)."
            let a = layer.attention
            try norm(p + names[.attentionNorm]!, layer.attentionNorm)
            try weight(p + names[.q]!, a.q); try weight(p + names[.k]!, a.k); try weight(p + names[.v]!, a.v); try weight(p + names[.o]!, a.o)
            try norm(p + names[.mlpNorm]!, layer.mlpNorm)
            try weight(p + names[.gate]!, layer.mlp.gate!); try weight(p + names[.up]!, layer.mlp.up); try weight(p + names[.down]!, layer.mlp.down)
        }
        try norm("model.norm.weight", model.norm)
        if let head = model.lmHead { try weight("lm_head.weight", head) }
        return out
    }

    /// Writes an HF Llama folder that `LlamaForCausalLM.from_pretrained` loads.
    public static func save(_ model: Llama, to folder: String) throws {
        try writeHuggingFaceFolder(config: model.config, tensors: try tensors(of: model), to: folder)
    }
}

/// A model folder of any architecture the project reads: config.json's `model_type` picks the loader.
public enum ModelFolder {
    public static func load(_ folder: String) throws -> DecoderModel {
        if HuggingFaceGemma3.isGemma3(folder: folder) { return try HuggingFaceGemma3.load(folder: folder) }
        if HuggingFaceLlama.isLlama(folder: folder) { return try HuggingFaceLlama.load(folder: folder) }
        return try HuggingFaceGPT2.load(folder: folder)
    }
}
