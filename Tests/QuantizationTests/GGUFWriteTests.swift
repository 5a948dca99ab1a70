import Foundation
import Testing
import Inference
import Models
import NN
import Quantization
import Tensors
import Tokenization

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID())-\(name)").path
}

/// A committed GGUF fixture (base64 text) written out as a file.
func fixtureGGUF(_ folder: String, _ name: String) throws -> String {
    let text = try Data(contentsOf: fixtures.appendingPathComponent(folder).appendingPathComponent(name + ".base64"))
    let path = temporaryPath(name)
    try Data(base64Encoded: text, options: .ignoreUnknownCharacters)!.write(to: URL(fileURLWithPath: path))
    return path
}

func bytes(_ m: QuantizedMatrix) -> [UInt8] { Array(UnsafeRawBufferPointer(start: m.bytes, count: m.byteCount)) }

/// Six random calibration sequences of 32 tokens for a tiny model (GPTQ's and AWQ's whole-model tests).
func randomCalibration(_ model: DecoderModel) -> [[Int32]] {
    let rng = RandomGenerator(seed: 2)
    return (0..<6).map { _ in (0..<32).map { _ in Int32(rng.next() % UInt64(model.vocabularySize)) } }
}

/// Every projection of every layer is a `QuantizedLinear` of `type`.
func expectProjections(of model: DecoderModel, are type: GGMLType) throws {
    for layer in model.layers {
        for role in [DecoderWeight.q, .k, .v, .o, .gate, .up, .down] {
            let p = try #require(layer.projection(role) as? QuantizedLinear)
            #expect(p.weight.type == type)
        }
    }
}

/// The GGUF writer and the model → GGUF export, read back by our reader and compared with files
/// that gguf-py (llama.cpp's converter library) wrote.
@Suite struct GGUFWriting {
    @Test func metadataAndTensorsReadBackAsWritten() throws {
        let path = temporaryPath("roundtrip.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("test")), ("a.u8", .uint(7, bits: 8)), ("a.i16", .int(-3, bits: 16)),
            ("a.u32", .u32(70000)), ("a.i64", .int(-1 << 40, bits: 64)), ("a.f32", .f32(0.25)), ("a.f64", .float(1e-300, bits: 64)),
            ("a.bool", .bool(true)), ("a.text", .string("héllo ▁ <|endoftext|>")), ("a.strings", .strings(["x", "", "z z"])),
            ("a.nested", .array(elementType: 9, [.int32s([1, -2]), .int32s([])])),
        ]
        let rng = RandomGenerator(seed: 3)
        let sources: [(String, [Int], GGMLType)] = [("w.q4k", [512, 3], .q4_K), ("w.q8", [64, 5], .q8_0), ("b", [7], .f32), ("w.f16", [32, 2], .f16)]
        let values = sources.map { Tensor.randn([$0.1.reduce(1, *)], rng: rng) }
        let plans = sources.map { GGUFTensorPlan(name: $0.0, dims: $0.1, type: $0.2) }
        try GGUFWriter.write(to: path, metadata: metadata, tensors: plans) { i, out in
            quantizeRows(plans[i].type, values[i].data, out.baseAddress!, rows: plans[i].count / plans[i].dims[0], cols: plans[i].dims[0])
        }
        let file = try GGUFFile(path: path)
        #expect(file.version == 3 && file.metadata.count == metadata.count)
        for (i, (k, v)) in metadata.enumerated() {
            #expect(file.metadata[i].key == k)
            #expect(file.metadata[i].value.description == v.description && file.metadata[i].value.typeName == v.typeName, "\(k)")
        }
        for (i, s) in sources.enumerated() {
            let info = try #require(file.tensorInfo(s.0))
            #expect(info.dims == s.1 && info.type == s.2.rawValue && info.offset % 32 == 0)
            let want = QuantizedMatrix.quantize(values[i].reshaped([s.1.reduce(1, *) / s.1[0], s.1[0]]), as: s.2)
            #expect(bytes(try file.matrix(s.0)) == bytes(want), "\(s.0)")
        }
    }

    @Test func failedWriteLeavesNoFile() throws {
        let folder = temporaryPath("out")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try GGUFWriter.write(to: folder + "/x.gguf", metadata: [("general.architecture", .string("t"))],
                                 tensors: [GGUFTensorPlan(name: "a", dims: [4], type: .f32)]) { _, _ in throw Stop() }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
        #expect(throws: ModelError.self) {
            try GGUFWriter.write(to: folder + "/y.gguf", metadata: [], tensors: [GGUFTensorPlan(name: "a", dims: [40, 2], type: .q8_0)]) { _, _ in }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    /// Our Llama export of the tiny HF model equals, tensor for tensor and bit for bit, the F32 GGUF
    /// that gguf-py wrote with llama.cpp's converter conventions (the q/k permutation included),
    /// with the same vocabulary and merges.
    @Test func llamaExportEqualsTheConvertersFile() throws {
        let loaded = try LoadedModel.load(fixtures.appendingPathComponent("llama-tiny").path)
        let source = try GGUFSource(model: loaded.model as! DecoderModel, name: "tiny", tokenizer: loaded.tokenizer,
                                    bos: loaded.bos, eos: loaded.eos, chatTemplate: nil)
        let path = temporaryPath("llama.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try GGUFQuantizer.write(source, scheme: .single(.f32), to: path)
        let ours = try GGUFFile(path: path), theirs = try GGUFFile(path: try fixtureGGUF("llama-tiny", "tiny-f32.gguf"))
        #expect(Set(ours.tensors.map(\.name)) == Set(theirs.tensors.map(\.name)))
        for t in theirs.tensors {
            let a = try ours.matrix(t.name), b = try theirs.matrix(t.name)
            #expect(ours.tensorInfo(t.name)!.dims == t.dims)
            #expect(bytes(a) == bytes(b), "\(t.name)")
        }
        #expect(ours["tokenizer.ggml.tokens"]!.strings! == theirs["tokenizer.ggml.tokens"]!.strings!)
        #expect(ours["tokenizer.ggml.merges"]!.strings! == theirs["tokenizer.ggml.merges"]!.strings!)
        for key in ["llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
                    "llama.attention.head_count_kv", "llama.context_length", "llama.rope.dimension_count"] {
            #expect(ours[key]?.int == theirs[key]?.int, "\(key)")
        }
        #expect(ours["llama.rope.freq_base"]?.double == theirs["llama.rope.freq_base"]?.double)
        #expect(ours["tokenizer.ggml.pre"]?.string == "smollm")
        // Read back as a vocabulary, it encodes as the tokenizer it came from.
        let vocab = try GGUFVocabulary(ours)
        let text = "Hello world, 12345 tokens\n  and <|endoftext|> café"
        #expect(try vocab.tokenizer.encode(text, allowedSpecial: .all) == (try loaded.tokenizer!.encode(text, allowedSpecial: .all)))
    }

    /// A vocabulary whose ids are its ranks (a tiktoken file) gets the merges that the explicit
    /// list of a trained BPE has: derived from the ranks, they are the same list.
    @Test func mergesDerivedFromRanksEqualTheTrainedList() throws {
        let trained = try Tokenizer.load(huggingFace: fixtures.appendingPathComponent("hf_bytelevel/tokenizer.json").path)
        let explicit = trained.spelledVocabulary()
        var tokens: [[UInt8]] = []
        for id in 0..<UInt32(trained.bpe.count) { tokens.append(Array(trained.bpe.tokenBytes(id))) }
        let ranked = Tokenizer(pattern: trained.pattern, bpe: try BytePairEncoder(tokens: tokens, allowMissingBytes: true),
                               specialTokens: Dictionary(trained.specialTokens.map { ($0.text, $0.id) }, uniquingKeysWith: { a, _ in a }))
        let derived = ranked.spelledVocabulary()
        #expect(derived.tokens == explicit.tokens)
        #expect(derived.merges.count == explicit.merges.count)
        #expect(derived.merges == explicit.merges)
    }

    /// A GPT written as llama.cpp's gpt2 architecture and read back computes the same logits, and
    /// its tokenizer (GPT-2's, merges derived from the tiktoken ranks) encodes text the same way.
    @Test func gptRoundTripsThroughGGUF() throws {
        let gpt = try HuggingFaceGPT2.load(folder: fixtures.appendingPathComponent("gpt2-tiny").path)
        gpt.eval()
        let path = temporaryPath("gpt.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = try GGUFSource(model: gpt, name: "gpt2-tiny", tokenizer: nil, bos: nil, eos: nil, chatTemplate: nil)
        _ = try GGUFQuantizer.write(source, scheme: .single(.f32), to: path)
        let file = try GGUFFile(path: path)
        #expect(file["general.architecture"]?.string == "gpt2" && file["general.file_type"]?.int == 0)
        let back = try GGUFModel.load(file, arithmetic: .float32)
        #expect(back is GPT)
        let ids: [Int32] = [1, 5, 9, 2, 7, 3, 0, 4]
        let want = try gpt.logits(ids, batch: 1, length: ids.count).scalars
        let got = try back.logits(ids, batch: 1, length: ids.count).scalars
        let diff = zip(want, got).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-5, "max |logit difference| \(diff)")
    }
}
