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
        let (model, _) = try Self.load()
        model.eval()
        let tf = Self.fixture["teacher_forced"] as! [String: Any]
        let ids = (tf["ids"] as! [Int]).map(Int32.init)
        let top10 = tf["top10"] as! [[[Double]]]
        let logits = try withNoGrad { try model.logits(ids, batch: 1, length: ids.count) }      // (1, T, V)
        let v = model.vocabularySize
        var agree = 0, inTop10 = 0, worstTop1Logit: Double = 0, missGaps: [Double] = []
        for t in 0..<ids.count {
            let row = logits.data + t * v
            let ours = (0..<v).max { row[$0] < row[$1] }!
            let theirs = top10[t].map { Int($0[0]) }
            if ours == theirs[0] { agree += 1 } else { missGaps.append(top10[t][0][1] - top10[t][1][1]) }
            if theirs.contains(ours) { inTop10 += 1 }
            worstTop1Logit = max(worstTop1Logit, abs(Double(row[theirs[0]]) - top10[t][0][1]))
        }
        let rate = Double(agree) / Double(ids.count)
        print("SmolLM2 teacher-forced top-1 vs llama.cpp: \(agree)/\(ids.count); worst |Δ logit| of its top-1 \(worstTop1Logit); llama.cpp's top-2 gaps where we differ: \(missGaps)")
        // Every disagreement is a near-tie in llama.cpp's own logits: its top two within 0.5, the
        // size of the logit differences float order alone makes here (worst |Δ| of its top-1 is
        // 0.3–0.5 across OpenBLAS kernels; on Intel AVX-512 one miss sits at a gap of 0.35).
        #expect(missGaps.allSatisfy { $0 < 0.5 }, "llama.cpp's top-2 gaps where we differ: \(missGaps)")
        let floor = tf["stepwise_top1_agreement"] as! Int
        #expect(Double(agree) >= Double(floor) - 0.03 * Double(ids.count), "top-1 agreement \(agree)/\(ids.count) = \(rate); our top-1 within their top-10 at \(inTop10); worst |Δ logit| of their top-1 \(worstTop1Logit)")
        #expect(inTop10 == ids.count)
    }

    /// Greedy 32-token continuations (the KV cache path): every divergence from llama.cpp happens
    /// where its own top two candidates were within 0.3 of each other (a near-tie that float order
    /// alone can flip, as above), and at least half the prompts agree for 16 tokens or more.
    @Test func greedyContinuationsMatchLlamaCpp() throws {
        let (model, _) = try Self.load()
        model.eval()
        var matches = 0, report: [String] = []
        for p in Self.prompts {
            let prompt = (p["ids"] as! [Int]).map(Int32.init), want = (p["greedy"] as! [Int]).map(Int32.init)
            let got = try greedyContinuation(model, prompt: prompt, count: want.count)
            let same = zip(got, want).prefix { $0 == $1 }.count
            if same >= 16 { matches += 1 }
            let gaps = p["greedy_top2_gap"] as! [Double]
            report.append("\(same)/32" + (same < 32 ? " (llama.cpp's top-2 gap there \(gaps[same]))" : ""))
            if same < 32 { #expect(gaps[same] < 0.3, "prompt \((p["text"] as! String).prefix(30).debugDescription) diverges at step \(same), where llama.cpp's top-2 gap is \(gaps[same])") }
        }
        print("SmolLM2 greedy vs llama.cpp, identical prefix per prompt: \(report)")
        #expect(matches >= Self.prompts.count / 2, "identical prefix lengths per prompt: \(report)")
    }
}
