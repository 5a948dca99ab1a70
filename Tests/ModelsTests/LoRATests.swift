import Foundation
import Models
import NN
import Testing
import Tensors

/// LoRA, one SFT step and the classification head against PyTorch + transformers + peft
/// (fixtures from scripts/fixtures/make_lora_fixtures.py): peft's own saved adapters are read
/// into our projection slots and must give peft's logits, gradients and AdamW step.
@Suite struct LoRAParity {
    static let folder = GPTParity.fixtures.appendingPathComponent("lora")

    static func fixture(_ model: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("\(model)-lora.json"))) as! [String: Any]
    }

    static func tensor(_ entry: Any?) -> Tensor {
        let e = entry as! [String: Any]
        return Tensor(shape: e["shape"] as! [Int], (e["data"] as! [Double]).map(Float.init))
    }

    /// Max |a − b| / max |b|.
    static func relative(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.count == b.count, "\(a.shape) vs \(b.shape)")
        let scale = max(b.scalars.map(abs).max()!, 1e-12)
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! / scale
    }

    static func base(_ name: String) throws -> DecoderModel {
        try ModelFolder.load(GPTParity.fixtures.appendingPathComponent(name).path)
    }

    static func ids(_ rows: Any?) -> (ids: [Int32], batch: Int, length: Int) {
        let r = rows as! [[Int]]
        return (r.flatMap { $0 }.map(Int32.init), r.count, r[0].count)
    }

    /// HF's labels (the model shifts them) as our targets: position t predicts labels[t + 1].
    static func shifted(_ labels: Any?) -> [Int32] {
        (labels as! [[Int]]).flatMap { row in row.dropFirst().map(Int32.init) + [-100] }
    }

    /// Our adapters' tensors under peft's names; q/k/v of GPT-2 summed (A, shared in c_attn) or
    /// stacked (B), which is how their gradients relate to c_attn's.
    static func peftNamed(_ model: DecoderModel, _ value: (LoRALinear) -> (a: Tensor, b: Tensor)) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, layer) in model.layers.enumerated() {
            func lora(_ r: DecoderWeight) -> LoRALinear { layer.projection(r) as! LoRALinear }
            if model is GPT {
                let p = "base_model.model.transformer.h.\(i)."
                let qkv = [lora(.q), lora(.k), lora(.v)].map(value)
                out[p + "attn.c_attn.lora_A.weight"] = qkv[0].a + qkv[1].a + qkv[2].a
                out[p + "attn.c_attn.lora_B.weight"] = Tensor.concat(qkv.map(\.b), axis: 0)
                for (r, n) in [(DecoderWeight.o, "attn.c_proj"), (.up, "mlp.c_fc"), (.down, "mlp.c_proj")] {
                    let v = value(lora(r))
                    out[p + n + ".lora_A.weight"] = v.a; out[p + n + ".lora_B.weight"] = v.b
                }
            } else {
                let names: [(DecoderWeight, String)] = [(.q, "self_attn.q_proj"), (.k, "self_attn.k_proj"), (.v, "self_attn.v_proj"),
                    (.o, "self_attn.o_proj"), (.gate, "mlp.gate_proj"), (.up, "mlp.up_proj"), (.down, "mlp.down_proj")]
                for (r, n) in names {
                    let v = value(lora(r))
                    out["base_model.model.model.layers.\(i).\(n).lora_A.weight"] = v.a
                    out["base_model.model.model.layers.\(i).\(n).lora_B.weight"] = v.b
                }
            }
        }
        return out
    }

    @Test(arguments: ["llama-tiny", "gpt2-tiny"])
    func peftAdapterForwardGradientsAndMerge(_ name: String) throws {
        let ref = try Self.fixture(name)
        let model = try Self.base(name)
        let contents = try PEFTAdapter.load(Self.folder.appendingPathComponent("\(name)-adapter").path, into: model)
        #expect(contents.rank == 4 && contents.alpha == 8)
        #expect(model.trainableParameters.count == model.loraLayers.count * 2, "only the adapters train")
        let fwd = ref["forward"] as! [String: Any]
        let (x, b, t) = Self.ids(fwd["x"])
        model.train()
        let logits = try model.logits(x, batch: b, length: t)
        #expect(Self.relative(logits, Self.tensor(fwd["logits"])) <= 1e-5)
        var targets: [Int32] = []
        for r in 0..<b { targets += Array(x[(r * t + 1)..<((r + 1) * t)]) + [-100] }
        let loss = try model.loss(x, targets: targets, batch: b, length: t)
        #expect(abs(loss.item - Float(fwd["loss"] as! Double)) <= 1e-5)
        loss.backward()
        let grads = Self.peftNamed(model) { ($0.loraA.grad!, $0.loraB.grad!) }
        let want = fwd["grads"] as! [String: Any]
        #expect(Set(grads.keys) == Set(want.keys))
        for (n, g) in grads {
            #expect(Self.relative(g, Self.tensor(want[n])) <= 1e-4, "gradient of \(n)")
        }
        // Merged weights give the merged model's logits, and the unmerged ones.
        model.eval()
        let unmerged = try withNoGrad { try model.logits(x, batch: b, length: t) }
        model.mergeAdapters()
        #expect(model.loraLayers.isEmpty)
        let merged = try withNoGrad { try model.logits(x, batch: b, length: t) }
        #expect(Self.relative(merged, Self.tensor(ref["merged_logits"])) <= 1e-5)
        #expect(Self.relative(merged, unmerged) <= 1e-5)
    }

    /// One SFT step (prompt masked, right padding, clip 1, AdamW over the adapters) lands on
    /// peft's adapter weights.
    @Test(arguments: ["llama-tiny", "gpt2-tiny"])
    func sftStepMatchesPeft(_ name: String) throws {
        let ref = try Self.fixture(name)["sft"] as! [String: Any]
        let model = try Self.base(name)
        try PEFTAdapter.load(Self.folder.appendingPathComponent("\(name)-adapter").path, into: model)
        model.train()
        let (x, b, t) = Self.ids(ref["ids"])
        let loss = try model.loss(x, targets: Self.shifted(ref["labels"]), batch: b, length: t)
        #expect(abs(loss.item - Float(ref["loss"] as! Double)) <= 1e-5)
        loss.backward()
        if model is GPT {
            // peft's c_attn A is one matrix: its gradient is the sum over our q, k, v copies.
            for layer in model.layers {
                let parts = [DecoderWeight.q, .k, .v].map { layer.projection($0) as! LoRALinear }
                let sum = parts[0].loraA.grad! + parts[1].loraA.grad! + parts[2].loraA.grad!
                for p in parts { p.loraA.grad!.assign(sum) }
            }
        }
        let unique = Self.uniqueAdapterParameters(model)
        let norm = clipGradNorm(unique, maxNorm: 1)
        #expect(abs(norm - Float(ref["grad_norm"] as! Double)) / norm <= 1e-5)
        let opt = AdamW([ParameterGroup(model.trainableParameters, weightDecay: 0.01)], learningRate: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8)
        opt.step()
        let updated = ref["updated"] as! [String: Any]
        let ours = Self.peftNamed(model) { ($0.loraA, $0.loraB) }
        for (n, w) in ours {
            var got = w
            if model is GPT && n.hasSuffix("c_attn.lora_A.weight") { got = w * (1 / 3) }   // the three copies moved alike
            #expect(Self.relative(got, Self.tensor(updated[n])) <= 1e-5, "\(n) after one step")
        }
    }

    /// The adapter parameters as peft has them: GPT-2's q, k, v share one A (counted once).
    static func uniqueAdapterParameters(_ model: DecoderModel) -> [Tensor] {
        guard model is GPT else { return model.trainableParameters }
        var out: [Tensor] = []
        for layer in model.layers {
            for r in LoRAConfig.projectionRoles {
                guard let l = layer.projection(r) as? LoRALinear else { continue }
                if r != .k && r != .v { out.append(l.loraA) }
                out.append(l.loraB)
            }
        }
        return out
    }

    @Test(arguments: ["llama-tiny", "gpt2-tiny"])
    func classificationHeadMatchesTransformers(_ name: String) throws {
        let ref = try Self.fixture(name)["classify"] as! [String: Any]
        let clf = try SequenceClassifier(base: try Self.base(name), labels: ["a", "b", "c"], score: Self.tensor(ref["score"]))
        clf.eval()
        let (x, _, t) = Self.ids(ref["ids"])
        let lengths = ref["lengths"] as! [Int]
        let logits = try withNoGrad { try clf.logits(x, lengths: lengths, length: t) }
        #expect(Self.relative(logits, Self.tensor(ref["logits"])) <= 1e-5)
        let loss = try clf.loss(x, lengths: lengths, length: t, labels: (ref["labels"] as! [Int]).map(Int32.init))
        #expect(abs(loss.item - Float(ref["loss"] as! Double)) <= 1e-5)
        #expect(throws: ModelError.self) { try clf.logits(x, lengths: [8, 0, 3], length: t) }
    }

    /// Ours saved in peft's format and read back gives the same logits (GPT-2: through one fused
    /// c_attn adapter of rank 12 and back into q, k, v).
    @Test(arguments: ["llama-tiny", "gpt2-tiny"])
    func savedAdapterReadsBack(_ name: String) throws {
        let model = try Self.base(name)
        try model.addLoRA(LoRAConfig(rank: 3, alpha: 5, dropout: 0), rng: RandomGenerator(seed: 9))
        let rng = RandomGenerator(seed: 10)
        for (_, _, l) in model.loraLayers { l.loraB.assign(Tensor.randn(l.loraB.shape, std: 0.05, rng: rng)) }
        model.eval()
        let x: [Int32] = [5, 9, 17, 33, 4, 8, 120, 7]
        let want = try withNoGrad { try model.logits(x, batch: 1, length: x.count) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adapter-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try PEFTAdapter.save(model, config: LoRAConfig(rank: 3, alpha: 5, dropout: 0), baseModel: name, to: dir)
        let again = try Self.base(name)
        let contents = try PEFTAdapter.load(dir, into: again)
        #expect(again.loraLayers.count == model.loraLayers.count)
        #expect(again.loraLayers.allSatisfy { $0.lora.rank == 3 }, "a fused c_attn adapter splits back to rank 3")
        #expect(contents.baseModel == name)
        again.eval()
        let got = try withNoGrad { try again.logits(x, batch: 1, length: x.count) }
        #expect(Self.relative(got, want) <= 1e-6)
    }

    /// The GGUF copy of the tiny Llama (q/k rows in llama.cpp's order) takes peft's adapter (B's
    /// rows reordered), and its Hugging Face layout after merging gives the merged logits.
    @Test func adapterOnGGUFModel() throws {
        let ref = try Self.fixture("llama-tiny")
        let file = try GGUFFile(path: fixtureGGUF(LlamaParity.folder, "tiny-f32.gguf"))
        let model = try GGUFLlama.load(file, arithmetic: .float32)
        try PEFTAdapter.load(Self.folder.appendingPathComponent("llama-tiny-adapter").path, into: model)
        #expect(model.loraLayers.allSatisfy { $0.lora.base is QuantizedLinear }, "the base stays in its blocks")
        model.eval()
        let (x, b, t) = Self.ids((ref["forward"] as! [String: Any])["x"])
        let logits = try withNoGrad { try model.logits(x, batch: b, length: t) }
        #expect(Self.relative(logits, Self.tensor((ref["forward"] as! [String: Any])["logits"])) <= 1e-5)
        // Saved from the GGUF model, the adapter has HF's row order: it reads back on the HF model.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adapter-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try PEFTAdapter.save(model, config: LoRAConfig(rank: 4, alpha: 8, dropout: 0), baseModel: "tiny", to: dir)
        let hf = try Self.base("llama-tiny")
        try PEFTAdapter.load(dir, into: hf)
        hf.eval()
        #expect(Self.relative(try withNoGrad { try hf.logits(x, batch: b, length: t) }, logits) <= 1e-5)
        let exported = model.huggingFaceLayout()
        #expect(exported.spec.ropePairing == .halves && exported.loraLayers.isEmpty)
        exported.eval()
        let merged = try withNoGrad { try exported.logits(x, batch: b, length: t) }
        #expect(Self.relative(merged, Self.tensor(ref["merged_logits"])) <= 1e-5)
        #expect(try HuggingFaceLlama.tensors(of: exported).count == HuggingFaceLlama.tensors(of: try Self.base("llama-tiny") as! Llama).count)
    }

    /// QLoRA: over a Q8_0 base the adapters' gradients equal those over the same weights in
    /// float (the quantized product passes the gradient to its input), and the base stays quantized.
    @Test func loraGradientsThroughAQuantizedBase() throws {
        let float = try Self.base("llama-tiny") as! Llama
        let quantized = try Self.base("llama-tiny") as! Llama
        withNoGrad {
            for (fl, ql) in zip(float.layers, quantized.layers) {
                for r in LoRAConfig.projectionRoles {
                    let w = (ql.projection(r) as! Linear).weight
                    let q = QuantizedMatrix.quantize(w, as: .q8_0)
                    ql.setProjection(r, QuantizedLinear(q, roundActivations: false))
                    fl.setProjection(r, Linear(weight: q.dequantized()))
                }
            }
        }
        for m in [float, quantized] as [DecoderModel] { try m.addLoRA(LoRAConfig(rank: 2, alpha: 4, dropout: 0), rng: RandomGenerator(seed: 1)) }
        for m in [float, quantized] as [DecoderModel] {
            let rng = RandomGenerator(seed: 2)
            for (_, _, l) in m.loraLayers { l.loraB.assign(Tensor.randn(l.loraB.shape, std: 0.05, rng: rng)) }
        }
        let x: [Int32] = [5, 9, 17, 33, 4, 8, 120, 7, 11, 13, 200, 3]
        var targets = Array(x.dropFirst()); targets.append(-100)
        for m in [float, quantized] as [DecoderModel] { try m.loss(x, targets: targets, batch: 2, length: 6).backward() }
        #expect(quantized.loraLayers.allSatisfy { $0.lora.base is QuantizedLinear })
        #expect(quantized.trainableParameters.count == quantized.loraLayers.count * 2)
        for (f, q) in zip(float.loraLayers, quantized.loraLayers) {
            #expect(Self.relative(q.lora.loraA.grad!, f.lora.loraA.grad!) <= 1e-4)
            #expect(Self.relative(q.lora.loraB.grad!, f.lora.loraB.grad!) <= 1e-4)
        }
    }

    /// The fused LoRA op (one recorded node, update added into the base's output) against the same
    /// sum written with ordinary ops and the same dropout mask: output and every gradient.
    @Test(arguments: [Float(0), 0.3])
    func fusedLoRAMatchesComposedOps(_ p: Float) {
        let rng = RandomGenerator(seed: 3)
        let base = Linear(weight: Tensor.randn([24, 16], rng: rng), bias: Tensor.randn([24], rng: rng))
        let lora = LoRALinear(base: base, rank: 4, alpha: 6, dropout: p, rng: RandomGenerator(seed: 7))
        lora.loraB.assign(Tensor.randn([24, 4], std: 0.3, rng: rng))
        let x = Tensor.randn([2, 5, 16], rng: rng, requiresGrad: true)
        let g = Tensor.randn([2, 5, 24], rng: rng)
        let snapshot = lora.dropout.rngSnapshot
        let y = lora(x)
        y.backward(g)
        let (gx, gA, gB) = (x.grad!.copy(), lora.loraA.grad!.copy(), lora.loraB.grad!.copy())
        x.zeroGrad(); lora.zeroGrad()
        // The same, composed: the mask drawn from the same generator state, 16 bits per element.
        let replay = RandomGenerator(snapshot: snapshot)
        let keep = 1 / (1 - p), threshold = UInt64((p * 65536).rounded())
        var values: [Float] = []
        while values.count < x.count {
            let bits = replay.next()
            for j in 0..<4 { values.append(p > 0 && (bits >> (16 * UInt64(j))) & 0xFFFF < threshold ? 0 : keep) }
        }
        let mask = Tensor(shape: x.shape, Array(values.prefix(x.count)))
        let w = base.weight.detached(), bias = base.bias!.detached()
        let ref = linear(x, w, bias) + linear(linear(x * mask, lora.loraA) * lora.scale, lora.loraB)
        #expect(Self.relative(y, ref) <= 1e-6)
        ref.backward(g)
        #expect(Self.relative(gx, x.grad!) <= 1e-5)
        #expect(Self.relative(gA, lora.loraA.grad!) <= 1e-5)
        #expect(Self.relative(gB, lora.loraB.grad!) <= 1e-5)
        #expect(base.weight.grad == nil, "the base stays frozen")
    }

    /// Gradient checkpointing (each layer recomputed in the backward pass, dropout masks replayed)
    /// gives the gradients of the ordinary pass: LoRA with dropout, and every weight trained.
    @Test(arguments: [true, false])
    func recomputedLayersGiveTheSameGradients(_ lora: Bool) throws {
        let x: [Int32] = [5, 9, 17, 33, 4, 8, 120, 7, 11, 13, 200, 3]
        var targets = Array(x.dropFirst()); targets.append(-100)
        var grads: [[Tensor]] = []
        for checkpointed in [false, true] {
            let model = try Self.base("llama-tiny")
            if lora { try model.addLoRA(LoRAConfig(rank: 2, alpha: 4, dropout: 0.2), rng: RandomGenerator(seed: 1)) }
            let rng = RandomGenerator(seed: 2)
            for (_, _, l) in model.loraLayers { l.loraB.assign(Tensor.randn(l.loraB.shape, std: 0.05, rng: rng)) }
            model.rng.restore(from: RandomGenerator(seed: 11))
            model.checkpointActivations = checkpointed
            model.train()
            try model.loss(x, targets: targets, batch: 2, length: 6).backward()
            grads.append(model.trainableParameters.map { $0.grad! })
        }
        #expect(grads[0].count == grads[1].count && !grads[0].isEmpty)
        for (a, b) in zip(grads[0], grads[1]) { #expect(Self.relative(b, a) <= 1e-5) }
    }
}
