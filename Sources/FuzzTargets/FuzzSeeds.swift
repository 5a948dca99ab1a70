import Foundation
import Inference
import Models
import NN
import Quantization
import Tensors
import Tokenization
import Training

/// The tiny models the adapter target loads adapters into, and the seeds are made from.
public enum FuzzModels {
    /// GPT-2 layout: 300 tokens (the seed tokenizer's), context 16, 32 wide, 1 layer, 2 heads.
    public static func gpt() -> GPT {
        GPT(GPTConfig(vocabularySize: 300, contextLength: 16, embedding: 32, layers: 1, heads: 2), rng: RandomGenerator(seed: 1))
    }

    /// Llama layout: 300 tokens, context 16, 32 wide, SwiGLU 64, 1 layer, 2 heads sharing 1 KV head.
    public static func llama() -> Llama {
        Llama(LlamaConfig(vocabularySize: 300, contextLength: 16, embedding: 32, hidden: 64, layers: 1, heads: 2, kvHeads: 1),
              rng: RandomGenerator(seed: 2))
    }

    /// Gemma 3 layout: 300 tokens, 2 layers (one sliding-window of 4, one global), head size 16.
    public static func gemma3() -> Gemma3 {
        Gemma3(Gemma3Config(vocabularySize: 300, contextLength: 16, embedding: 32, hidden: 64, layers: 2, heads: 2, kvHeads: 1,
                            headSize: 16, slidingWindow: 4, localLayers: [true, false]), rng: RandomGenerator(seed: 3))
    }
}

/// Valid inputs for every target, written by the project's own writers (so small that mutations
/// stay fast), the starting corpus of each fuzz run and the first thing the regression test reads.
public enum FuzzSeeds {
    static let text = """
        The quick brown fox jumps over the lazy dog. Hello world, hello tokens! 123 456.
        A small text to learn a few merges from: the the the, and and and, token token.
        """

    /// A byte-level BPE of 300 tokens (256 bytes, 43 merges, <|endoftext|>).
    public static func tokenizer() throws -> Tokenizer {
        try BPETrainer(vocabularySize: 300, pattern: .gpt4, specialTokens: ["<|endoftext|>"]).train([Array(text.utf8)])
    }

    /// Seeds for `target`, each a complete input.
    public static func make(_ target: FuzzTarget) throws -> [[UInt8]] {
        let scratch = try FuzzScratch()
        let dir = scratch.folder
        func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))) }
        switch target {
        case .safetensors:
            let rng = RandomGenerator(seed: 0)
            try Safetensors.write(["a.weight": Tensor.randn([3, 4], rng: rng), "b": Tensor.randn([5], rng: rng)],
                                  metadata: ["format": "pt"], to: dir + "/one.safetensors")
            try HuggingFaceGPT2.save(FuzzModels.gpt(), to: dir + "/gpt")
            return [try read("one.safetensors"), try read("gpt/model.safetensors")]
        case .gguf:
            let tok = try tokenizer()
            var seeds: [[UInt8]] = []
            for (i, (model, type)) in [(FuzzModels.gpt() as DecoderModel, "q8_0"), (FuzzModels.llama(), "f16"), (FuzzModels.llama(), "q4_0")].enumerated() {
                let source = try GGUFSource(model: model, name: "fuzz", tokenizer: tok, bos: nil, eos: 299, chatTemplate: nil)
                _ = try GGUFQuantizer.write(source, scheme: QuantizationScheme(name: type)!, to: dir + "/\(i).gguf")
                seeds.append(try read("\(i).gguf"))
            }
            return seeds
        case .tiktoken:
            try tokenizer().save(to: dir)
            return [try read(Tokenizer.ranksFileName)]
        case .tokenizerJSON:
            try tokenizer().saveHuggingFace(to: dir, eos: 299)
            return [try read("tokenizer.json")]
        case .tokenizerFolder:
            try tokenizer().save(to: dir)
            return [FuzzTarget.join([try read(Tokenizer.configFileName), try read(Tokenizer.ranksFileName)])]
        case .checkpointState:
            let ids = (0..<400).map { UInt32($0 * 7 % 300) }
            try TokenFile.write(ids, vocabularySize: 300, to: dir + "/data.tok")
            var options = TrainingOptions(steps: 2, batch: 2, context: 8)
            options.evalBatches = 1
            let trainer = try Trainer(model: FuzzModels.gpt(), data: TokenFile(path: dir + "/data.tok"), options: options)
            _ = try trainer.trainStep()
            try Checkpoint.save(trainer, run: dir + "/run", tokenizer: "gpt2")
            return [try read("run/checkpoint/state.json")]
        case .tokenFile:
            try TokenFile.write((0..<64).map { UInt32($0 * 5 % 300) }, vocabularySize: 300, to: dir + "/small.tok")
            try TokenFile.write((0..<64).map { UInt32($0 * 4099 % 70000) }, vocabularySize: 70000, to: dir + "/wide.tok")
            return [try read("small.tok"), try read("wide.tok")]
        case .sentencepiece:
            var seeds: [[UInt8]] = []
            for type in [SentencePieceModelFile.ModelType.unigram, .bpe] {
                var m = SentencePieceModelFile()
                m.modelType = type
                m.byteFallback = type == .bpe
                m.pieces = [.init(text: Array("<unk>".utf8), type: .unknown), .init(text: Array("<s>".utf8), type: .control),
                            .init(text: Array("</s>".utf8), type: .control)]
                if type == .bpe { m.pieces += (0..<256).map { .init(text: Array(String(format: "<0x%02X>", $0).utf8), type: .byte) } }
                for (i, p) in ["▁", "▁the", "he", "th", "e", "t", "h", "o", "w", "l", "d", "r", "▁w", "or", "ld", "H", "i"].enumerated() {
                    m.pieces.append(.init(text: Array(p.utf8), score: -Float(i)))
                }
                seeds.append(m.serialized())
            }
            return seeds
        case .datasetJSON:
            return [Array(#"[{"instruction": "Name a color.", "input": "", "output": "Blue."}, {"instruction": "Add", "input": "1+1", "output": "2"}]"#.utf8),
                    Array(#"[{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello {{name}}"}]}]"#.utf8),
                    Array(#"[{"instruction": "Pick", "input": "", "chosen": "good", "rejected": "bad"}, {"conversations": [{"from": "human", "value": "Q"}], "chosen": {"from": "gpt", "value": "A"}, "rejected": {"from": "gpt", "value": "B"}}]"#.utf8)]
        case .datasetJSONL:
            return [Array("{\"instruction\": \"Name a color.\", \"input\": \"\", \"output\": \"Blue.\"}\n{\"text\": \"plain\"}\n".utf8),
                    Array("{\"prompt\": \"Q\", \"chosen\": \"A\", \"rejected\": \"B\"}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}]}\n".utf8)]
        case .datasetCSV:
            return [Array("label,text\nspam,\"Win money, now\"\nham,see you at 5\n".utf8), Array("ham\tsee you\nspam\tfree \"prize\"\n".utf8)]
        case .adapter:
            var seeds: [[UInt8]] = []
            for (i, model) in [FuzzModels.gpt() as DecoderModel, FuzzModels.llama()].enumerated() {
                let config = LoRAConfig(rank: 2, alpha: 4, dropout: 0)
                _ = try model.addLoRA(config, rng: RandomGenerator(seed: 5))
                // B as after some training (a fresh adapter's B is zero, and a zero B is skipped).
                let rng = RandomGenerator(seed: 6)
                for (_, _, lora) in model.loraLayers { for i in 0..<lora.loraB.count { lora.loraB.data[i] = rng.normal() * 0.01 } }
                try PEFTAdapter.save(model, config: config, baseModel: "fuzz", to: dir + "/a\(i)")
                seeds.append(FuzzTarget.join([try read("a\(i)/" + PEFTAdapter.configFile), try read("a\(i)/" + PEFTAdapter.weightsFile)]))
            }
            return seeds
        case .modelFolder:
            try HuggingFaceGPT2.save(FuzzModels.gpt(), to: dir + "/gpt")
            try HuggingFaceLlama.save(FuzzModels.llama(), to: dir + "/llama")
            try HuggingFaceGemma3.save(FuzzModels.gemma3(), to: dir + "/gemma3")
            return try ["gpt", "llama", "gemma3"].map { FuzzTarget.join([try read($0 + "/config.json"), try read($0 + "/model.safetensors")]) }
        case .httpBody:
            return [Array(#"{"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "seed": 3, "stop": ["\n", "END"], "logprobs": true, "top_logprobs": 2, "n": 2, "stream": true, "stream_options": {"include_usage": true}}"#.utf8),
                    Array(#"{"prompt": "Once upon a time", "max_completion_tokens": 16, "stop": "x", "logprobs": 3}"#.utf8),
                    Array(#"{"prompt": [[1, 2, 3], [4, 5]], "max_tokens": 2, "temperature": 0, "unknown": {"a": [null, true]}}"#.utf8)]
        }
    }
}
