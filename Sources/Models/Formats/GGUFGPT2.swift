import Foundation
import NN
import Tensors

/// A GPT-2 GGUF file (general.architecture "gpt2", what `llm quantize` writes for our GPT models)
/// as a `GPT`, weights left in their blocks in the mapped file. Read as llama.cpp reads it
/// (src/models/gpt2.cpp):
///
///   gpt2.context_length, .embedding_length, .feed_forward_length (4·C), .block_count,
///   .attention.head_count, .attention.layer_norm_epsilon
///
/// Tensors: token_embd (V, C), also the output head when output.weight is absent · position_embd
/// (context, C) · per layer attn_norm.{weight,bias}, attn_qkv.{weight,bias} (3C, C: the rows of
/// q, then k, then v), attn_output, ffn_norm, ffn_up (4C, C), ffn_down, all with biases ·
/// output_norm.{weight,bias}. The fused qkv matrix is used as three row ranges of the mapping.
public enum GGUFGPT2 {
    public static func config(_ file: GGUFFile) throws(ModelError) -> GPTConfig {
        let arch = "gpt2"
        guard file["general.architecture"]?.string == arch else { throw .file(file.path, "general.architecture is not \"gpt2\"") }
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = file["\(arch).\(key)"]?.int, v > 0 else { throw .file(file.path, "missing or non-positive metadata \(arch).\(key)") }
            return v
        }
        guard let table = file.tensorInfo("token_embd.weight"), table.dims.count == 2 else {
            throw .file(file.path, "missing 2-D tensor token_embd.weight")
        }
        let embedding = try int("embedding_length"), heads = try int("attention.head_count")
        guard embedding % heads == 0 else { throw .file(file.path, "gpt2.embedding_length \(embedding) is not a multiple of the \(heads) heads") }
        if let f = file["\(arch).feed_forward_length"]?.int, f != 4 * embedding {
            throw .file(file.path, "gpt2.feed_forward_length is \(f); GPT-2's MLP is 4 × \(embedding) = \(4 * embedding) wide")
        }
        var config = GPTConfig(vocabularySize: table.dims[1], contextLength: try int("context_length"), embedding: embedding,
                               layers: try int("block_count"), heads: heads, tiedEmbeddings: file.tensorInfo("output.weight") == nil)
        config.layerNormEpsilon = Float(file["\(arch).attention.layer_norm_epsilon"]?.double ?? 1e-5)
        return config
    }

    public static func load(_ file: GGUFFile, arithmetic: GGUFModel.Arithmetic = .llamaCpp) throws(ModelError) -> GPT {
        let weights = GGUFWeights(file: file, ggml: arithmetic == .llamaCpp)
        let config = try config(file)
        let (c, v) = (config.embedding, config.vocabularySize)
        func vector(_ name: String, _ n: Int) throws(ModelError) -> Tensor {
            try weights.matrix(name, 1, n).dequantized().reshaped([n])
        }
        func norm(_ name: String) throws(ModelError) -> LayerNorm {
            LayerNorm(weight: try vector(name + ".weight", c), bias: try vector(name + ".bias", c), eps: config.layerNormEpsilon)
        }
        func linear(_ name: String, _ rows: Int, _ cols: Int) throws(ModelError) -> QuantizedLinear {
            QuantizedLinear(try weights.matrix(name + ".weight", rows, cols), bias: try vector(name + ".bias", rows), roundActivations: weights.ggml)
        }
        let rng = RandomGenerator(seed: 0)
        var layers: [DecoderLayer] = []
        for i in 0..<config.layers {
            let p = "blk.\(i)."
            let qkv = try weights.matrix(p + "attn_qkv.weight", 3 * c, c)
            let qkvBias = try vector(p + "attn_qkv.bias", 3 * c).scalars
            let parts = (0..<3).map { k in
                QuantizedLinear(QuantizedMatrix(type: qkv.type, rows: c, cols: c, bytes: qkv.bytes + k * c * qkv.rowBytes, owner: qkv),
                                bias: Tensor(Array(qkvBias[(k * c)..<((k + 1) * c)])), roundActivations: weights.ggml)
            }
            let roles: [DecoderWeight: QuantizedLinear] = [
                .q: parts[0], .k: parts[1], .v: parts[2], .o: try linear(p + "attn_output", c, c),
                .up: try linear(p + "ffn_up", 4 * c, c), .down: try linear(p + "ffn_down", c, 4 * c),
            ]
            let norms: [DecoderWeight: LayerNorm] = [.attentionNorm: try norm(p + "attn_norm"), .mlpNorm: try norm(p + "ffn_norm")]
            layers.append(DecoderLayer(config.decoder, index: i, rng: rng,
                                       linear: { role, _, _ in roles[role]! }, norm: { role, _ in norms[role]! }))
        }
        let model = GPT(config: config, embedTokens: try weights.embedding("token_embd.weight", v, c),
                        embedPositions: try weights.embedding("position_embd.weight", config.contextLength, c), layers: layers,
                        norm: try norm("output_norm"), lmHead: config.tiedEmbeddings ? nil : try weights.linear("output.weight", v, c), rng: rng)
        model.halfPrecisionAttention = weights.ggml
        model.halfPrecisionGELU = weights.ggml
        return model
    }
}
