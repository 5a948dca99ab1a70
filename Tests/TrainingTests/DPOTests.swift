import Foundation
import Models
import NN
import Tensors
import Testing
import Tokenization
import Training

/// DPO against PyTorch (fixtures from scripts/fixtures/make_dpo_fixtures.py): the loss, the
/// implicit rewards and the gradients of one step on the tiny Llama, with a LoRA adapter (the
/// reference: the adapter switched off) and with every weight (the reference: the base), answer
/// log-probabilities summed and averaged.
@Suite struct DPOParity {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let fixture = try! JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("lora/llama-tiny-dpo.json"))) as! [String: Any]

    static func tensor(_ entry: Any?) -> Tensor {
        let e = entry as! [String: Any]
        return Tensor(shape: e["shape"] as! [Int], (e["data"] as! [Double]).map(Float.init))
    }

    static func relative(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = max(b.scalars.map(abs).max()!, 1e-12)
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! / scale
    }

    /// The fixture's pairs as encoded pairs: prompt untrained, answer trained.
    static func pairs() -> [EncodedPair] {
        (fixture["pairs"] as! [[String: [Int]]]).map { p in
            func side(_ reply: [Int]) -> EncodedExample {
                EncodedExample(tokens: (p["prompt"]! + reply).map(Int32.init),
                               trained: [Bool](repeating: false, count: p["prompt"]!.count) + [Bool](repeating: true, count: reply.count))
            }
            return EncodedPair(chosen: side(p["chosen"]!), rejected: side(p["rejected"]!))
        }
    }

    static func model() throws -> DecoderModel { try ModelFolder.load(fixtures.appendingPathComponent("llama-tiny").path) }

    /// One step's loss, rewards and the gradients of `named`, checked against the case.
    static func check(_ model: DecoderModel, reference: [PairLogProbs], average: Bool, case key: String,
                      named: [String: Tensor]) throws {
        let ref = fixture[key] as! [String: Any]
        let options = DPOOptions(beta: Float(fixture["beta"] as! Double), averageLogprobs: average)
        let pairs = Self.pairs()
        // The reference as PyTorch computed it, summed or averaged as the case says.
        let expectedRef = (ref["reference_logps"] as! [Double]).map(Float.init)
        for (i, r) in reference.enumerated() {
            let v = r.values(average: average)
            #expect(abs(v.chosen - expectedRef[i]) < 1e-5 * max(1, abs(expectedRef[i])), "\(key) reference chosen \(i)")
            #expect(abs(v.rejected - expectedRef[pairs.count + i]) < 1e-5 * max(1, abs(expectedRef[pairs.count + i])), "\(key) reference rejected \(i)")
        }
        let objective = try DPOObjective(model: model, train: pairs, validation: [], trainReference: reference, validationReference: [],
                                         pad: Int32(fixture["pad"] as! Int), options: options)
        model.eval()
        let step = try objective.loss(Array(pairs.indices))
        #expect(abs(step.loss.item - Float(ref["loss"] as! Double)) < 1e-5, "\(key) loss \(step.loss.item)")
        let chosen = (ref["rewards_chosen"] as! [Double]).map(Float.init), rejected = (ref["rewards_rejected"] as! [Double]).map(Float.init)
        let n = Float(pairs.count)
        #expect(abs(step.metrics["rewards/chosen"]! - chosen.reduce(0, +) / n) < 1e-5, "\(key) rewards/chosen")
        #expect(abs(step.metrics["rewards/rejected"]! - rejected.reduce(0, +) / n) < 1e-5, "\(key) rewards/rejected")
        #expect(abs(step.metrics["rewards/margins"]! - (chosen.reduce(0, +) - rejected.reduce(0, +)) / n) < 1e-5, "\(key) rewards/margins")
        let accuracy = Float(zip(chosen, rejected).filter { $0 > $1 }.count) / n
        #expect(step.metrics["rewards/accuracies"] == accuracy)
        step.loss.backward()
        let grads = ref["grads"] as! [String: Any]
        #expect(Set(grads.keys) == Set(named.keys))
        for (name, t) in named {
            let g = try #require(t.grad, "\(key): no gradient for \(name)")
            let err = relative(g, tensor(grads[name]))
            #expect(err < 1e-5, "\(key) \(name): relative error \(err)")
        }
        model.zeroGrad()
    }

    @Test(arguments: [false, true])
    func loraStepMatchesPyTorch(average: Bool) throws {
        let model = try Self.model()
        try PEFTAdapter.load(Self.fixtures.appendingPathComponent("lora/llama-tiny-adapter").path, into: model)
        model.eval()
        // The reference: the adapter switched off, no second copy.
        model.setAdaptersEnabled(false)
        let reference = try DPO.logProbs(model, pairs: Self.pairs(), pad: 2, batch: 1)
        model.setAdaptersEnabled(true)
        var named: [String: Tensor] = [:]
        let roles: [(DecoderWeight, String)] = [(.q, "self_attn.q_proj"), (.k, "self_attn.k_proj"), (.v, "self_attn.v_proj"),
            (.o, "self_attn.o_proj"), (.gate, "mlp.gate_proj"), (.up, "mlp.up_proj"), (.down, "mlp.down_proj")]
        for (i, layer) in model.layers.enumerated() {
            for (role, hf) in roles {
                let l = layer.projection(role) as! LoRALinear
                named["base_model.model.model.layers.\(i).\(hf).lora_A.weight"] = l.loraA
                named["base_model.model.model.layers.\(i).\(hf).lora_B.weight"] = l.loraB
            }
        }
        try Self.check(model, reference: reference, average: average, case: average ? "lora_average" : "lora_sum", named: named)
    }

    @Test(arguments: [false, true])
    func fullStepMatchesPyTorch(average: Bool) throws {
        let model = try Self.model()
        model.eval()
        let reference = try DPO.logProbs(model, pairs: Self.pairs(), pad: 2, batch: 2)     // the base
        try PEFTAdapter.load(Self.fixtures.appendingPathComponent("lora/llama-tiny-adapter").path, into: model)
        model.mergeAdapters()
        model.freeze(false)
        let named: [String: Tensor] = [
            "model.embed_tokens.weight": (model.embedTokens as! Embedding).weight,
            "model.layers.0.self_attn.q_proj.weight": (model.layers[0].projection(.q) as! Linear).weight,
            "model.layers.1.mlp.down_proj.weight": (model.layers[1].projection(.down) as! Linear).weight,
            "model.norm.weight": (model.norm as! RMSNorm).weight,
        ]
        try Self.check(model, reference: reference, average: average, case: average ? "full_average" : "full_sum", named: named)
    }

    /// The fused per-token log-probability op against log-softmax + pick, values and gradients.
    @Test func targetLogProbabilitiesMatchLogSoftmax() throws {
        let rng = RandomGenerator(seed: 3)
        let x = Tensor.uniform([5, 37], -3, 3, rng: rng, requiresGrad: true)
        let targets: [Int32] = [4, -100, 36, 0, 17]
        let fused = x.targetLogProbabilities(targets)
        let weights = Tensor([0.5, 2, -1, 1.5, 0.25])
        (fused * weights).sum().backward()
        let g1 = x.grad!.scalars
        x.grad = nil
        let ls = x.logSoftmax()
        for (r, t) in targets.enumerated() {
            let expected: Float = t == -100 ? 0 : ls.data[r * 37 + Int(t)]
            #expect(abs(fused.data[r] - expected) < 1e-5)
        }
        let onehot = Tensor(zeros: [5, 37])
        for (r, t) in targets.enumerated() where t != -100 { onehot.data[r * 37 + Int(t)] = weights.data[r] }
        (ls * onehot).sum().backward()
        let g2 = x.grad!.scalars
        #expect(zip(g1, g2).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}

/// Preference data: the three record shapes become the texts they should, errors name the place.
@Suite struct PreferenceDataTests {
    static func file(_ text: String, _ ext: String) throws -> String { try FineTuneData.file(text, ext) }

    @Test func promptChosenRejectedAsText() throws {
        let path = try Self.file(#"{"prompt": "2+2=", "chosen": " 4", "rejected": " 5"}"# + "\n", "jsonl")
        let p = try PreferenceData.read(path, format: .book, template: ChatTemplate())[0]
        #expect(p.chosen.segments.map(\.text) == ["2+2=", " 4"] && p.chosen.segments.map(\.trained) == [false, true])
        #expect(p.rejected.segments.map(\.text) == ["2+2=", " 5"])
        #expect(p.source == path + ":1")
    }

    /// The book's records (instruction/input/output/chosen/rejected): the Alpaca prompt, then the answer.
    @Test func booksRecordsUseTheAlpacaPrompt() throws {
        let path = try Self.file(#"[{"instruction": "Rewrite politely.", "input": "Give me that.", "output": "x", "chosen": "Could you give me that?", "rejected": "Give it."}]"#, "json")
        let p = try PreferenceData.read(path, format: .book, template: ChatTemplate())[0]
        #expect(p.chosen.segments[0].text == InstructionData.bookPrompt(instruction: "Rewrite politely.", input: "Give me that."))
        #expect(p.chosen.segments[1].text == "Could you give me that?" && p.rejected.segments[1].text == "Give it.")
    }

    /// LLaMA-Factory's ShareGPT ranking records: the conversation through the chat template,
    /// earlier assistant turns context, only the final answer (with its end marker) trained.
    @Test func llamaFactoryConversationsTrainOnlyTheFinalAnswer() throws {
        let record = #"{"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}], "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}}"#
        let path = try Self.file(record + "\n", "jsonl")
        let template = ChatTemplate()
        let p = try PreferenceData.read(path, format: .book, template: template)[0]
        let turns: [ChatTemplate.Message] = [.init(.system, "S"), .init(.user, "a"), .init(.assistant, "b"), .init(.user, "c")]
        let prompt = template.render(turns, generationPrompt: true)
        #expect(p.chosen.segments.filter(\.trained).map(\.text) == ["good" + ChatTemplate.end])
        #expect(p.chosen.segments.prefix { !$0.trained }.map(\.text).joined() == prompt)
        #expect(p.rejected.segments.filter(\.trained).map(\.text) == ["bad" + ChatTemplate.end])
    }

    /// TRL's conversational shape: prompt as messages, answers as one assistant message each.
    @Test func trlConversationalShape() throws {
        let record = #"{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello!"}], "rejected": [{"role": "assistant", "content": "go away"}]}"#
        let path = try Self.file(record + "\n", "jsonl")
        let p = try PreferenceData.read(path, format: .book, template: ChatTemplate())[0]
        #expect(p.chosen.segments.filter(\.trained).map(\.text) == ["hello!" + ChatTemplate.end])
        #expect(p.rejected.segments.filter(\.trained).map(\.text) == ["go away" + ChatTemplate.end])
    }

    @Test func badRecordsNameFileLineAndField() throws {
        let cases: [(String, String)] = [
            (#"{"prompt": "p", "chosen": "a"}"#, "missing field \"rejected\""),
            (#"{"chosen": "a", "rejected": "b"}"#, "no prompt"),
            (#"{"prompt": "p", "chosen": "", "rejected": "b"}"#, "field \"chosen\" is empty"),
            (#"{"prompt": "p", "chosen": 3, "rejected": "b"}"#, "field \"chosen\" must be text or an assistant message"),
            (#"{"conversations": [{"from": "robot", "value": "x"}], "chosen": "a", "rejected": "b"}"#, "unknown speaker \"robot\""),
            (#"{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}"#, "must be the assistant's"),
        ]
        for (line, message) in cases {
            let path = try Self.file(#"{"prompt": "ok", "chosen": "a", "rejected": "b"}"# + "\n" + line + "\n", "jsonl")
            do {
                _ = try PreferenceData.read(path, format: .book, template: ChatTemplate())
                Issue.record("accepted \(line)")
            } catch {
                let text = "\(error)"
                #expect(text.contains(path + ":2") && text.contains(message), "\(text)")
            }
        }
    }
}

/// Long pairs are cut as TRL's keep_end: the prompt's beginning goes first, then the answers' ends.
@Suite struct PreferenceEncoding {
    @Test func longPromptsLoseTheirBeginning() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let tok = try Tokenizer.gpt2(ranksFile: repo.appendingPathComponent(".cache/gpt2.tiktoken").path)
        let prompt = (1...40).map { " p\($0)" }.joined()
        let pair = PreferencePair(chosen: SFTExample(segments: [(prompt, false), (" good answer", true)], source: "x"),
                                  rejected: SFTExample(segments: [(prompt, false), (" a bad and much longer answer", true)], source: "x"))
        let (full, _) = try FineTuneEncoding.pairs([pair], tokenizer: tok, bos: 7, eos: 50256, maxLength: 1000)
        let (cut, summary) = try FineTuneEncoding.pairs([pair], tokenizer: tok, bos: 7, eos: 50256, maxLength: 40)
        #expect(summary.truncated == 1 && summary.dropped == 0)
        let c = cut[0], f = full[0]
        #expect(c.chosen.tokens.count <= 40 && c.rejected.tokens.count == 40)
        #expect(c.chosen.tokens.first == 7, "BOS kept")
        // Both answers whole (they fit beside the prompt's end), the prompt's end kept.
        #expect(c.chosen.trainedTargets == f.chosen.trainedTargets && c.rejected.trainedTargets == f.rejected.trainedTargets)
        #expect(Array(c.rejected.tokens.suffix(20)) == Array(f.rejected.tokens.suffix(20)))
        // A prompt longer than everything keeps half of max-length; the answers lose their ends.
        let (tight, s2) = try FineTuneEncoding.pairs([pair], tokenizer: tok, bos: nil, eos: 50256, maxLength: 12)
        #expect(s2.truncated == 1 && tight[0].rejected.tokens.count == 12 && tight[0].rejected.trained.firstIndex(of: true) == 6)
    }
}
