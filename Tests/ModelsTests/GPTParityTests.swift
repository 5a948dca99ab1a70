import Foundation
import Models
import NN
import Testing
import Tensors

/// GPT against Hugging Face transformers (fixtures from scripts/fixtures/make_gpt2_fixtures.py).
@Suite struct GPTParity {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent(name))) as! [String: Any]
    }
    static func model() throws -> GPT { try HuggingFaceGPT2.load(folder: fixtures.appendingPathComponent("gpt2-tiny").path) }

    @Test func parameterCountsEqualHuggingFace() throws {
        let counts = try Self.json("gpt2-tiny-reference.json")["param_counts"] as! [String: Int]
        #expect(counts["gpt2"] == 124_439_808)
        for (name, expected) in counts {
            #expect(GPTParams.count(GPTConfig.presets[name]!) == expected, "\(name)")
        }
        #expect(try Self.model().parameterCount == Self.json("gpt2-tiny-reference.json")["param_count"] as! Int)
    }

    @Test func logitsLossAndGreedyMatchTransformers() throws {
        let ref = try Self.json("gpt2-tiny-reference.json")
        let gpt = try Self.model()
        gpt.eval()
        let ids = (ref["ids"] as! [Int]).map(Int32.init)
        let logits = try withNoGrad { try gpt.logits(ids, batch: 1, length: ids.count) }
        let expected = (ref["logits"] as! [[Double]]).flatMap { $0 }.map(Float.init)
        let maxAbs = zip(logits.scalars, expected).map { abs($0 - $1) }.max()!
        #expect(maxAbs <= 1e-4, "max abs logit difference \(maxAbs)")
        let loss = try withNoGrad { try gpt.loss(ids, targets: Array(ids.dropFirst()) + [-100], batch: 1, length: ids.count).item }
        #expect(abs(loss - Float(ref["loss"] as! Double)) <= 1e-5, "loss \(loss) vs \(ref["loss"]!)")
        // Greedy continuation, recomputing the whole prefix each step.
        var seq = (ref["greedy_prompt"] as! [Int]).map(Int32.init)
        let want = (ref["greedy_ids"] as! [Int]).map(Int32.init)
        for _ in want {
            let out = try withNoGrad { try gpt.logits(seq, batch: 1, length: seq.count) }
            let v = gpt.config.vocabularySize
            let last = Array(out.scalars[((seq.count - 1) * v)...])
            seq.append(Int32(last.firstIndex(of: last.max()!)!))
        }
        #expect(Array(seq.suffix(want.count)) == want)
    }

    /// One full training step (loss, backward, clipping, AdamW with decay on matrices only)
    /// lands on the weights PyTorch computed.
    @Test func oneAdamWStepMatchesPyTorch() throws {
        try checkAdamWStep(try Self.model(), fixture: "gpt2-tiny-train-step.json") { try HuggingFaceGPT2.tensors(of: $0 as! GPT) }
    }

    @Test func exportedFolderLoadsBackIdentically() throws {
        let gpt = try Self.model()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpt-\(UUID())").path
        try HuggingFaceGPT2.save(gpt, to: dir)
        let back = try HuggingFaceGPT2.load(folder: dir)
        for ((n1, a), (n2, b)) in zip(gpt.namedParameters(), back.namedParameters()) {
            #expect(n1 == n2 && a.scalars == b.scalars)
        }
    }

    @Test func strictLoadListsEveryProblemByName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent("gpt2-tiny/config.json").path, toPath: dir + "/config.json")
        let file = try Safetensors.read(Self.fixtures.appendingPathComponent("gpt2-tiny/model.safetensors").path)
        var tensors = try file.tensors()
        tensors["transformer.h.1.mlp.c_fc.bias"] = nil
        tensors["transformer.extra.weight"] = Tensor.zeros([2])
        tensors["transformer.ln_f.weight"] = Tensor.zeros([47])
        try Safetensors.write(tensors, to: dir + "/model.safetensors")
        do {
            _ = try HuggingFaceGPT2.load(folder: dir)
            Issue.record("load should fail")
        } catch {
            let message = "\(error)"
            #expect(message.contains("missing: transformer.h.1.mlp.c_fc.bias"))
            #expect(message.contains("unexpected: transformer.extra.weight"))
            // Mis-shaped tensors are reported by the strict module load.
        }
    }

    @Test func truncatedSafetensorsIsAClearError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("t-\(UUID()).safetensors").path
        let good = try Data(contentsOf: Self.fixtures.appendingPathComponent("gpt2-tiny/model.safetensors"))
        try good.prefix(5000).write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError.self) { try Safetensors.read(path) }
        do { _ = try Safetensors.read(path) } catch { #expect("\(error)".contains("outside the")) }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        do { _ = try Safetensors.read(path) } catch { #expect("\(error)".contains("too short")) }
    }
}

/// Parameter count of a config without allocating the model (for the big presets).
enum GPTParams {
    static func count(_ c: GPTConfig) -> Int {
        let e = c.embedding, bias = c.bias ? 1 : 0
        let block = 2 * (e + bias * e) + (e * 3 * e + bias * 3 * e) + (e * e + bias * e) + (e * 4 * e + bias * 4 * e) + (4 * e * e + bias * e)
        return c.vocabularySize * e + c.contextLength * e + c.layers * block + e + bias * e + (c.tiedEmbeddings ? 0 : c.vocabularySize * e)
    }
}

@Suite struct SafetensorsDTypes {
    /// Half and bfloat16 tensors become the Float32 values their bits stand for.
    @Test func f16AndBF16AreConverted() throws {
        let header = #"{"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[10,16]}}"#
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(Data(header.utf8))
        for h: UInt16 in [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x8000] { withUnsafeBytes(of: h.littleEndian) { bytes.append(contentsOf: $0) } }
        for b: UInt16 in [0x3F80, 0xC020, 0x4049] { withUnsafeBytes(of: b.littleEndian) { bytes.append(contentsOf: $0) } }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dt-\(UUID()).safetensors").path
        try bytes.write(to: URL(fileURLWithPath: path))
        let file = try Safetensors.read(path)
        #expect(try file.tensor("h").scalars == [1, -2.5, 65504, 0x1p-24, -0.0])
        #expect(try file.tensor("b").scalars == [1, -2.5, 3.140625])
    }
}
