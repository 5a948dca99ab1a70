import Foundation
import Testing
import Tensors

/// Block formats and the kernels that read them. The bytes and dequantized values are checked
/// against gguf-py's reference quantizers in Models' fixture tests; here, that every path through
/// the kernels (few rows, many rows, every type) computes the same product as the dequantized
/// matrix would, and that our quantizers stay within each format's rounding error.
@Suite struct QuantizedKernels {
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]

    @Test(arguments: types)
    func quantizeDequantizeWithinRoundingError(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 3)
        let w = Tensor.randn([7, 96], rng: rng)
        w.data[5] = 40                                     // an outlier in the first block
        for j in 32..<64 { w.data[96 + j] = 0 }            // an all-zero block
        let q = QuantizedMatrix.quantize(w, as: type)
        #expect(q.byteCount == type.byteCount(7 * 96))
        let back = q.dequantized()
        for r in 0..<7 {
            for b in 0..<3 {
                let block = (0..<32).map { w.data[r * 96 + b * 32 + $0] }
                let span = (block.max()! - block.min()!), amax = block.map(abs).max()!
                let bound: Float
                switch type {
                case .f32: bound = 0
                case .f16: bound = amax * 1e-3
                case .bf16: bound = amax * 8e-3
                case .q8_0: bound = amax / 127 * 0.5 + amax * 1e-3
                case .q4_0: bound = amax / 8 * 0.5 + amax * 1e-3 + amax / 8   // the −8…7 grid is lopsided
                case .q4_1: bound = span / 15 * 0.5 + span * 2e-3 + amax * 1e-3
                default: bound = 0                         // (the other formats: KQuantTests.swift)
                }
                for j in 0..<32 {
                    let i = r * 96 + b * 32 + j
                    #expect(abs(back.data[i] - w.data[i]) <= bound + 1e-6, "\(type.name) row \(r) block \(b): \(back.data[i]) vs \(w.data[i])")
                }
            }
        }
        // The all-zero block comes back exactly zero.
        for j in 32..<64 { #expect(back.data[96 + j] == 0) }
    }

    /// y = x · Wᵀ through the quantized kernels equals x · dequant(W)ᵀ in float, for 1–4 rows
    /// (the block-dot path) and for many rows (the dequantized-panel + sgemm path).
    @Test(arguments: types)
    func productsMatchTheDequantizedMatrix(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 5)
        let q = QuantizedMatrix.quantize(Tensor.randn([150, 192], rng: rng), as: type)
        let dense = q.dequantized()
        for rows in [1, 3, 4, 5, 37] {
            let x = Tensor.randn([rows, 192], rng: rng)
            let got = linear(x, q), want = linear(x, dense)
            #expect(got.shape == [rows, 150])
            var worst: Float = 0
            for i in 0..<got.count { worst = max(worst, abs(got.data[i] - want.data[i]) / max(1, abs(want.data[i]))) }
            #expect(worst < 2e-5, "\(type.name), \(rows) rows: max error \(worst)")
        }
    }

    @Test func rowLookupAndShapeErrors() {
        let rng = RandomGenerator(seed: 9)
        let w = Tensor.randn([4, 64], rng: rng)
        let q = QuantizedMatrix.quantize(w, as: .q8_0)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: 64)
        defer { row.deallocate() }
        q.dequantizeRow(2, into: row)
        let dense = q.dequantized()
        for j in 0..<64 { #expect(row[j] == dense.data[2 * 64 + j]) }
        #expect(GGMLType.q4_1.blockBytes == 20 && GGMLType.q4_0.blockBytes == 18 && GGMLType.q8_0.blockBytes == 34)
        #expect(GGMLType.name(of: 12) == "Q4_K")
    }
}

/// ggml's arithmetic (activations quantized to 8-bit blocks before the product), computed three
/// ways: the integer kernel (few rows), the prompt path (many rows: the 8-bit GEMM on AVX-512 VNNI,
/// else rounded activations through the float kernels), and a scalar reference written from ggml's
/// block formulas in Double.
@Suite struct GGMLArithmetic {
    static func half(_ v: Float) -> Double { Double(Float(Float16(v))) }

    /// Σ_b d_w·d_x·Σ q_w·q_x (+ m_w·F16(d·Σq_x) for Q4_1), with d = max|x|/127, d_x = F16(d) and
    /// q_x = round-half-to-even(x·127/max|x|) (ggml's x86 activation quantizer).
    static func reference(_ x: [Float], _ w: QuantizedMatrix, row: Int) -> Double {
        let dense = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
        defer { dense.deallocate() }
        w.dequantizeRow(row, into: dense)
        var y = 0.0
        for b in 0..<(w.cols / 32) {
            let v = x[(b * 32)..<(b * 32 + 32)]
            let amax = v.map(abs).max()!
            let d = amax / 127, id: Float = amax != 0 ? 127 / amax : 0
            let q = v.map { ($0 * id).rounded(.toNearestOrEven) }
            let dx = half(d)
            // Dequantized weights reproduce d_w·q_w (+ m_w) exactly in Double up to the F16 scales.
            var dot = 0.0
            for j in 0..<32 { dot += Double(dense[b * 32 + j]) * dx * Double(q[j]) }
            if w.type == .q4_1 {
                // Replace the m·dx·Σq part of `dot` with ggml's m·F16(d·Σq).
                let block = w.bytes + row * w.rowBytes + b * 20
                let mw = Double(Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))))
                let sumq = Double(q.reduce(0, +))
                dot += mw * (half(d * Float(sumq)) - dx * sumq)
            }
            y += dot
        }
        return y
    }

    @Test(arguments: [GGMLType.q4_0, .q4_1, .q8_0])
    func fewRowsManyRowsAndReferenceAgree(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 11)
        let w = QuantizedMatrix.quantize(Tensor.randn([70, 128], rng: rng), as: type)
        let x = Tensor.randn([20, 128], rng: rng)
        let many = linearGGML(x, w)                                  // 20 rows: the prompt path (Int8GEMM.swift or float panels)
        for rows in 1...4 {
            let few = linearGGML(Tensor(shape: [rows, 128], Array(x.scalars[0..<(rows * 128)])), w)
            for i in 0..<(rows * 70) {
                #expect(abs(few.data[i] - many.data[i]) <= 1e-4 * max(1, abs(many.data[i])), "\(type.name) \(rows) rows, element \(i)")
            }
        }
        for r in 0..<20 {
            let xr = Array(x.scalars[(r * 128)..<((r + 1) * 128)])
            for o in 0..<70 {
                let want = Self.reference(xr, w, row: o)
                #expect(abs(Double(many.data[r * 70 + o]) - want) <= 1e-4 * max(1, abs(want)), "\(type.name) row \(r) out \(o)")
            }
        }
    }

    /// A batch of input rows (groups of 8 inputs, one per lane, the last group padded) gives every
    /// row exactly the numbers it gets alone, one block per lane: a sequence's tokens do not depend
    /// on what else is decoding with it. Rows of 7 blocks (fewer than one group of 8), 8 and 18
    /// (two groups and 2 over, as SmolLM2's 576 columns).
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0])
    func batchedRowsEqualEachRowAlone(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 12)
        for cols in [224, 256, 576] {
            let w = QuantizedMatrix.quantize(Tensor.randn([70, cols], rng: rng), as: type)
            for inputs in [2, 3, 4, 7, 8, 11, 16] {
                let x = Tensor.randn([inputs, cols], rng: rng)
                let all = linearGGML(x, w)
                for r in 0..<inputs {
                    let alone = linearGGML(Tensor(shape: [1, cols], Array(x.scalars[(r * cols)..<((r + 1) * cols)])), w)
                    let differing = (0..<70).filter { all.data[r * 70 + $0] != alone.data[$0] }
                    #expect(differing.isEmpty, "\(type.name): \(cols) columns, \(inputs) rows, row \(r) differs from itself alone at outputs \(differing.prefix(5))")
                }
            }
        }
    }
}

/// A prompt's product in ggml's arithmetic (more than 16 input rows: the 8-bit integer GEMM where
/// the machine has AVX-512 VNNI, else dequantized panels) equals the float product of the rounded
/// activations with the dequantized weights, up to the order of float additions; across input
/// counts that leave a partial group of 16 and row counts that leave a partial tile of 4.
@Suite struct PromptProductInGGMLArithmetic {
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q6_K])
    func equalsTheFloatProductOfTheRoundedInputs(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 31)
        for (rows, cols, inputs) in [(37, 512, 17), (8, 256, 40), (64, 768, 128)] {
            let w = QuantizedMatrix.random(type, rows: rows, cols: cols, rng: rng)
            let x = Tensor.randn([inputs, cols], rng: rng)
            let got = linearGGML(x, w)
            let reference: Tensor
            if type == .q4_1 || type == .q5_1 {
                // Plus the minimums times ggml's F16 block sums in place of F16(d)·Σq.
                let (rounded, correction) = roundToQ8WithSumCorrection(x)
                reference = linear(rounded, w) + linear(correction, w.blockMinimums())
            } else {
                reference = linear(roundToBlocks(x, type.activationType), w)
            }
            let dense = w.dequantized()
            var worst: Float = 0
            for i in 0..<inputs {
                for r in 0..<rows {
                    // Relative to Σ|w·x|, the size of the terms the sum adds.
                    var size: Float = 0
                    for k in 0..<cols { size += abs(dense.data[r * cols + k] * x.data[i * cols + k]) }
                    worst = max(worst, abs(got.data[i * rows + r] - reference.data[i * rows + r]) / max(size, 1e-30))
                }
            }
            #expect(worst < 1e-5, "\(type.name) \(rows)×\(cols), \(inputs) inputs: relative difference \(worst)")
        }
    }
}
