import ArgumentParser
import Foundation
import Inference
import Models
import NN
import Tensors
import Training

extension Bench {
    /// `llm bench finetune`: training throughput on a real model (LoRA or full), the same work as
    /// bench/torch_finetune.py does with PyTorch + peft: batch × length random ids as inputs and
    /// targets, forward, backward, AdamW on the trainable parameters. With `--objective dpo`,
    /// batch pairs: 2·batch rows sharing a prompt (the first half) per pair, the second halves
    /// the answers, the reference log-probabilities computed once before timing.
    struct FineTuneSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "finetune", abstract: "Fine-tuning throughput (tok/s, peak RSS): LoRA / QLoRA or full.")
        @Option(help: "A GGUF file or model folder.") var model: String
        @Option(help: "lora or full.") var method = "lora"
        @Option(help: "sft (next-token loss) or dpo (--batch pairs of two --length rows).") var objective = "sft"
        @Option var batch = 8
        @Option var length = 256
        @Option var rank = 16
        @Option var alpha: Float = 32
        @Option(help: "Timed optimizer steps.") var steps = 4
        @Option(help: "Untimed steps first.") var warmupSteps = 1
        @Option var seed: UInt64 = 0
        @Flag(help: "LoRA over Float32 copies of the weights instead of the quantized blocks.") var dequantize = false
        @Flag(help: "Recompute each layer's activations in the backward pass (gradient checkpointing).") var checkpointActivations = false
        @Flag(help: "Print one JSON line.") var json = false
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try checkModel(model)
            try oneOf(method, "--method", ["lora", "full"])
            try oneOf(objective, "--objective", ["sft", "dpo"])
            try positive(batch, "--batch", max: 1 << 12)
            try atLeast(objective == "dpo" ? 4 : 1, length, "--length", max: 1 << 20)
            try positive(rank, "--rank", max: 1 << 14)
            try positive(alpha, "--alpha")
            try positive(steps, "--steps", max: 1 << 20)
            try atLeast(0, warmupSteps, "--warmup-steps", max: 1 << 20, zero: "no warm-up")
        }

        func run() throws {
            global.apply()
            let loaded = try LoadedModel.load(model, arithmetic: .float32)
            guard let decoder = loaded.model as? DecoderModel else { throw CLIError("\(model): not a decoder") }
            guard length <= decoder.contextLength else { throw CLIError("--length \(length) exceeds the context \(decoder.contextLength)") }
            let loadRSS = peakRSSBytes()
            if method == "lora" {
                if dequantize { decoder.dequantizeWeights() }
                try decoder.addLoRA(LoRAConfig(rank: rank, alpha: alpha, dropout: 0.05), rng: RandomGenerator(seed: seed))
            } else {
                decoder.dequantizeWeights()
                decoder.freeze(false)
            }
            decoder.train()
            decoder.checkpointActivations = checkpointActivations
            let opt = AdamW(ParameterGroup.decayMatrices(of: decoder, weightDecay: 0), learningRate: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8)
            let rng = RandomGenerator(seed: seed)
            let ids = (0..<(batch * length)).map { _ in Int32(rng.next() % UInt64(decoder.vocabularySize)) }
            var targets: [Int32] = []
            for r in 0..<batch { targets += Array(ids[(r * length + 1)..<((r + 1) * length)]) + [-100] }
            // DPO: pair p is rows p (chosen) and batch + p (rejected), the same prompt (first half).
            var dpo: DPOObjective?
            if objective == "dpo" {
                let half = length / 2
                let pairs = (0..<batch).map { p -> EncodedPair in
                    let prompt = Array(ids[(p * length)..<(p * length + half)])
                    let other = (0..<(length - half)).map { _ in Int32(rng.next() % UInt64(decoder.vocabularySize)) }
                    let trained = [Bool](repeating: false, count: half) + [Bool](repeating: true, count: length - half)
                    return EncodedPair(chosen: EncodedExample(tokens: Array(ids[(p * length)..<((p + 1) * length)]), trained: trained),
                                       rejected: EncodedExample(tokens: prompt + other, trained: trained))
                }
                decoder.eval()
                decoder.setAdaptersEnabled(false)
                let reference = try DPO.logProbs(decoder, pairs: pairs, pad: 0, batch: batch)
                decoder.setAdaptersEnabled(true)
                decoder.train()
                dpo = try DPOObjective(model: decoder, train: pairs, validation: [], trainReference: reference, validationReference: [],
                                       pad: 0, options: DPOOptions())
            }
            var loss: Float = 0
            func step() throws {
                let l = try dpo.map { try $0.loss(Array(0..<batch)).loss } ?? decoder.loss(ids, targets: targets, batch: batch, length: length)
                loss = l.item
                l.backward()
                opt.step()
                opt.zeroGrad()
            }
            for _ in 0..<warmupSteps { try step() }
            let start = Date()
            for _ in 0..<steps { try step() }
            let seconds = Date().timeIntervalSince(start)
            let counts = Training.parameterCounts(decoder)
            let rows = objective == "dpo" ? 2 * batch : batch
            let tps = Double(rows * length * steps) / seconds
            let rss = Double(peakRSSBytes()) / 1_048_576
            if json {
                print("{\"tokens_per_s\": \(tps), \"seconds_per_step\": \(seconds / Double(steps)), \"peak_rss_mb\": \(rss), \"load_peak_rss_mb\": \(Double(loadRSS) / 1_048_576), \"trainable\": \(counts.trainable), \"total\": \(counts.total), \"loss\": \(loss), \"steps_per_s\": \(Double(steps) / seconds), \"objective\": \"\(objective)\", \"method\": \"\(method)\", \"checkpoint_activations\": \(checkpointActivations)}")
            } else {
                print("\(objective) \(method) B\(batch)\(objective == "dpo" ? " pairs" : "") T\(length): \(String(format: "%.1f", tps)) tok/s, \(String(format: "%.2f", seconds / Double(steps))) s/step, trainable \(short(counts.trainable)) of \(short(counts.total)), peak RSS \(Int(rss)) MiB, loss \(loss)")
            }
        }
    }
}
