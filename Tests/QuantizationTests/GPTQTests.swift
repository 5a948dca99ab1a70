import Foundation
import Inference
import Testing
import Models
import NN
import Quantization
import Tensors

/// GPTQ against round-to-nearest on a layer whose inputs are correlated (as real activations are):
/// the output error ‖WX − ŴX‖ must be lower, for every block type.
@Suite struct GPTQRounding {
    /// X (n, cols) = Z·M: a few strong directions and some outlier channels.
    static func inputs(_ n: Int, _ cols: Int, rng: RandomGenerator) -> Tensor {
        let z = Tensor.randn([n, cols], rng: rng)
        let mix = Tensor.randn([cols, cols], std: 0.3, rng: rng)
        let d = mix.data
        for i in 0..<cols { d[i * cols + i] += 1 }
        let x = matmul(z, mix)
        for r in 0..<n { for c in stride(from: 0, to: cols, by: 37) { x.data[r * cols + c] *= 8 } }
        return x
    }

    static func outputError(_ w: Tensor, _ q: QuantizedMatrix, _ x: Tensor) -> Double {
        let diff = w.scalars
        let deq = q.dequantized().scalars
        let dw = Tensor(shape: w.shape, zip(diff, deq).map { $0 - $1 })
        let y = matmul(x, dw.transposed(0, 1))
        return y.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
    }

    @Test(arguments: [GGMLType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K])
    func lowerOutputErrorThanRoundToNearest(_ type: GGMLType) throws {
        let rng = RandomGenerator(seed: 11)
        let (rows, cols, n) = (48, 512, 2048)
        let x = Self.inputs(n, cols, rng: rng)
        let w = Tensor.randn([rows, cols], std: 0.05, rng: rng)
        var gram = [Double](repeating: 0, count: cols * cols)
        let xx = matmul(x.transposed(0, 1), x)
        for i in 0..<(cols * cols) { gram[i] = Double(xx.data[i]) }
        let gptq = try GPTQ.quantize(w, hessian: gram, samples: n, as: type)
        let rtn = QuantizedMatrix.quantize(w, as: type)
        let (eg, er) = (Self.outputError(w, gptq, x), Self.outputError(w, rtn, x))
        #expect(eg < er, "\(type.name): GPTQ output error \(eg), round-to-nearest \(er)")
    }

    /// Setting a level through the grid and reading the block back gives that grid value.
    @Test(arguments: [GGMLType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K])
    func gridLevelsRoundTrip(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 5)
        let q = QuantizedMatrix.quantize(Tensor.randn([1, 256], rng: rng), as: type)
        let block = UnsafeMutableRawPointer(mutating: q.bytes)
        var values = [Float](repeating: 0, count: 256)
        for j in 0..<256 {
            let b = j / type.blockSize, i = j % type.blockSize
            let grid = type.grid(UnsafeRawPointer(block + b * type.blockBytes), i)
            let level = grid.bottom + Int32(j * 7 % Int(grid.top - grid.bottom + 1))
            type.setLevel(block + b * type.blockBytes, i, level)
            values[j] = grid.value(level)
        }
        let back = q.dequantized().scalars
        for j in 0..<256 { #expect(abs(back[j] - values[j]) <= 1e-6 * max(1, abs(values[j])), "\(type.name) value \(j): \(back[j]) vs \(values[j])") }
    }
}

/// GPTQ over a whole (tiny) model: every projection becomes blocks of its planned type, the
/// export keeps those blocks, and the file runs.
@Suite struct ModelGPTQRun {
    @Test func projectionsBecomeBlocksAndTheFileRuns() throws {
        let loaded = try LoadedModel.load(fixtures.appendingPathComponent("llama-tiny").path)
        let model = loaded.model as! DecoderModel
        let sequences = randomCalibration(model)
        try ModelGPTQ.quantize(model, calibration: sequences, typeOf: { _, _ in .q4_0 }, sequencesPerPass: 4)
        try expectProjections(of: model, are: .q4_0)
        let source = try GGUFSource(model: model, name: "tiny", tokenizer: loaded.tokenizer, bos: loaded.bos, eos: loaded.eos, chatTemplate: nil)
        let path = temporaryPath("gptq.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try GGUFQuantizer.write(source, scheme: .single(.q4_0), outputType: .q8_0, to: path)
        let file = try GGUFFile(path: path)
        let q = (model.layers[1].projection(.q) as! QuantizedLinear).weight
        let storedQ = try file.matrix("blk.1.attn_q.weight"), storedDown = try file.matrix("blk.1.ffn_down.weight")
        #expect(bytes(storedQ) == bytes(q.gatheringRows(adjacentOrder(rows: q.rows, heads: 4))))
        #expect(bytes(storedDown) == bytes((model.layers[1].projection(.down) as! QuantizedLinear).weight))
        let back = try GGUFModel.load(file, arithmetic: .float32)
        let logits = try back.logits([1, 2, 3, 4], batch: 1, length: 4).scalars
        let finite = logits.allSatisfy { $0.isFinite }
        #expect(finite)
    }

    /// llama.cpp's q/k row order (see GGUFExport): per head, row 2i + j ← HF row j·D/2 + i.
    func adjacentOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads
        return (0..<rows).map { r in (r / d) * d + (r % 2) * (d / 2) + (r % d) / 2 }
    }
}
