import Foundation
import Testing
import Tensors

/// Our round-to-nearest quantizers against ggml's own (Tests/Fixtures/ggml-quantize.json, made by
/// scripts/fixtures/make_quantize_fixtures.py through ggml_quantize_chunk): the same floats must
/// give the same bytes, block for block, for every type `llm quantize` writes.
@Suite struct QuantizeReference {
    static let fixture: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ggml-quantize.json")
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    static func bytes(_ hex: String) -> [UInt8] {
        let chars = Array(hex.utf8)
        return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(decoding: chars[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    static let original: Tensor = {
        let shape = fixture["shape"] as! [Int]
        let raw = (fixture["original_hex"] as! [String]).flatMap(bytes)
        let floats = stride(from: 0, to: raw.count, by: 4).map {
            Float(bitPattern: UInt32(raw[$0]) | UInt32(raw[$0 + 1]) << 8 | UInt32(raw[$0 + 2]) << 16 | UInt32(raw[$0 + 3]) << 24)
        }
        return Tensor(shape: shape, floats)
    }()

    static let types: [GGMLType] = [.f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    @Test(arguments: types)
    func bytesEqualGGML(_ type: GGMLType) {
        let want = (Self.fixture["types"] as! [String: [String]])[type.name]!
        let q = QuantizedMatrix.quantize(Self.original, as: type)
        var differing: [String] = []
        for r in 0..<q.rows {
            let got = Array(UnsafeRawBufferPointer(start: q.bytes + r * q.rowBytes, count: q.rowBytes))
            let expected = Self.bytes(want[r])
            #expect(got.count == expected.count)
            for b in 0..<(q.cols / type.blockSize) {
                let range = (b * type.blockBytes)..<((b + 1) * type.blockBytes)
                if got[range] != expected[range] { differing.append("row \(r) block \(b)") }
            }
        }
        #expect(differing.isEmpty, "\(type.name): \(differing.count) blocks differ from ggml's: \(differing.prefix(8))")
    }
}
