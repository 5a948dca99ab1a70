import Foundation
import Testing
import Tensors

/// Q5_0, Q5_1 and the K-quants (Q2_K…Q6_K) against gguf-py (Tests/Fixtures/kquant-test.json, made by
/// scripts/fixtures/make_kquant_fixtures.py): dequantized values bit for bit, Q5 bytes from our
/// quantizer, and products through every kernel path against the dequantized matrix; and ggml's
/// arithmetic (activations as Q8_0 / Q8_1 / Q8_K) against a scalar reference in Double.
@Suite struct KQuantFormats {
    static let fixture: [String: [String: Any]] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/kquant-test.json")
        let root = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return root["types"] as! [String: [String: Any]]
    }()
    static let names = ["Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
    static let types: [GGMLType] = [.q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = [], chars = Array(hex.utf8)
        for i in stride(from: 0, to: chars.count, by: 2) { out.append(UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16)!) }
        return out
    }

    /// The fixture's matrix for `name` (its own copy of the bytes) and its entry.
    static func matrix(_ name: String) -> (QuantizedMatrix, [String: Any], [UInt8]) {
        let e = fixture[name]!
        let type = GGMLType(rawValue: UInt32(e["ggml_type_id"] as! Int))!
        let shape = e["shape"] as! [Int]
        let raw = (e["raw_hex"] as! [String]).flatMap(bytes)
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: raw.count, alignment: 64)
        storage.copyBytes(from: raw)
        let owner = Storage(storage)
        return (QuantizedMatrix(type: type, rows: shape[0], cols: shape[1], bytes: UnsafeRawPointer(storage.baseAddress!), owner: owner), e, raw)
    }

    final class Storage {
        let buffer: UnsafeMutableRawBufferPointer
        init(_ b: UnsafeMutableRawBufferPointer) { buffer = b }
        deinit { buffer.deallocate() }
    }

    @Test func layouts() {
        let sizes: [(GGMLType, Int, Int)] = [(.q5_0, 32, 22), (.q5_1, 32, 24), (.q2_K, 256, 84), (.q3_K, 256, 110),
                                             (.q4_K, 256, 144), (.q5_K, 256, 176), (.q6_K, 256, 210), (.q8_K, 256, 292)]
        for (t, size, bytes) in sizes {
            #expect(t.blockSize == size && t.blockBytes == bytes, "\(t.name)")
            if t != .q8_K { #expect(Self.fixture[t.name]!["block_bytes"] as! Int == bytes && Self.fixture[t.name]!["block_size"] as! Int == size) }
        }
    }

    @Test(arguments: names)
    func dequantizedValuesEqualGGUFPy(_ name: String) {
        let (m, e, raw) = Self.matrix(name)
        let want = (e["dequantized"] as! [[Double]]).flatMap { $0 }.map(Float.init)
        let got = m.dequantized().scalars
        #expect(got.count == want.count)
        var differing = 0
        for i in 0..<want.count where got[i].bitPattern != want[i].bitPattern { differing += 1 }
        #expect(differing == 0, "\(name): \(differing) of \(want.count) values differ from gguf-py's")
        // One row at a time gives the same values.
        let row = UnsafeMutablePointer<Float>.allocate(capacity: m.cols)
        defer { row.deallocate() }
        m.dequantizeRow(m.rows - 1, into: row)
        for j in 0..<m.cols { #expect(row[j] == got[(m.rows - 1) * m.cols + j]) }
        // Q5_0 and Q5_1: our quantizer writes gguf-py's bytes.
        if let original = e["original"] as? [[Double]] {
            let t = Tensor(shape: [m.rows, m.cols], original.flatMap { $0 }.map(Float.init))
            let ours = QuantizedMatrix.quantize(t, as: m.type)
            let mine = [UInt8](UnsafeRawBufferPointer(start: ours.bytes, count: ours.byteCount))
            #expect(mine == raw, "\(name): quantized bytes differ from gguf-py's")
        }
    }

    /// The fixture's y = W_deq·x (float64) through the one-row kernel.
    @Test(arguments: names)
    func fixtureProduct(_ name: String) {
        let (m, e, _) = Self.matrix(name)
        let x = (e["x"] as! [Double]).map(Float.init), want = e["y"] as! [Double]
        let y = linear(Tensor(shape: [1, m.cols], x), m)
        for r in 0..<m.rows {
            #expect(abs(Double(y.data[r]) - want[r]) <= 1e-5 * max(1, abs(want[r])), "\(name) row \(r): \(y.data[r]) vs \(want[r])")
        }
    }

    /// y = x · Wᵀ through the kernels equals x · dequant(W)ᵀ: 1–4 rows (block dot products) and
    /// 5 or 37 rows (dequantized panels + sgemm).
    @Test(arguments: types)
    func productsMatchTheDequantizedMatrix(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 17)
        let q = QuantizedMatrix.random(type, rows: 150, cols: 768, rng: rng)
        let dense = q.dequantized()
        #expect(dense.scalars.allSatisfy { $0.isFinite })
        for rows in [1, 3, 4, 5, 37] {
            let x = Tensor.randn([rows, 768], rng: rng)
            let got = linear(x, q), want = linear(x, dense)
            // Float rounding scales with the terms summed, Σ_j |w_j·x_j| (~500 here), not with the
            // result (which cancels to near 0 now and then).
            let terms = linear(x.map(abs), dense.map(abs))
            #expect(got.shape == [rows, 150])
            var worst: Float = 0
            for i in 0..<got.count { worst = max(worst, abs(got.data[i] - want.data[i]) / max(1, abs(want.data[i]), terms.data[i] / 16)) }
            #expect(worst < 2e-5, "\(type.name), \(rows) rows: max error \(worst)")
        }
    }

    @Test func kQuantWeightsCannotBeQuantizedHere() {
        #expect(GGMLType.q4_K.isKQuant && !GGMLType.q5_0.isKQuant)
        #expect(GGMLType.q4_K.activationType == .q8_K && GGMLType.q6_K.activationType == .q8_K && GGMLType.q5_0.activationType == .q8_0)
    }
}

/// ggml's arithmetic for the new formats: the input converted as ggml's CPU path does (Q8_0 for
/// Q5_0, Q8_1 for Q5_1, Q8_K for the K-quants), then exact integer products scaled per block. The
/// few-rows path (integer kernels for Q5_0, Q5_1, Q4_K, Q5_K, Q6_K under AVX2; rounded activations through the
/// float kernels otherwise), the many-rows path, and a scalar Double reference must agree.
@Suite struct KQuantGGMLArithmetic {
    static func half(_ v: Float) -> Double { Double(Float(Float16(v))) }

    /// ggml's quantize_row_q8_K_ref on 256 values: (d, q).
    static func q8K(_ v: ArraySlice<Float>) -> (Float, [Float]) {
        var amax: Float = 0, m: Float = 0
        for a in v where abs(a) > amax { amax = abs(a); m = a }
        guard amax != 0 else { return (0, Array(repeating: 0, count: v.count)) }
        let iscale = -127 / m
        return (1 / iscale, v.map { min(127, (iscale * $0).rounded(.toNearestOrEven)) })
    }

    /// Σ over activation blocks of Σ_j w_j·d_x·q_j in Double, from the dequantized weight row (exact
    /// up to each value's float rounding), with Q5_1's m·F16(d·Σq) term as ggml forms it.
    static func reference(_ x: [Float], _ w: QuantizedMatrix, row: Int) -> Double {
        let dense = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
        defer { dense.deallocate() }
        w.dequantizeRow(row, into: dense)
        var y = 0.0
        if w.type.isKQuant {
            for b in 0..<(w.cols / 256) {
                let (d, q) = q8K(x[(b * 256)..<(b * 256 + 256)])
                for j in 0..<256 { y += Double(dense[b * 256 + j]) * Double(d) * Double(q[j]) }
            }
            return y
        }
        for b in 0..<(w.cols / 32) {
            let v = x[(b * 32)..<(b * 32 + 32)]
            let amax = v.map(abs).max()!
            let d = amax / 127, id: Float = amax != 0 ? 127 / amax : 0
            let q = v.map { ($0 * id).rounded(.toNearestOrEven) }
            let dx = half(d)
            for j in 0..<32 { y += Double(dense[b * 32 + j]) * dx * Double(q[j]) }
            if w.type == .q5_1 {
                let mw = Double(Float(Float16(bitPattern: (w.bytes + row * w.rowBytes + b * 24).loadUnaligned(fromByteOffset: 2, as: UInt16.self))))
                let sumq = Double(q.reduce(0, +))
                y += mw * (half(d * Float(sumq)) - dx * sumq)
            }
        }
        return y
    }

    @Test(arguments: [GGMLType.q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K])
    func fewRowsManyRowsAndReferenceAgree(_ type: GGMLType) {
        let rng = RandomGenerator(seed: 23)
        let w = QuantizedMatrix.random(type, rows: 70, cols: 512, rng: rng)
        let x = Tensor.randn([20, 512], rng: rng)
        x.data[3] = 0                                      // and one all-zero block of 256
        for j in 256..<512 { x.data[512 + j] = 0 }
        let many = linearGGML(x, w)                        // 20 rows: rounded activations, panels + sgemm
        for rows in [1, 3, 4, 5, 9] {
            let few = linearGGML(Tensor(shape: [rows, 512], Array(x.scalars[0..<(rows * 512)])), w)
            for i in 0..<(rows * 70) {
                #expect(abs(few.data[i] - many.data[i]) <= 1e-4 * max(1, abs(many.data[i])), "\(type.name) \(rows) rows, element \(i): \(few.data[i]) vs \(many.data[i])")
            }
        }
        for r in 0..<20 {
            let xr = Array(x.scalars[(r * 512)..<((r + 1) * 512)])
            for o in 0..<70 {
                let want = Self.reference(xr, w, row: o)
                #expect(abs(Double(many.data[r * 70 + o]) - want) <= 1e-4 * max(1, abs(want)), "\(type.name) row \(r) out \(o)")
            }
        }
    }

    /// Activations rounded to Q8_K are d·q with ggml's d and q.
    @Test func q8KRounding() {
        let rng = RandomGenerator(seed: 29)
        let x = Tensor.randn([2, 512], rng: rng)
        x.data[700] = -9                                   // the largest magnitude is negative
        let r = roundToBlocks(x, .q8_K)
        for b in 0..<4 {
            let (d, q) = Self.q8K(x.scalars[(b * 256)..<(b * 256 + 256)])
            for j in 0..<256 { #expect(r.data[b * 256 + j] == d * q[j]) }
        }
    }
}
