import Foundation
import Models
import NN
import Testing
import Tensors
import Tokenization

/// Llama against Hugging Face transformers and gguf-py (fixtures from
/// scripts/fixtures/make_llama_fixtures.py): a small random LlamaForCausalLM (GQA 4/2 heads, RoPE
/// base 50000, tied embeddings), the same weights written as GGUF with llama.cpp's Q/K row
/// permutation, and block-format test vectors from gguf-py's reference quantizers.
@Suite struct LlamaParity {
    static let folder = GPTParity.fixtures.appendingPathComponent("llama-tiny")
    static let reference = try! JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("reference.json"))) as! [String: Any]
    static var ids: [Int32] { (reference["input_ids"] as! [Int]).map(Int32.init) }

    static func maxDifference(_ logits: Tensor, _ expected: Any?) -> Float {
        let want = (expected as! [[Double]]).flatMap { $0 }.map(Float.init)
        precondition(want.count == logits.count, "fixture has \(want.count) logits, model gave \(logits.count)")
        return zip(logits.scalars, want).map { abs($0 - $1) }.max()!
    }

    static func logits(_ model: Llama) -> Tensor {
        model.eval()
        return try! withNoGrad { try model.logits(ids, batch: 1, length: ids.count) }
    }

    /// The same weights under another config (RoPE scaling) or pairing: new layers around the same projections and norms.
    static func variant(_ m: Llama, config: LlamaConfig? = nil, pairing: RotaryEmbedding.Pairing? = nil, factors: [Float]? = nil) -> Llama {
        let cfg = config ?? m.config
        let spec = cfg.decoder(ropePairing: pairing ?? m.spec.ropePairing, ropeFrequencyFactors: factors)
        let layers = (0..<spec.layers).map { i in
            DecoderLayer(spec, index: i, rng: m.rng, linear: { role, _, _ in m.layers[i].projection(role)! },
                         norm: { role, _ in m.layers[i].normalization(role)! })
        }
        return Llama(config: cfg, spec: spec, embedTokens: m.embedTokens, layers: layers, norm: m.norm, lmHead: m.lmHead)
    }

    /// One full training step (loss, backward, clipping, AdamW with decay on matrices only) of
    /// the tiny HF Llama lands on the weights PyTorch computed.
    @Test func oneAdamWStepMatchesPyTorch() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        try checkAdamWStep(model, fixture: "llama-tiny-train-step.json") { try HuggingFaceLlama.tensors(of: $0 as! Llama) }
    }

    /// Saved as an HF folder and loaded back, the model is the same, name for name.
    @Test func savedFolderLoadsBackIdentically() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-\(UUID())").path
        try model.save(to: dir)
        let back = try HuggingFaceLlama.load(folder: dir)
        #expect(back.config == model.config)
        for ((n1, a), (n2, b)) in zip(model.namedParameters(), back.namedParameters()) { #expect(n1 == n2 && a.scalars == b.scalars) }
    }

    @Test func huggingFaceFolderMatchesTransformers() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        #expect(model.config.kvHeads == 2 && model.config.heads == 4 && model.config.ropeBase == 50000 && model.config.tiedEmbeddings)
        let logits = Self.logits(model)
        let diff = Self.maxDifference(logits, Self.reference["logits"])
        #expect(diff <= 1e-4, "max |Δlogit| \(diff)")
        let loss = try withNoGrad { try model.loss(Self.ids, targets: Array(Self.ids.dropFirst()) + [-100], batch: 1, length: Self.ids.count).item }
        #expect(abs(loss - Float(Self.reference["loss"] as! Double)) <= 1e-5, "loss \(loss)")
    }

    @Test func greedyContinuationIsIdenticalWithTheCache() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        model.eval()
        let greedy = Self.reference["greedy"] as! [String: Any]
        let prompt = (greedy["prompt"] as! [Int]).map(Int32.init), want = (greedy["ids"] as! [Int]).map(Int32.init)
        let got = try greedyContinuation(model, prompt: prompt, count: want.count)
        #expect(got == want)
    }

    @Test func ropeScalingVariantsMatchTransformers() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        let variants = Self.reference["rope_variants"] as! [String: [String: Any]]
        for (name, v) in variants {
            var config = model.config
            let data = try JSONSerialization.data(withJSONObject: v["rope_scaling"]!)
            config.ropeScaling = try JSONDecoder().decode(LlamaConfig.RopeScaling.self, from: data)
            let diff = Self.maxDifference(Self.logits(Self.variant(model, config: config)), v["logits"])
            #expect(diff <= 1e-4, "\(name): max |Δlogit| \(diff)")
        }
    }

    /// The GGUF copy has Q and K rows permuted by llama.cpp's converter; with adjacent-pair RoPE
    /// it must give HF's logits, and with HF's pairing it must not (the test can tell them apart).
    @Test func ggufCopyWithPermutedQKMatchesTransformers() throws {
        let file = try GGUFFile(path: fixtureGGUF(Self.folder, "tiny-f32.gguf"))
        let model = try GGUFLlama.load(file, arithmetic: .float32)
        #expect(model.spec.ropePairing == .adjacent)
        let diff = Self.maxDifference(Self.logits(model), Self.reference["logits"])
        #expect(diff <= 1e-4, "max |Δlogit| \(diff)")
        // llama.cpp's arithmetic (F16 attention) stays close.
        let ggml = Self.maxDifference(Self.logits(try GGUFLlama.load(file)), Self.reference["logits"])
        #expect(ggml <= 0.05, "llama.cpp arithmetic: max |Δlogit| \(ggml)")
        let wrong = Self.maxDifference(Self.logits(Self.variant(model, pairing: .halves)), Self.reference["logits"])
        #expect(wrong > 0.1, "HF pairing on GGUF rows should differ, got \(wrong)")
        // Scaling as llama.cpp expresses it: linear via metadata, llama3 via a rope_freqs tensor.
        let variants = Self.reference["rope_variants"] as! [String: [String: Any]]
        var linear = model.config
        linear.ropeScaling = .init(type: "linear", factor: 2)
        #expect(Self.maxDifference(Self.logits(Self.variant(model, config: linear)), variants["linear"]!["logits"]) <= 1e-4)
        let factors = ((variants["llama3"]!["gguf_equivalent"] as! [String: Any])["rope_freqs.weight"] as! [Double]).map(Float.init)
        #expect(Self.maxDifference(Self.logits(Self.variant(model, factors: factors)), variants["llama3"]!["logits"]) <= 1e-4)
    }

    @Test func ggufTokenizerMatchesTheHuggingFaceTokenizer() throws {
        let file = try GGUFFile(path: fixtureGGUF(Self.folder, "tiny-f32.gguf"))
        let vocab = try GGUFVocabulary(file)
        #expect((vocab.tokenizer as? Tokenizer)?.pattern == .gpt2Digits && vocab.bos == 1 && vocab.eos == 2 && !vocab.addBos)
        for e in Self.reference["encodings"] as! [[String: Any]] {
            let text = e["text"] as! String, want = (e["ids"] as! [Int]).map(UInt32.init)
            #expect(try vocab.tokenizer.encode(text, allowedSpecial: .all) == want, "\(text.debugDescription)")
            #expect(try vocab.tokenizer.decode(want) == text)
        }
        // The HF folder's tokenizer.json reads to the same ids.
        let hf = try Tokenizer.load(path: Self.folder.path)
        let text = Self.reference["text"] as! String
        #expect(try hf.encode(text) == vocab.tokenizer.encode(text))
    }
}

/// Mistral (Llama with sliding-window attention) against transformers (fixtures from
/// scripts/fixtures/make_mistral_fixtures.py): a window of 8 positions, the query's own included.
@Suite struct MistralParity {
    static let folder = GPTParity.fixtures.appendingPathComponent("mistral-tiny")
    static let reference = try! JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("reference.json"))) as! [String: Any]

    @Test func slidingWindowLogitsAndGreedyMatchTransformers() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        model.eval()
        #expect(model.config.slidingWindow == 8 && model.spec.window(ofLayer: 1) == 8 && model.lmHead != nil)
        let ids = (Self.reference["input_ids"] as! [Int]).map(Int32.init)
        let logits = try withNoGrad { try model.logits(ids, batch: 1, length: ids.count) }
        let diff = LlamaParity.maxDifference(logits, Self.reference["logits"])
        #expect(diff <= 1e-4, "max |Δlogit| \(diff)")
        // The same weights without the window give transformers' unwindowed logits.
        var plain = model.config
        plain.slidingWindow = nil
        let unwindowed = LlamaParity.variant(model, config: plain)
        #expect(LlamaParity.maxDifference(try unwindowed.logits(ids, batch: 1, length: ids.count), Self.reference["logits_without_window"]) <= 1e-4)
        // Greedy through the sliding-window cache (it holds at most 7 old positions).
        let greedy = Self.reference["greedy"] as! [String: Any]
        let prompt = (greedy["prompt"] as! [Int]).map(Int32.init), want = (greedy["ids"] as! [Int]).map(Int32.init)
        #expect(try greedyContinuation(model, prompt: prompt, count: want.count) == want)
        // Saved and loaded back, it is still a Mistral with its window.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mistral-\(UUID())").path
        try model.save(to: dir)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        #expect(config["model_type"] as? String == "mistral" && config["sliding_window"] as? Int == 8)
        #expect(try HuggingFaceLlama.load(folder: dir).config == model.config)
    }
}

/// The argmax continuation of `prompt`, fed token by token through the KV cache.
func greedyContinuation(_ model: DecoderModel, prompt: [Int32], count: Int) throws -> [Int32] {
    try greedyPicks(model, prompt: prompt, count: count)
}

/// Our argmax at each of `count` steps through the cache; the token fed back is our pick, or
/// `trajectory`'s token at that step when one is given (another run's continuation).
func greedyPicks(_ model: DecoderModel, prompt: [Int32], count: Int, along trajectory: [Int32]? = nil) throws -> [Int32] {
    precondition(trajectory.map { $0.count >= count } ?? true, "greedyPicks: a trajectory shorter than \(count) steps")
    let cache = model.makeCache(capacity: prompt.count + count)
    var got: [Int32] = []
    var logits = try model.forward([SequenceInput(tokens: prompt, cache: cache)])          // (1, V): the last position only
    while got.count < count {
        let row = logits.data
        let next = Int32((0..<model.vocabularySize).max { row[$0] < row[$1] }!)
        let fed = trajectory?[got.count] ?? next
        got.append(next)
        logits = try model.forward([SequenceInput(tokens: [fed], cache: cache)])
    }
    return got
}

/// A GGUF fixture, committed as base64 text (`NAME.base64`: gguf-py's exact bytes), decoded into
/// a temporary file that the reader can map.
func fixtureGGUF(_ folder: URL, _ name: String) throws -> String {
    let text = try Data(contentsOf: folder.appendingPathComponent(name + ".base64"))
    guard let bytes = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: name + ".base64"])
    }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID())-\(name)").path
    try bytes.write(to: URL(fileURLWithPath: path))
    return path
}

/// Block formats against gguf-py's reference quantizers (quant-test.gguf / quant-test.json).
@Suite struct GGUFBlockFormats {
    static let folder = LlamaParity.folder
    static let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("quant-test.json"))) as! [String: Any]

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex { let j = s.index(i, offsetBy: 2); out.append(UInt8(s[i..<j], radix: 16)!); i = j }
        return out
    }

    @Test(arguments: ["q8_0", "q4_0", "q4_1", "f16", "bf16"])
    func dequantizeQuantizeAndMultiplyLikeGGUFPy(_ name: String) throws {
        let file = try GGUFFile(path: fixtureGGUF(Self.folder, "quant-test.gguf"))
        let t = (Self.json["tensors"] as! [String: [String: Any]])[name]!
        let m = try file.matrix(name)
        #expect(m.type.name == t["ggml_type"] as! String && m.shape == t["shape"] as! [Int])
        let want = (t["dequantized"] as! [[Double]]).flatMap { $0 }.map(Float.init)
        #expect(m.dequantized().scalars == want, "\(name): dequantized values differ")
        // Our quantizer writes the same bytes as gguf-py's.
        let original = Tensor(shape: m.shape, (t["original"] as! [[Double]]).flatMap { $0 }.map(Float.init))
        let ours = QuantizedMatrix.quantize(original, as: m.type)
        let bytes = Array(UnsafeRawBufferPointer(start: ours.bytes, count: ours.byteCount))
        let raw = (t["raw_hex"] as! [String]).flatMap(Self.hex)
        #expect(bytes == raw, "\(name): quantized bytes differ")
        // y = W x through the kernels.
        let x = Tensor(shape: [1, m.cols], (t["x"] as! [Double]).map(Float.init))
        let y = linear(x, m)
        for (a, b) in zip(y.scalars, t["y"] as! [Double]) {
            #expect(abs(Double(a) - b) <= 1e-4 * max(1, abs(b)), "\(name): \(a) vs \(b)")
        }
    }
}
