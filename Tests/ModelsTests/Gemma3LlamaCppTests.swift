import Foundation
import Models
import Tensors
import Testing
import Tokenization

/// The real model, Gemma 3 270M Q4_K_M (SentencePiece vocabulary, Q8_0/Q5_0/Q4_K/Q6_K weights,
/// sliding-window layers), against llama.cpp (fixture from
/// `scripts/fixtures/make_llamacpp_fixtures.py --model gemma3`; the model is fetched by
/// scripts/fetch/gemma3.sh, which `make test` runs).
@Suite(.serialized) struct Gemma3AgainstLlamaCpp {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let path = repo.appendingPathComponent(".cache/gemma-3-270m-q4_k_m.gguf").path
    static let fixture = try! JSONSerialization.jsonObject(with: Data(contentsOf: GPTParity.fixtures.appendingPathComponent("gemma3-llamacpp.json"))) as! [String: Any]

    static func load() throws -> (DecoderModel, GGUFVocabulary) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError.file(path, "missing: run scripts/fetch/gemma3.sh (make test does)")
        }
        let file = try GGUFFile(path: path)
        return (try GGUFModel.load(file), try GGUFVocabulary(file))
    }

    static var prompts: [[String: Any]] { fixture["prompts"] as! [[String: Any]] }

    @Test func configAndTokenizerFacts() throws {
        let (model, vocab) = try Self.load()
        let gemma = try #require(model as? Gemma3)
        let c = gemma.config
        #expect(c.layers == 18 && c.embedding == 640 && c.hidden == 2048 && c.heads == 4 && c.kvHeads == 1 && c.headSize == 256)
        #expect(c.slidingWindow == 512 && c.localLayers.filter { !$0 }.count == 3 && !c.localLayers[5] && c.localLayers[4])
        #expect(c.ropeBase == 1_000_000 && c.localRopeBase == 10_000 && c.rmsNormEpsilon == 1e-6 && c.vocabularySize == 262_144 && c.tiedEmbeddings)
        #expect(vocab.bos == 2 && vocab.eos == 1 && vocab.addBos && vocab.chatTemplate == nil)
        #expect(vocab.tokenizer is SentencePieceTokenizer)
        #expect(vocab.tokenizer.specialTokenId("<start_of_turn>") == 105 && vocab.tokenizer.specialTokenId("<end_of_turn>") == 106)
        // The sliding-window layers' caches hold no more than the window.
        let cache = gemma.makeCache(capacity: 4096)
        #expect(cache.layers[0] is SlidingWindowLayerCache && cache.layers[5] is FullLayerCache)
    }

    /// Token ids equal llama.cpp's (llama_tokenize with add_special and parse_special as recorded):
    /// plain text, code, numbers, accents in NFC and NFD, full-width forms, CJK, emoji, control
    /// characters, whitespace runs, turn markers as special tokens and as plain text.
    @Test func tokenIdsEqualLlamaCpp() throws {
        let (_, vocab) = try Self.load()
        let texts = Self.prompts + (Self.fixture["tokenize_only"] as! [[String: Any]])
        for p in texts {
            let text = p["text"] as! String, want = (p["ids"] as! [Int]).map(UInt32.init)
            let body = p["parse_special"] as! Bool ? try vocab.tokenizer.encode(text, allowedSpecial: .all) : vocab.tokenizer.encodeOrdinary(text)
            let got = (p["add_bos"] as! Bool ? [UInt32(vocab.bos!)] : []) + body
            #expect(got == want, "\(text.debugDescription)")
        }
    }

    /// One forward pass over ~400 tokens against llama.cpp's one-batch run: agreement no worse than
    /// llama.cpp's own one-batch-vs-token-by-token agreement minus 3 points, our top-1 always in
    /// its top 10, every disagreement at a near-tie of its logits.
    @Test func teacherForcedTopOneAgreesWithLlamaCpp() throws {
        try LlamaCppAgreement.checkTeacherForced(try Self.load().0, Self.fixture, name: "Gemma 3")
    }

    /// Free-running, a third of the prompts must keep 16 tokens (SmolLM2: half). Which prompts do
    /// is a draw that any change of float order redraws (see `checkGreedy`): when the few-row
    /// kernels began to sum each block's products in integers before converting them (2026-12-06),
    /// the steps along llama.cpp's tokens that pick another token fell from 7 to 6 of 192 here and
    /// SmolLM2's from 9 to 6, SmolLM2's prompts keeping 16 tokens rose from 3 to 4, and Gemma's fell
    /// from 3 to 2 (prompt 0 now leaves llama.cpp's tokens after 11, where llama.cpp itself on this
    /// Zen 4 leaves its own fixture, made on another CPU, after 11 too).
    @Test func greedyContinuationsMatchLlamaCpp() throws {
        try LlamaCppAgreement.checkGreedy(try Self.load().0, Self.fixture, name: "Gemma 3", minimumMatches: Self.prompts.count / 3)
    }
}
