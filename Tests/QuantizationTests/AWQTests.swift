import Foundation
import Inference
import Testing
import Models
import NN
import Quantization
import Tensors

/// AWQ's rescaling is exact before rounding: with scales folded into the norms and projections,
/// the model computes the same logits (GPT with LayerNorm and biases, Llama with grouped heads,
/// Gemma 3 with sandwich and QK norms).
@Suite struct AWQFolding {
    @Test(arguments: ["llama-tiny", "gpt2-tiny", "gemma3-tiny"])
    func foldedModelComputesTheSameFunction(_ name: String) throws {
        let loaded = try LoadedModel.load(fixtures.appendingPathComponent(name).path, arithmetic: .float32)
        let model = try #require(loaded.model as? DecoderModel)
        model.eval()
        let ids: [Int32] = [5, 9, 33, 2, 7, 100, 41, 8, 3, 11, 12, 13]
        let before = try model.logits(ids, batch: 1, length: ids.count).scalars
        let rng = RandomGenerator(seed: 3)
        // Scales between 1/4 and 4.
        func scales(_ n: Int) -> [Float] { (0..<n).map { _ in Foundation.exp(Float(rng.next() % 1000) / 1000 * 2.77 - 1.386) } }
        let spec = model.spec
        for layer in model.layers {
            let s = ModelAWQ.LayerScales(attention: scales(spec.embedding), output: scales(spec.kvHeads * spec.headSize),
                                         mlp: scales(spec.embedding), down: layer.mlp.gate == nil ? nil : scales(spec.hidden))
            try ModelAWQ.fold(s, into: layer, model: model)
        }
        let after = try model.logits(ids, batch: 1, length: ids.count).scalars
        let largest = before.map { abs($0) }.max()!
        let diff = zip(before, after).map { abs($0 - $1) }.max()!
        #expect(diff <= 1e-5 * max(1, largest), "\(name): max |logit difference| \(diff) (largest logit \(largest))")
    }

    /// Scales of the wrong width, not positive, or with no place to go are an error, not a silent
    /// wrong model.
    @Test func badScalesAreAnError() throws {
        let loaded = try LoadedModel.load(fixtures.appendingPathComponent("llama-tiny").path, arithmetic: .float32)
        let model = try #require(loaded.model as? DecoderModel)
        #expect(throws: ModelError.self) { try ModelAWQ.fold(ModelAWQ.LayerScales(attention: [1, 2]), into: model.layers[0], model: model) }
        let negative = [Float](repeating: -1, count: model.spec.embedding)
        #expect(throws: ModelError.self) { try ModelAWQ.fold(ModelAWQ.LayerScales(mlp: negative), into: model.layers[0], model: model) }
        // GPT's MLP has no gate: no place for down scales. Nothing changes when a fold is refused.
        let gpt = try #require(try LoadedModel.load(fixtures.appendingPathComponent("gpt2-tiny").path, arithmetic: .float32).model as? DecoderModel)
        let norm = (gpt.layers[0].attentionNorm as! LayerNorm).weight.scalars
        let s = ModelAWQ.LayerScales(attention: [Float](repeating: 2, count: gpt.spec.embedding), down: [Float](repeating: 2, count: gpt.spec.hidden))
        #expect(throws: ModelError.self) { try ModelAWQ.fold(s, into: gpt.layers[0], model: gpt) }
        #expect((gpt.layers[0].attentionNorm as! LayerNorm).weight.scalars == norm)
    }
}

/// On inputs with strong channels, the scales AWQ picks give a lower output error than
/// round-to-nearest, measured on the inputs themselves, at 4, 3 and 2 bits, with scales from the
/// activations alone and from activations and weights.
@Suite struct AWQRounding {
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q4_K, .q3_K, .q2_K], [true, false])
    func lowerOutputErrorThanRoundToNearest(_ type: GGMLType, weightAware: Bool) throws {
        let rng = RandomGenerator(seed: 12)
        let (rows, cols, n) = (48, 512, 1024)
        let x = GPTQRounding.inputs(n, cols, rng: rng)
        let w = Tensor.randn([rows, cols], std: 0.05, rng: rng)
        let (scales, report) = ModelAWQ.searchScales(weight: w, inputs: x, as: type, weightAware: weightAware)
        #expect(report.alpha != nil, "\(type.name): no rescaling chosen")
        // Ŵ = round(W·diag(s))·diag(s)⁻¹, and its error on x against round-to-nearest's.
        let scaled = Tensor(shape: w.shape, w.scalars.enumerated().map { $0.element * scales[$0.offset % cols] })
        let back = QuantizedMatrix.quantize(scaled, as: type).dequantized().scalars
        let awq = Tensor(shape: w.shape, back.enumerated().map { $0.element / scales[$0.offset % cols] })
        func error(_ q: Tensor) -> Double {
            let dw = Tensor(shape: w.shape, zip(w.scalars, q.scalars).map { $0 - $1 })
            return matmul(x, dw.transposed(0, 1)).scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        let (ea, er) = (error(awq), error(QuantizedMatrix.quantize(w, as: type).dequantized()))
        #expect(ea < er, "\(type.name): AWQ output error \(ea), round-to-nearest \(er)")
        #expect(abs(ea / Double(n) - report.error) <= 1e-3 * report.error, "\(type.name): the search's error \(report.error) vs measured \(ea / Double(n))")
    }
}

/// AWQ over a whole (tiny) model: every projection becomes blocks of its planned type, every
/// group's calibration error is at most round-to-nearest's, the export keeps the blocks and the
/// file runs.
@Suite struct ModelAWQRun {
    @Test func projectionsBecomeBlocksAndTheFileRuns() throws {
        let loaded = try LoadedModel.load(fixtures.appendingPathComponent("llama-tiny").path, arithmetic: .float32)
        let model = loaded.model as! DecoderModel
        let sequences = randomCalibration(model)
        var reports: [ModelAWQ.LayerReport] = []
        let scales = try ModelAWQ.quantize(model, calibration: sequences, typeOf: { _, _ in .q4_0 }, sequencesPerPass: 4) { reports.append($0) }
        #expect(scales.count == model.layers.count && reports.count == model.layers.count)
        for r in reports {
            #expect(r.groups.map(\.group) == ["attention", "output", "mlp", "down"])
            for g in r.groups { #expect(g.error <= g.roundToNearestError, "layer \(r.layer) \(g.group): \(g.error) > RTN \(g.roundToNearestError)") }
        }
        try expectProjections(of: model, are: .q4_0)
        let source = try GGUFSource(model: model, name: "tiny", tokenizer: loaded.tokenizer, bos: loaded.bos, eos: loaded.eos, chatTemplate: nil)
        let path = temporaryPath("awq.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try GGUFQuantizer.write(source, scheme: .single(.q4_0), outputType: .f32, to: path)
        let file = try GGUFFile(path: path)
        #expect(bytes(try file.matrix("blk.1.ffn_down.weight")) == bytes((model.layers[1].projection(.down) as! QuantizedLinear).weight))
        let back = try GGUFModel.load(file, arithmetic: .float32)
        let ours = try model.logits([1, 2, 3, 4], batch: 1, length: 4).scalars
        let theirs = try back.logits([1, 2, 3, 4], batch: 1, length: 4).scalars
        let diff = zip(ours, theirs).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-3, "logits of the written file differ by \(diff)")
    }
}
