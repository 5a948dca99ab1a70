import Foundation
import NN
import Tensors

/// A Gemma 3 GGUF file (general.architecture "gemma3") as a `Gemma3`, weights left in their
/// blocks in the mapped file. Read as llama.cpp reads it (src/models/gemma3.cpp):
///
///   gemma3.context_length, .embedding_length, .block_count, .feed_forward_length,
///   .attention.head_count, .attention.head_count_kv, .attention.key_length (D),
///   .attention.layer_norm_rms_epsilon, .rope.freq_base (global layers),
///   .rope.freq_base_swa (sliding-window layers; absent: 10 000), .rope.scaling.type/.factor,
///   .attention.sliding_window, .attention.sliding_window_pattern (absent: 6, every sixth layer
///   global), .final_logit_softcapping (absent: none)
///   Scores are scaled by 1/√D (the 27B model, 62 layers: 1/√(C/H), as llama.cpp hard-codes).
///
/// Tensors: token_embd (V, C), also the output head when output.weight is absent · per layer
/// attn_norm, attn_q/k/v/output, attn_q_norm and attn_k_norm (D), post_attention_norm, ffn_norm,
/// ffn_gate/up/down, post_ffw_norm · output_norm. The converter has already added Gemma's 1 to
/// every norm weight, so they scale as stored. Q and K rows are in HF's order (RoPE pairs i with
/// i + D/2: llama.cpp's NEOX rotation).
public enum GGUFGemma3 {
    public static func config(_ file: GGUFFile) throws(ModelError) -> Gemma3Config {
        let arch = "gemma3"
        guard file["general.architecture"]?.string == arch else {
            throw .file(file.path, "general.architecture is not \"gemma3\"")
        }
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = file["\(arch).\(key)"]?.int else { throw .file(file.path, "missing or non-integer metadata \(arch).\(key)") }
            return v
        }
        func float(_ key: String) -> Float? { file["\(arch).\(key)"]?.double.map(Float.init) }
        let embedding = try int("embedding_length"), heads = try int("attention.head_count"), layers = try int("block_count")
        guard let table = file.tensorInfo("token_embd.weight"), table.dims.count == 2 else {
            throw .file(file.path, "missing 2-D tensor token_embd.weight")
        }
        let headSize = file["\(arch).attention.key_length"]?.int ?? embedding / heads
        var local: [Bool]
        if let flags = file["\(arch).attention.sliding_window_pattern"]?.array {
            local = flags.map { $0.bool ?? false }
        } else {
            local = Gemma3Config.pattern(layers: layers, every: file["\(arch).attention.sliding_window_pattern"]?.int ?? 6)
        }
        let window = file["\(arch).attention.sliding_window"]?.int ?? 0
        if window <= 0 { local = Array(repeating: false, count: layers) }
        var config = Gemma3Config(
            vocabularySize: file["\(arch).vocab_size"]?.int ?? table.dims[1], contextLength: try int("context_length"),
            embedding: embedding, hidden: try int("feed_forward_length"), layers: layers, heads: heads,
            kvHeads: file["\(arch).attention.head_count_kv"]?.int ?? heads, headSize: headSize,
            rmsNormEpsilon: float("attention.layer_norm_rms_epsilon") ?? 1e-6,
            queryPreAttentionScalar: layers == 62 ? Float(embedding / heads) : Float(headSize),
            slidingWindow: max(window, 1), localLayers: local,
            ropeBase: float("rope.freq_base") ?? 1_000_000, localRopeBase: float("rope.freq_base_swa") ?? 10_000)
        switch file["\(arch).rope.scaling.type"]?.string ?? "none" {
        case "none": break
        case "linear":
            let factor = float("rope.scaling.factor") ?? 1
            if factor != 1 { config.ropeScalingFactor = factor }
        case let other: throw .file(file.path, "\(arch).rope.scaling.type \"\(other)\" is not supported (none, linear are)")
        }
        if let cap = float("final_logit_softcapping"), cap != 0 { config.finalLogitSoftcap = cap }
        if let cap = float("attn_logit_softcapping"), cap != 0 { config.attentionSoftcap = cap }
        config.tiedEmbeddings = file.tensorInfo("output.weight") == nil
        do { try config.validate() } catch { throw .file(file.path, error.description) }
        return config
    }

    public static func load(_ file: GGUFFile, arithmetic: GGUFModel.Arithmetic = .llamaCpp) throws(ModelError) -> Gemma3 {
        let weights = GGUFWeights(file: file, ggml: arithmetic == .llamaCpp)
        let config = try config(file)
        let spec = config.decoder()
        let (c, v) = (config.embedding, config.vocabularySize)
        let rng = RandomGenerator(seed: 0)
        var blocks: [DecoderLayer] = []
        for i in 0..<config.layers {
            blocks.append(try weights.layer(spec, index: i, names: ggufNames, eps: config.rmsNormEpsilon, rng: rng))
        }
        let model = Gemma3(config: config, embedTokens: try weights.embedding("token_embd.weight", v, c), layers: blocks,
                           norm: try weights.rmsNorm("output_norm.weight", c, eps: config.rmsNormEpsilon),
                           lmHead: config.tiedEmbeddings ? nil : try weights.linear("output.weight", v, c), rng: rng)
        model.halfPrecisionAttention = weights.ggml
        model.halfPrecisionGELU = weights.ggml
        return model
    }
}
