import Foundation
import NN
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
    static let names: [LlamaWeight: String] = [
        .inputNorm: "input_layernorm.weight", .q: "self_attn.q_proj.weight", .k: "self_attn.k_proj.weight",
        .v: "self_attn.v_proj.weight", .o: "self_attn.o_proj.weight", .postAttentionNorm: "post_attention_layernorm.weight",
        .gate: "mlp.gate_proj.weight", .up: "mlp.up_proj.weight", .down: "mlp.down_proj.weight",
    ]

    /// Whether a folder's config.json describes a Llama model.
    public static func isLlama(folder: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: folder + "/config.json"),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        return json["model_type"] as? String == "llama" || (json["architectures"] as? [String])?.contains("LlamaForCausalLM") == true
    }

    public static func load(folder: String) throws(ModelError) -> Llama {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else { throw .file(configPath, "cannot read") }
        let config: LlamaConfig
        do { config = try JSONDecoder().decode(LlamaConfig.self, from: data) } catch {
            throw .file(configPath, "not a Llama config: \(error)")
        }
        try config.validate()
        let file = try Safetensors.read(folder + "/model.safetensors")
        var used = Set<String>()
        func tensor(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor {
            guard file.entries[name] != nil else { throw .file(file.path, "missing tensor \(name)") }
            let t = try file.tensor(name)
            guard t.shape == shape else {
                throw .file(file.path, "\(name): expected \(Shape.describe(shape)), got \(Shape.describe(t.shape))")
            }
            used.insert(name)
            t.requiresGrad = true
            return t
        }
        func linear(_ name: String, _ outF: Int, _ inF: Int) throws(ModelError) -> Linear {
            let l = Linear(inF, outF, bias: false, rng: RandomGenerator(seed: 0))
            l.weight = try tensor(name, [outF, inF])
            return l
        }
        func norm(_ name: String) throws(ModelError) -> RMSNorm {
            let n = RMSNorm(config.embedding, eps: config.rmsNormEpsilon)
            n.weight = try tensor(name, [config.embedding])
            return n
        }
        let c = config.embedding
        let embed = Embedding(config.vocabularySize, c, rng: RandomGenerator(seed: 0))
        embed.weight = try tensor("model.embed_tokens.weight", [config.vocabularySize, c])
        var blocks: [LlamaBlock] = []
        for i in 0..<config.layers {
            let p = "model.layers.\(i)."
            blocks.append(try LlamaBlock(config, linear: { w, rows, cols throws(ModelError) in try linear(p + names[w]!, rows, cols) },
                                         norm: { w throws(ModelError) in try norm(p + names[w]!) }))
        }
        let finalNorm = try norm("model.norm.weight")
        var head: Linear? = nil
        if config.tiedEmbeddings {
            used.insert("lm_head.weight")          // a saved copy of the tied matrix is allowed
        } else {
            head = try linear("lm_head.weight", config.vocabularySize, c)
        }
        let unexpected = file.entries.keys.filter { !used.contains($0) && !$0.hasSuffix("rotary_emb.inv_freq") }.sorted()
        if !unexpected.isEmpty { throw .file(file.path, "unexpected tensors: " + unexpected.joined(separator: ", ")) }
        return Llama(config: config, embedTokens: embed, layers: blocks, norm: finalNorm, lmHead: head, ropePairing: .halves)
    }
}
