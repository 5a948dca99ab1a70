import Foundation
import NN
import Tensors
import Tokenization

/// A tensor on its way into a GGUF file: its llama.cpp name, ggml dims (innermost first), the
/// type it is held in now, and a way to get its values as Float32 (only when it is written, so a
/// model is never copied whole).
public struct GGUFSourceTensor {
    public let name: String
    public let dims: [Int]
    /// F32 for a model in memory; the stored type for a tensor of a GGUF file.
    public let storedType: GGMLType
    /// The values, `dims.product` Float32 in ggml order (rows of dims[0]).
    public let values: () throws -> Tensor
    /// The tensor's own blocks in `storedType`, when it is held in blocks (a GGUF file's tensor, a
    /// quantized projection): written as they are when the target type is the stored one, as
    /// llama-quantize does.
    public let stored: (() throws -> QuantizedMatrix)?

    public init(name: String, dims: [Int], storedType: GGMLType = .f32, values: @escaping () throws -> Tensor,
                stored: (() throws -> QuantizedMatrix)? = nil) {
        self.name = name; self.dims = dims; self.storedType = storedType; self.values = values; self.stored = stored
    }

    public var count: Int { dims.reduce(1, *) }
    /// The layer of a "blk.N." tensor, −1 for the others.
    public var layer: Int {
        guard name.hasPrefix("blk.") else { return -1 }
        return Int(name.dropFirst(4).prefix { $0.isNumber }) ?? -1
    }
}

/// A model as GGUF metadata and named tensors, ready for `GGUFWriter` (through a quantizer or not).
public struct GGUFSource {
    public var architecture: String
    public var layers: Int
    /// Metadata without general.file_type, general.quantization_version and general.alignment,
    /// which the writer's caller sets.
    public var metadata: [(key: String, value: GGUFValue)]
    public var tensors: [GGUFSourceTensor]

    /// The GGUF tensor that holds projection `role` of layer `layer` in this architecture (GPT-2's
    /// q, k and v share attn_qkv).
    public func tensorName(layer: Int, role: DecoderWeight) -> String? {
        let p = "blk.\(layer)."
        if architecture == "gpt2" {
            switch role {
            case .q, .k, .v: return p + "attn_qkv.weight"
            case .o: return p + "attn_output.weight"
            case .up: return p + "ffn_up.weight"
            case .down: return p + "ffn_down.weight"
            default: return nil
            }
        }
        return ggufNames[role].map { p + $0 }
    }

    /// A GGUF file's tensors and metadata (to requantize it): every tensor dequantized to Float32
    /// when it is needed, exactly as ggml dequantizes it.
    public init(file: GGUFFile) throws(ModelError) {
        guard let arch = file["general.architecture"]?.string else { throw .file(file.path, "general.architecture is missing") }
        architecture = arch
        layers = file["\(arch).block_count"]?.int ?? 0
        let dropped: Set<String> = ["general.file_type", "general.quantization_version", "general.alignment"]
        metadata = file.metadata.filter { !dropped.contains($0.key) }
        tensors = []
        for info in file.tensors {
            guard let type = GGMLType(rawValue: info.type) else {
                throw .file(file.path, "tensor \(info.name) has type \(info.typeName), which cannot be read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K…Q6_K can)")
            }
            let name = info.name
            tensors.append(GGUFSourceTensor(name: name, dims: info.dims, storedType: type, values: { try file.matrix(name).dequantized() },
                                            stored: { try file.matrix(name) }))
        }
    }

    /// One of our models with its tokenizer: GPT as llama.cpp's "gpt2" architecture (fused qkv,
    /// biases, learned positions), Llama as "llama" (q and k rows permuted within each head to
    /// RoPE's adjacent pairs, as llama.cpp's converter does, unless they already are).
    public init(model: DecoderModel, name: String, tokenizer: (any TextTokenizer)?, bos: Int32?, eos: Int32?,
                chatTemplate: String?) throws {
        switch model {
        case let gpt as GPT: try self.init(gpt: gpt)
        case let llama as Llama: try self.init(llama: llama)
        default:
            throw ModelError.weights("GGUF export: \(model.summary) is not supported (GPT and Llama models are; a GGUF file can be requantized as it is)")
        }
        metadata.insert(("general.name", .string(name)), at: 1)
        if let tokenizer {
            metadata += try GGUFSource.vocabulary(tokenizer, vocabularySize: model.vocabularySize, bos: bos, eos: eos)
        }
        if let chatTemplate { metadata.append(("tokenizer.chat_template", .string(chatTemplate))) }
    }

    private init(gpt: GPT) throws {
        let c = gpt.config
        guard c.norm == .pre else { throw ModelError.weights("GGUF export: llama.cpp's gpt2 architecture is pre-norm; this GPT is post-norm") }
        architecture = "gpt2"
        layers = c.layers
        metadata = [
            ("general.architecture", .string("gpt2")),
            ("gpt2.context_length", .u32(c.contextLength)), ("gpt2.embedding_length", .u32(c.embedding)),
            ("gpt2.feed_forward_length", .u32(4 * c.embedding)), ("gpt2.block_count", .u32(c.layers)),
            ("gpt2.attention.head_count", .u32(c.heads)), ("gpt2.attention.layer_norm_epsilon", .f32(c.layerNormEpsilon)),
        ]
        var out: [GGUFSourceTensor] = []
        out.append(try .table("token_embd.weight", gpt.embedTokens))
        guard let positions = gpt.embedPositions else { throw ModelError.weights("GGUF export: the GPT has no position table") }
        out.append(try .table("position_embd.weight", positions))
        for (i, layer) in gpt.layers.enumerated() {
            let p = "blk.\(i)."
            let a = layer.attention
            out += try GGUFSourceTensor.norm(p + "attn_norm", layer.attentionNorm, bias: true)
            let parts = [a.q, a.k, a.v]
            // Quantized q, k and v of one type (after GPTQ) keep their blocks, stacked.
            let blocks = parts.compactMap { ($0 as? QuantizedLinear)?.weight }
            let sameType = blocks.count == 3 && blocks.allSatisfy { $0.type == blocks[0].type }
            out.append(GGUFSourceTensor(name: p + "attn_qkv.weight", dims: [c.embedding, 3 * c.embedding],
                                        storedType: sameType ? blocks[0].type : .f32,
                                        values: { Tensor.concat(try parts.map { try floatWeight($0, name: "GGUF export: " + p + "attn_qkv").weight }, axis: 0) },
                                        stored: sameType ? { QuantizedMatrix.stacking(blocks) } : nil))
            out.append(GGUFSourceTensor(name: p + "attn_qkv.bias", dims: [3 * c.embedding]) {
                Tensor.concat(try parts.map { try floatWeight($0, name: "GGUF export: " + p + "attn_qkv").bias ?? Tensor(zeros: [$0.outFeatures]) }, axis: 0)
            })
            out += try GGUFSourceTensor.linear(p + "attn_output", a.o, bias: true)
            out += try GGUFSourceTensor.norm(p + "ffn_norm", layer.mlpNorm, bias: true)
            out += try GGUFSourceTensor.linear(p + "ffn_up", layer.mlp.up, bias: true)
            out += try GGUFSourceTensor.linear(p + "ffn_down", layer.mlp.down, bias: true)
        }
        out += try GGUFSourceTensor.norm("output_norm", gpt.norm, bias: true)
        if let head = gpt.lmHead { out += try GGUFSourceTensor.linear("output", head, bias: false) }
        tensors = out
    }

    private init(llama: Llama) throws {
        let c = llama.config
        guard c.slidingWindow == nil else { throw ModelError.weights("GGUF export: llama.cpp's llama architecture has no sliding window (this model uses \(c.slidingWindow!))") }
        architecture = "llama"
        layers = c.layers
        metadata = [
            ("general.architecture", .string("llama")),
            ("llama.vocab_size", .u32(c.vocabularySize)),
            ("llama.context_length", .u32(c.contextLength)), ("llama.embedding_length", .u32(c.embedding)),
            ("llama.block_count", .u32(c.layers)), ("llama.feed_forward_length", .u32(c.hidden)),
            ("llama.rope.dimension_count", .u32(c.headSize)),
            ("llama.attention.head_count", .u32(c.heads)), ("llama.attention.head_count_kv", .u32(c.kvHeads)),
            ("llama.attention.layer_norm_rms_epsilon", .f32(c.rmsNormEpsilon)), ("llama.rope.freq_base", .f32(c.ropeBase)),
        ]
        if c.headSize * c.heads != c.embedding {
            metadata += [("llama.attention.key_length", .u32(c.headSize)), ("llama.attention.value_length", .u32(c.headSize))]
        }
        var out: [GGUFSourceTensor] = []
        // RoPE: linear scaling is metadata; any other change of the frequencies (Llama 3's) goes
        // into rope_freqs.weight as the factor each frequency is divided by.
        let plain = (0..<(c.headSize / 2)).map { i in Float(pow(Double(c.ropeBase), -2 * Double(i) / Double(c.headSize))) }
        if let s = c.ropeScaling, s.type == "linear" {
            metadata += [("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .f32(s.factor))]
        } else if llama.spec.ropeFrequencies.count == plain.count, llama.spec.ropeFrequencies != plain {
            let factors = zip(plain, llama.spec.ropeFrequencies).map { $0 / $1 }
            out.append(GGUFSourceTensor(name: "rope_freqs.weight", dims: [factors.count]) { Tensor(shape: [factors.count], factors) })
        }
        out.append(try .table("token_embd.weight", llama.embedTokens))
        let permute = llama.spec.ropePairing == .halves
        for (i, layer) in llama.layers.enumerated() {
            let p = "blk.\(i)."
            let a = layer.attention
            out += try GGUFSourceTensor.norm(p + "attn_norm", layer.attentionNorm, bias: false)
            out += try GGUFSourceTensor.linear(p + "attn_q", a.q, bias: false, ropeHeads: permute ? c.heads : nil)
            out += try GGUFSourceTensor.linear(p + "attn_k", a.k, bias: false, ropeHeads: permute ? c.kvHeads : nil)
            out += try GGUFSourceTensor.linear(p + "attn_v", a.v, bias: false)
            out += try GGUFSourceTensor.linear(p + "attn_output", a.o, bias: false)
            out += try GGUFSourceTensor.norm(p + "ffn_norm", layer.mlpNorm, bias: false)
            guard let gate = layer.mlp.gate else { throw ModelError.weights("GGUF export: layer \(i) has no gate projection") }
            out += try GGUFSourceTensor.linear(p + "ffn_gate", gate, bias: false)
            out += try GGUFSourceTensor.linear(p + "ffn_up", layer.mlp.up, bias: false)
            out += try GGUFSourceTensor.linear(p + "ffn_down", layer.mlp.down, bias: false)
        }
        out += try GGUFSourceTensor.norm("output_norm", llama.norm, bias: false)
        if let head = llama.lmHead { out += try GGUFSourceTensor.linear("output", head, bias: false) }
        tensors = out
    }

    /// llama.cpp's tokenizer metadata for a byte-level BPE ("gpt2" model: tokens spelled in GPT-2's
    /// byte alphabet, merges in rank order, special tokens as control tokens) or a SentencePiece
    /// model ("llama": pieces, scores, token types). Rows of the embedding past the tokenizer's
    /// vocabulary get unused "[PADn]" tokens, as llama.cpp's converter writes them.
    public static func vocabulary(_ tokenizer: any TextTokenizer, vocabularySize: Int, bos: Int32?, eos: Int32?) throws -> [(key: String, value: GGUFValue)] {
        var meta: [(key: String, value: GGUFValue)] = []
        var tokens: [String], types: [Int32]
        switch tokenizer {
        case let bpe as Tokenizer:
            let spelled = bpe.spelledVocabulary()
            tokens = spelled.tokens
            types = spelled.types
            let pre: String
            switch bpe.pattern {
            case .gpt2: pre = "gpt-2"
            case .gpt2Digits: pre = "smollm"
            case .gpt4: pre = "llama-bpe"
            }
            meta += [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre))]
            meta.append(("tokenizer.ggml.merges", .strings(spelled.merges)))
        case let sp as SentencePieceTokenizer:
            let file = sp.modelFile()
            tokens = file.pieces.map { String(decoding: $0.text, as: UTF8.self) }
            types = file.pieces.map { Int32($0.type.rawValue) }     // sentencepiece's numbering is GGUF's
            let scores = file.pieces.map(\.score) + [Float](repeating: -1000, count: max(0, vocabularySize - tokens.count))
            meta += [("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.scores", .float32s(scores))]
            if let unk = sp.unk { meta.append(("tokenizer.ggml.unknown_token_id", .u32(Int(unk)))) }
            if let pad = sp.pad { meta.append(("tokenizer.ggml.padding_token_id", .u32(Int(pad)))) }
            meta.append(("tokenizer.ggml.add_space_prefix", .bool(file.normalizer.addDummyPrefix)))
        default:
            throw ModelError.weights("GGUF export: a \(type(of: tokenizer)) cannot be written as a GGUF vocabulary (byte-level BPE and SentencePiece can)")
        }
        guard tokens.count <= vocabularySize else {
            throw ModelError.weights("GGUF export: the tokenizer has \(tokens.count) tokens, more than the model's \(vocabularySize) embedding rows")
        }
        for i in tokens.count..<vocabularySize {
            tokens.append("[PAD\(i)]")
            types.append(5)                  // unused
        }
        meta.insert(("tokenizer.ggml.tokens", .strings(tokens)), at: 1)
        meta.insert(("tokenizer.ggml.token_type", .int32s(types)), at: 2)
        // A model that starts texts with no BOS still names one (GPT-2's is its end of text).
        if let id = bos ?? eos { meta.append(("tokenizer.ggml.bos_token_id", .u32(Int(id)))) }
        if let eos { meta.append(("tokenizer.ggml.eos_token_id", .u32(Int(eos)))) }
        meta.append(("tokenizer.ggml.add_bos_token", .bool(bos != nil)))
        return meta
    }
}

extension GGUFSourceTensor {
    /// A token or position table.
    static func table(_ name: String, _ table: any TokenEmbedding) throws -> GGUFSourceTensor {
        switch table {
        case let e as Embedding:
            return GGUFSourceTensor(name: name, dims: [e.weight.shape[1], e.weight.shape[0]]) { e.weight }
        case let q as QuantizedEmbedding:
            return GGUFSourceTensor(name: name, dims: [q.weight.cols, q.weight.rows], storedType: q.weight.type,
                                    values: { q.weight.dequantized() }, stored: { q.weight })
        default:
            throw ModelError.weights("GGUF export: \(name) is a \(type(of: table)), not a weight table")
        }
    }

    /// A projection's weight (out, in) → dims [in, out], and its bias; zeros when the format needs
    /// a bias the model does not have (llama.cpp's gpt2). Rows of a RoPE projection permuted
    /// within each of `ropeHeads` heads from HF's halves to adjacent pairs.
    static func linear(_ name: String, _ layer: any LinearLayer, bias: Bool, ropeHeads: Int? = nil) throws -> [GGUFSourceTensor] {
        let (rows, cols) = (layer.outFeatures, layer.inFeatures)
        var stored: (() throws -> QuantizedMatrix)? = nil
        if let q = layer as? QuantizedLinear {
            stored = { ropeHeads.map { q.weight.gatheringRows(adjacentPairOrder(rows: rows, heads: $0)) } ?? q.weight }
        }
        var out = [GGUFSourceTensor(name: name + ".weight", dims: [cols, rows], storedType: storedType(layer), values: {
            let w = try floatWeight(layer, name: "GGUF export: " + name).weight
            return ropeHeads.map { adjacentPairs(w, heads: $0) } ?? w
        }, stored: stored)]
        if bias {
            out.append(GGUFSourceTensor(name: name + ".bias", dims: [rows]) { try floatWeight(layer, name: "GGUF export: " + name).bias ?? Tensor(zeros: [rows]) })
        }
        return out
    }

    /// A LayerNorm's weight (and bias, zeros when absent) or an RMSNorm's weight.
    static func norm(_ name: String, _ norm: any NormLayer, bias: Bool) throws -> [GGUFSourceTensor] {
        switch norm {
        case let ln as LayerNorm:
            let n = ln.weight.count
            var out = [GGUFSourceTensor(name: name + ".weight", dims: [n]) { ln.weight }]
            if bias { out.append(GGUFSourceTensor(name: name + ".bias", dims: [n]) { ln.bias ?? Tensor(zeros: [n]) }) }
            return out
        case let rms as RMSNorm:
            guard !bias else { throw ModelError.weights("GGUF export: \(name) is an RMSNorm where the format has a LayerNorm") }
            return [GGUFSourceTensor(name: name + ".weight", dims: [rms.weight.count]) { rms.weight }]
        default:
            throw ModelError.weights("GGUF export: \(name) is a \(type(of: norm)), not a LayerNorm or RMSNorm")
        }
    }

    static func storedType(_ layer: any LinearLayer) -> GGMLType { (layer as? QuantizedLinear)?.weight.type ?? .f32 }

    /// HF q/k rows (per head: the D/2 first halves, then the second halves) → llama.cpp's order
    /// (per head: row 2i + j holds HF row j·D/2 + i).
    static func adjacentPairs(_ w: Tensor, heads: Int) -> Tensor {
        let (rows, cols) = (w.shape[0], w.shape[1])
        let out = Tensor(zeros: [rows, cols])
        for (to, from) in adjacentPairOrder(rows: rows, heads: heads).enumerated() {
            (out.data + to * cols).update(from: w.data + from * cols, count: cols)
        }
        return out
    }

    /// For each GGUF row, the HF row it holds: per head of D rows, row 2i + j ← row j·D/2 + i.
    static func adjacentPairOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads, half = d / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 { order[h * d + 2 * i + j] = h * d + j * half + i }
            }
        }
        return order
    }
}

/// A projection's float weight (out, in) and bias (`floatLinear`: a quantized one dequantized).
/// Adapters must be merged first: a `LoRALinear` (or anything else) is an error naming `name`.
public func floatWeight(_ layer: any LinearLayer, name: String) throws -> (weight: Tensor, bias: Tensor?) {
    guard layer is Linear || layer is QuantizedLinear else {
        throw ModelError.weights("\(name) is a \(type(of: layer)) (merge adapters into the weights first)")
    }
    let l = floatLinear(layer)
    return (l.weight, l.bias)
}
