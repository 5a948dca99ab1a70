import Foundation
import Models
import Tensors
import Testing
import Tokenization

/// The real model, SmolLM2-135M-Instruct Q4_1, against llama.cpp (fixture from
/// scripts/fixtures/make_llamacpp_fixtures.py; the model is fetched by scripts/fetch/smollm2.sh).
@Suite(.serialized) struct SmolLM2AgainstLlamaCpp {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let path = repo.appendingPathComponent(".cache/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static let fixture = try! JSONSerialization.jsonObject(with: Data(contentsOf: GPTParity.fixtures.appendingPathComponent("smollm2-llamacpp.json"))) as! [String: Any]

    static func load() throws -> (Llama, GGUFVocabulary) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError.file(path, "missing: run scripts/fetch/smollm2.sh (make test does)")
        }
        let file = try GGUFFile(path: path)
        return (try GGUFLlama.load(file), try GGUFVocabulary(file))
    }

    static var prompts: [[String: Any]] { fixture["prompts"] as! [[String: Any]] }

    @Test func configAndTokenizerFacts() throws {
        let (model, vocab) = try Self.load()
        let c = model.config
        #expect(c.layers == 30 && c.embedding == 576 && c.hidden == 1536 && c.heads == 9 && c.kvHeads == 3)
        #expect(c.ropeBase == 100000 && c.rmsNormEpsilon == 1e-5 && c.vocabularySize == 49152 && c.contextLength == 8192 && c.tiedEmbeddings)
        #expect(vocab.bos == 1 && vocab.eos == 2 && !vocab.addBos && (vocab.tokenizer as? Tokenizer)?.pattern == .gpt2Digits)
        #expect(vocab.tokenizer.specialTokenId("<|im_start|>") == 1 && vocab.tokenizer.specialTokenId("<|im_end|>") == 2)
    }

    /// Token ids equal llama.cpp's for every prompt (plain text, code, numbers, accents, CJK,
    /// emoji, runs of spaces and newlines, ChatML with special tokens, special-token text as plain text).
    @Test func tokenIdsEqualLlamaCpp() throws {
        let (_, vocab) = try Self.load()
        for p in Self.prompts {
            let text = p["text"] as! String, want = (p["ids"] as! [Int]).map(UInt32.init)
            let got = p["parse_special"] as! Bool ? try vocab.tokenizer.encode(text, allowedSpecial: .all) : vocab.tokenizer.encodeOrdinary(text)
            #expect(got == want, "\(text.debugDescription)")
            #expect(try vocab.tokenizer.decode(got) == text)
        }
        let tf = Self.fixture["teacher_forced"] as! [String: Any]
        #expect(vocab.tokenizer.encodeOrdinary(tf["text"] as! String) == (tf["ids"] as! [Int]).map(UInt32.init))
    }

    /// One forward pass over ~400 tokens against llama.cpp's one-batch run. With activations
    /// rounded to 8 bits before every product, any change in the order of float additions moves
    /// logits by ~0.1 and flips near-ties: llama.cpp fed one token at a time (its generation path)
    /// agrees with its own one-batch top-1 at only 378 of 397 positions, and our agreement moves
    /// between 376 and 388 with equally faithful details of rounding. So the test asks for what
    /// does not depend on that noise: agreement within 3 % of llama.cpp's own, our top-1 always
    /// within its top 10, and every disagreement at a near-tie of its logits (top two within 0.5).
    @Test func teacherForcedTopOneAgreesWithLlamaCpp() throws {
        try LlamaCppAgreement.checkTeacherForced(try Self.load().0, Self.fixture, name: "SmolLM2")
    }

    @Test func greedyContinuationsMatchLlamaCpp() throws {
        try LlamaCppAgreement.checkGreedy(try Self.load().0, Self.fixture, name: "SmolLM2", minimumMatches: Self.prompts.count / 2)
    }
}
