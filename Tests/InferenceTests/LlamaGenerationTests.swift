import Foundation
import Inference
import Models
import Testing
import Tensors
import Tokenization

@Suite struct LlamaGeneration {
    static let folder = Generation.fixtures.appendingPathComponent("llama-tiny")
    static let reference = try! JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("reference.json"))) as! [String: Any]

    /// The generator drives a Llama (HF folder and its GGUF copy alike) to transformers' greedy output,
    /// with the cache and without, and continuing a cache over several calls as chat does.
    @Test func greedyMatchesTransformersFromBothFormats() throws {
        let greedy = Self.reference["greedy"] as! [String: Any]
        let prompt = (greedy["prompt"] as! [Int]).map(Int32.init), want = (greedy["ids"] as! [Int]).map(Int32.init)
        let hf = try HuggingFaceLlama.load(folder: Self.folder.path)
        let gguf = try GGUFLlama.load(GGUFFile(path: fixtureGGUF(Self.folder, "tiny-f32.gguf")), arithmetic: .float32)
        for model in [hf, gguf] as [Llama] {
            var gen = Generator(model: model, sampler: .greedy)
            #expect(try gen.generate(prompt: prompt, maxNewTokens: want.count) == want)
            gen.useCache = false
            #expect(try gen.generate(prompt: prompt, maxNewTokens: want.count) == want)
            // Two calls sharing one cache: the second continues where the first stopped.
            gen.useCache = true
            let cache = model.makeCache(capacity: 64)
            let first = try gen.generate(prompt: prompt, maxNewTokens: 10, cache: cache)
            #expect(cache.length == prompt.count + 9)                       // the last token is not fed yet
            let second = try gen.generate(prompt: [first.last!], maxNewTokens: want.count - 10, cache: cache)
            #expect(first + second == want)
            #expect(gen.stats.promptTokens == 1 && gen.stats.generatedTokens == want.count - 10)
        }
    }

    /// The cache grows past its first allocation without changing any logit.
    @Test func growingCacheKeepsEarlierPositions() throws {
        let model = try HuggingFaceLlama.load(folder: Self.folder.path)
        model.eval()
        let ids = (0..<40).map { Int32($0 * 7 % 320) }
        let full = try withNoGrad { try model.logits(ids, batch: 1, length: ids.count) }
        let cache = KVCache(layers: (0..<2).map { _ in FullLayerCache(width: 2 * 16, capacity: 64, initial: 4) }, capacity: 64)
        var worst: Float = 0
        for (t, id) in ids.enumerated() {
            let step = try model.forward([SequenceInput(tokens: [id], cache: cache, logits: .all)])
            for j in 0..<320 { worst = max(worst, abs(step.data[j] - full.data[t * 320 + j])) }
        }
        #expect(cache.bytes == 2 * (2 * 64 * 32 * 4) && cache.length == 40)      // grown 4 → 8 → … → 64 rows
        #expect(worst < 1e-4, "max |Δ| \(worst)")
    }
}

@Suite struct ChatFormat {
    static let smolTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    @Test func chatMLWithTheTemplatesDefaultSystemPrompt() throws {
        let t = try #require(ChatTemplate(jinja: Self.smolTemplate))
        #expect(t.defaultSystemPrompt == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        #expect(t.render([.init(.user, "Hi")]) ==
                "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        // A system message of one's own replaces the default; history renders in order.
        #expect(t.render([.init(.system, "Be brief."), .init(.user, "Hi"), .init(.assistant, "Hello!"), .init(.user, "Bye")], generationPrompt: false) ==
                "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n")
        // A template without a default system message, and one that is not ChatML.
        #expect(ChatTemplate(jinja: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}{% endfor %}")?.defaultSystemPrompt == nil)
        #expect(ChatTemplate(jinja: "[INST] {{ message }} [/INST]") == nil)
    }
}

/// `perplexity` against llama-perplexity on the same model, text and context (fixture in
/// smollm2-llamacpp.json): within 1 %.
@Suite struct PerplexityAgainstLlamaCpp {
    @Test func smolLM2PerplexityWithinOnePercent() throws {
        let repo = Generation.fixtures.deletingLastPathComponent().deletingLastPathComponent()
        let path = repo.appendingPathComponent(".cache/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError.file(path, "missing: run scripts/fetch/smollm2.sh") }
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: Generation.fixtures.appendingPathComponent("smollm2-llamacpp.json"))) as! [String: Any]
        let runs = (fixture["perplexity"] as! [String: Any])["runs"] as! [[String: Any]]
        let file = try GGUFFile(path: path)
        let model = try GGUFLlama.load(file), vocab = try GGUFVocabulary(file)
        var text = try String(contentsOf: Generation.fixtures.appendingPathComponent("perplexity.txt"), encoding: .utf8)
        if text.hasSuffix("\n") { text.removeLast() }              // llama-perplexity drops one trailing newline
        let ids = vocab.tokenizer.encodeOrdinary(text).map(Int32.init)
        for run in runs where (run["context"] as! Int) <= 256 {
            let n = run["context"] as! Int, theirs = run["ppl"] as! Double
            let ours = try perplexity(model: model, ids: ids, context: n)
            #expect(ours.chunks == run["chunks"] as! Int && ours.scored == run["scored_tokens"] as! Int)
            #expect(abs(ours.perplexity / theirs - 1) <= 0.01, "context \(n): ours \(ours.perplexity), llama.cpp \(theirs)")
        }
    }

    /// Gemma 3 270M Q4_K_M (fixture gemma3-llamacpp.json): BOS first in the text and at the start
    /// of every chunk, as llama-perplexity does for a vocabulary that adds BOS; contexts 128 and 512.
    @Test func gemma3PerplexityWithinOnePercent() throws {
        let repo = Generation.fixtures.deletingLastPathComponent().deletingLastPathComponent()
        let path = repo.appendingPathComponent(".cache/gemma-3-270m-q4_k_m.gguf").path
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError.file(path, "missing: run scripts/fetch/gemma3.sh") }
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: Generation.fixtures.appendingPathComponent("gemma3-llamacpp.json"))) as! [String: Any]
        let runs = (fixture["perplexity"] as! [String: Any])["runs"] as! [[String: Any]]
        let file = try GGUFFile(path: path)
        let model = try GGUFModel.load(file), vocab = try GGUFVocabulary(file)
        var text = try String(contentsOf: Generation.fixtures.appendingPathComponent("perplexity.txt"), encoding: .utf8)
        if text.hasSuffix("\n") { text.removeLast() }
        let bos = try #require(vocab.bos)
        let ids = [bos] + vocab.tokenizer.encodeOrdinary(text).map(Int32.init)
        #expect(ids.count == runs[0]["n_tokens"] as! Int)
        for run in runs where [128, 512].contains(run["context"] as! Int) {
            let n = run["context"] as! Int, theirs = run["ppl"] as! Double
            let ours = try perplexity(model: model, ids: ids, context: n, bos: bos)
            #expect(ours.chunks == run["chunks"] as! Int && ours.scored == run["scored_tokens"] as! Int)
            #expect(abs(ours.perplexity / theirs - 1) <= 0.01, "context \(n): ours \(ours.perplexity), llama.cpp \(theirs)")
        }
    }
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
