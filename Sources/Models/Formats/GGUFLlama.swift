import Foundation
import NN
import Tensors
import Tokenization

/// A Llama-architecture GGUF file as a `Llama`, weights left in their blocks in the mapped file.
///
/// Metadata (arch = general.architecture, "llama"):
///   {arch}.context_length, .embedding_length, .block_count, .feed_forward_length,
///   .attention.head_count, .attention.head_count_kv, .attention.layer_norm_rms_epsilon,
///   .rope.freq_base, .rope.dimension_count, .rope.scaling.type/.factor, .vocab_size
/// Tensors (ggml dims are innermost first, so (C, V) in the file is our (V, C)):
///   token_embd.weight (V, C) · blk.N.attn_norm.weight (C) · blk.N.attn_{q,k,v,output}.weight
///   blk.N.ffn_norm.weight (C) · blk.N.ffn_{gate,up,down}.weight · output_norm.weight (C)
///   output.weight (V, C), absent when tied · rope_freqs.weight (D/2), optional
///
/// llama.cpp's converter permutes the rows of Q and K within each head so that RoPE rotates
/// adjacent features (2i, 2i+1) instead of HF's (i, i + D/2): GGUF row 2i+j of a head holds HF row
/// j·D/2 + i. Rather than undo that (a copy), the model applies RoPE with `.adjacent` pairing,
/// which gives the same scores (q and k are permuted alike, v and o not at all).
public enum GGUFLlama {
    public static func config(_ file: GGUFFile) throws(ModelError) -> LlamaConfig {
        let arch = file["general.architecture"]?.string ?? "(none)"
        guard arch == "llama" else { throw .file(file.path, "general.architecture is \"\(arch)\"; only \"llama\" models are supported") }
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = file["\(arch).\(key)"]?.int else { throw .file(file.path, "missing or non-integer metadata \(arch).\(key)") }
            return v
        }
        let embedding = try int("embedding_length"), heads = try int("attention.head_count")
        guard let table = file.tensorInfo("token_embd.weight"), table.dims.count == 2 else {
            throw .file(file.path, "missing 2-D tensor token_embd.weight")
        }
        let vocab = file["\(arch).vocab_size"]?.int ?? table.dims[1]
        var config = LlamaConfig(
            vocabularySize: vocab, contextLength: try int("context_length"), embedding: embedding,
            hidden: try int("feed_forward_length"), layers: try int("block_count"), heads: heads,
            kvHeads: file["\(arch).attention.head_count_kv"]?.int ?? heads,
            headSize: file["\(arch).rope.dimension_count"]?.int ?? file["\(arch).attention.key_length"]?.int ?? embedding / heads,
            rmsNormEpsilon: Float(file["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5),
            ropeBase: Float(file["\(arch).rope.freq_base"]?.double ?? 10000),
            tiedEmbeddings: file.tensorInfo("output.weight") == nil)
        switch file["\(arch).rope.scaling.type"]?.string ?? "none" {
        case "none": break
        case "linear":
            let factor = Float(file["\(arch).rope.scaling.factor"]?.double ?? 1)
            if factor != 1 { config.ropeScaling = .init(type: "linear", factor: factor) }
        case let other: throw .file(file.path, "\(arch).rope.scaling.type \"\(other)\" is not supported (none, linear are)")
        }
        try config.validate()
        return config
    }

    /// How the model computes with its quantized weights (see `GGUFModel.Arithmetic`).
    public typealias Arithmetic = GGUFModel.Arithmetic

    public static func load(_ file: GGUFFile, arithmetic: Arithmetic = .llamaCpp) throws(ModelError) -> Llama {
        let weights = GGUFWeights(file: file, ggml: arithmetic == .llamaCpp)
        let config = try config(file)
        let (c, v) = (config.embedding, config.vocabularySize)
        var factors: [Float]? = nil
        if file.tensorInfo("rope_freqs.weight") != nil {
            factors = try weights.matrix("rope_freqs.weight", 1, config.headSize / 2).dequantized().scalars
        }
        let spec = config.decoder(ropePairing: .adjacent, ropeFrequencyFactors: factors)
        let rng = RandomGenerator(seed: 0)
        var blocks: [DecoderLayer] = []
        for i in 0..<config.layers {
            blocks.append(try weights.layer(spec, index: i, names: ggufNames, eps: config.rmsNormEpsilon, rng: rng))
        }
        let model = Llama(config: config, spec: spec, embedTokens: try weights.embedding("token_embd.weight", v, c), layers: blocks,
                          norm: try weights.rmsNorm("output_norm.weight", c, eps: config.rmsNormEpsilon),
                          lmHead: config.tiedEmbeddings ? nil : try weights.linear("output.weight", v, c), rng: rng)
        model.halfPrecisionAttention = weights.ggml
        model.halfPrecisionGELU = weights.ggml
        return model
    }
}

/// llama.cpp's tensor names for the weights of layer N (after "blk.N."), every architecture's
/// (a layer uses the roles its config has).
let ggufNames: [DecoderWeight: String] = [
    .attentionNorm: "attn_norm.weight", .q: "attn_q.weight", .k: "attn_k.weight", .v: "attn_v.weight", .o: "attn_output.weight",
    .qNorm: "attn_q_norm.weight", .kNorm: "attn_k_norm.weight", .postAttentionNorm: "post_attention_norm.weight",
    .mlpNorm: "ffn_norm.weight", .gate: "ffn_gate.weight", .up: "ffn_up.weight", .down: "ffn_down.weight",
    .postMLPNorm: "post_ffw_norm.weight",
]

/// The tokenizer and chat facts a GGUF file carries. `tokenizer.ggml.model` says which kind:
/// "gpt2" (byte-level BPE with merges: SmolLM2, Llama 3) or "llama" (SentencePiece pieces with
/// scores and byte fallback: Gemma, Llama 2).
public struct GGUFVocabulary {
    public let tokenizer: any TextTokenizer
    public let bos: Int32?
    public let eos: Int32?
    /// Whether text starts with BOS (tokenizer.ggml.add_bos_token; llama.cpp's default is no for
    /// "gpt2" vocabularies, yes for "llama" ones).
    public let addBos: Bool
    /// The Jinja chat template (tokenizer.chat_template), if any.
    public let chatTemplate: String?

    public init(_ file: GGUFFile) throws(ModelError) {
        guard let model = file["tokenizer.ggml.model"]?.string else { throw .file(file.path, "no tokenizer (tokenizer.ggml.model is missing)") }
        guard let tokens = file["tokenizer.ggml.tokens"]?.strings else { throw .file(file.path, "tokenizer.ggml.tokens is missing or not strings") }
        let types = file["tokenizer.ggml.token_type"]?.array?.compactMap { $0.int.map(Int32.init) }
        func id(_ key: String) -> Int32? {
            guard let v = file[key]?.int, v >= 0, v < tokens.count else { return nil }
            return Int32(v)
        }
        bos = id("tokenizer.ggml.bos_token_id")
        eos = id("tokenizer.ggml.eos_token_id")
        do {
            switch model {
            case "llama":
                let scores = file["tokenizer.ggml.scores"]?.array?.compactMap { $0.double.map(Float.init) }
                tokenizer = try SentencePieceTokenizer.fromGGUF(
                    tokens: tokens, scores: scores, tokenTypes: types, bos: bos.map(UInt32.init), eos: eos.map(UInt32.init),
                    unk: id("tokenizer.ggml.unknown_token_id").map(UInt32.init), pad: id("tokenizer.ggml.padding_token_id").map(UInt32.init),
                    addSpacePrefix: file["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
            default:
                tokenizer = try Tokenizer.fromGGUF(model: model, tokens: tokens, merges: file["tokenizer.ggml.merges"]?.strings ?? [],
                                                   tokenTypes: types, pre: file["tokenizer.ggml.pre"]?.string)
            }
        } catch { throw .file(file.path, error.description) }
        addBos = file["tokenizer.ggml.add_bos_token"]?.bool ?? (model == "llama")
        chatTemplate = file["tokenizer.chat_template"]?.string
    }
}
