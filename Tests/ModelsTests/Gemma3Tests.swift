import Foundation
import Models
import NN
import Tensors
import Testing

/// Gemma 3 against transformers (fixtures from scripts/fixtures/make_gemma_fixtures.py): a tiny
/// random Gemma3ForCausalLM with four norms per block, QK-norm, GQA with D ≠ C/H, a score scale
/// from query_pre_attn_scalar, and sliding-window layers (window 6) around one global layer.
@Suite struct Gemma3Parity {
    static let folder = GPTParity.fixtures.appendingPathComponent("gemma3-tiny")
    static let reference = try! JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("reference.json"))) as! [String: Any]
    static var ids: [Int32] { (reference["input_ids"] as! [Int]).map(Int32.init) }

    static func logits(_ model: DecoderModel) throws -> Tensor {
        model.eval()
        return try withNoGrad { try model.logits(ids, batch: 1, length: ids.count) }
    }

    /// The same weights with every layer global (the window must matter).
    static func allGlobal(_ m: Gemma3) -> Gemma3 {
        var cfg = m.config
        cfg.localLayers = Array(repeating: false, count: cfg.layers)
        let spec = cfg.decoder()
        let layers = (0..<spec.layers).map { i in
            DecoderLayer(spec, index: i, rng: m.rng, linear: { role, _, _ in m.layers[i].projection(role)! },
                         norm: { role, _ in m.layers[i].normalization(role)! })
        }
        return Gemma3(config: cfg, embedTokens: m.embedTokens, layers: layers, norm: m.norm, lmHead: m.lmHead)
    }

    @Test func logitsMatchTransformers() throws {
        let model = try HuggingFaceGemma3.load(folder: Self.folder.path)
        let c = model.config
        #expect(c.localLayers == [true, true, false, true] && c.slidingWindow == 6 && c.headSize == 32 && c.queryPreAttentionScalar == 24)
        #expect(c.ropeBase == 1_000_000 && c.localRopeBase == 10_000 && c.tiedEmbeddings && model.lmHead == nil)
        #expect(model.spec.window(ofLayer: 2) == nil && model.spec.window(ofLayer: 3) == 6)
        let diff = LlamaParity.maxDifference(try Self.logits(model), Self.reference["logits"])
        #expect(diff <= 1e-4, "max |Δlogit| \(diff)")
        let global = LlamaParity.maxDifference(try Self.logits(Self.allGlobal(model)), Self.reference["logits_all_global"])
        #expect(global <= 1e-4, "all layers global: max |Δlogit| \(global)")
        // Any folder loader reads it too.
        #expect(try ModelFolder.load(Self.folder.path) is Gemma3)
    }

    /// Greedy through the per-layer caches (sliding-window layers keep at most 5 old positions).
    @Test func greedyThroughTheCacheMatchesTransformers() throws {
        let model = try HuggingFaceGemma3.load(folder: Self.folder.path)
        model.eval()
        let greedy = Self.reference["greedy"] as! [String: Any]
        let prompt = (greedy["prompt"] as! [Int]).map(Int32.init), want = (greedy["ids"] as! [Int]).map(Int32.init)
        let cache = model.makeCache(capacity: prompt.count + want.count)
        #expect(cache.layers[0] is SlidingWindowLayerCache && cache.layers[2] is FullLayerCache)
        var got: [Int32] = []
        var logits = try model.forward([SequenceInput(tokens: prompt, cache: cache)])
        while got.count < want.count {
            let row = logits.data
            let next = Int32((0..<model.vocabularySize).max { row[$0] < row[$1] }!)
            got.append(next)
            logits = try model.forward([SequenceInput(tokens: [next], cache: cache)])
        }
        #expect(got == want)
        #expect(cache.layers[0].stored <= 6 + 1 && cache.layers[2].stored == prompt.count + want.count)
    }

    /// Saved as an HF folder (norms back to w, not 1 + w: (1 + w) − 1 is w to float32's precision
    /// at 1) and read again: the same model, bit for bit.
    @Test func savesAndLoadsBack() throws {
        let model = try HuggingFaceGemma3.load(folder: Self.folder.path)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gemma3-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try model.save(to: dir)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        #expect(config["model_type"] as? String == "gemma3_text" && config["query_pre_attn_scalar"] as? Double == 24)
        let original = try Safetensors.read(Self.folder.path + "/model.safetensors")
        let saved = try Safetensors.read(dir + "/model.safetensors")
        for name in ["model.norm.weight", "model.layers.1.self_attn.k_norm.weight", "model.layers.3.post_feedforward_layernorm.weight"] {
            let worst = zip(try saved.tensor(name).scalars, try original.tensor(name).scalars).map { abs($0 - $1) }.max()!
            #expect(worst <= 6e-8, "\(name): \(worst)")
        }
        let back = try HuggingFaceGemma3.load(folder: dir)
        #expect(back.config == model.config)
        #expect(try Self.logits(back).scalars == Self.logits(model).scalars)
    }

    @Test func badConfigsAreNamed() throws {
        func decode(_ json: String) -> String {
            do { _ = try JSONDecoder().decode(Gemma3Config.self, from: Data(json.utf8)); return "accepted" } catch { return "\(error)" }
        }
        let base = #""vocab_size": 10, "max_position_embeddings": 8, "hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 1"#
        #expect(decode("{\(base), \"model_type\": \"gemma3\"}").contains("multimodal"))
        #expect(decode("{\(base), \"hidden_activation\": \"silu\"}").contains("hidden_activation"))
        #expect(decode("{\(base), \"layer_types\": [\"x\", \"full_attention\"]}").contains("layer type \\\"x\\\"") || decode("{\(base), \"layer_types\": [\"x\", \"full_attention\"]}").contains("layer type"))
        var cfg = try JSONDecoder().decode(Gemma3Config.self, from: Data("{\(base)}".utf8))
        #expect(cfg.localLayers == [true, true])
        cfg.localLayers = [true]
        #expect(throws: ModelError.self) { try cfg.validate() }
    }
}
