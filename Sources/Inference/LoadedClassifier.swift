import Foundation
import Models
import NN
import Tensors
import Tokenization
import Training

/// A classification fine-tuning run, ready to label texts: its base model (with the run's
/// adapter, or the run's fully fine-tuned weights), the head, the labels and the tokenizer.
public struct LoadedClassifier {
    public let loaded: LoadedModel
    public let classifier: SequenceClassifier
    public let info: FineTuneRunInfo

    public var labels: [String] { classifier.labels }

    public static func load(_ run: String, arithmetic: GGUFModel.Arithmetic = .float32) throws -> LoadedClassifier {
        let info = try FineTuneRun.readInfo(run)
        guard info.options.task == .classify, let labels = info.labels else {
            throw InferenceError("\(run) is an SFT run: use generate, chat, logits or perplexity with --model \(run)")
        }
        let loaded: LoadedModel, score: Tensor
        switch info.options.method {
        case .lora:
            loaded = try LoadedModel.load(info.base, tokenizer: info.tokenizer, arithmetic: arithmetic)
            guard let decoder = loaded.model as? DecoderModel else { throw InferenceError("\(info.base): not a decoder model") }
            let contents = try PEFTAdapter.load(run, into: decoder)
            guard let s = contents.score else { throw InferenceError("\(run)/\(PEFTAdapter.weightsFile): no classification head (score.weight)") }
            score = s
        case .full, .head:
            let base = try LoadedModel.load(info.base, tokenizer: info.tokenizer, arithmetic: arithmetic)
            loaded = info.options.method == .full
                ? base.replacing(model: try LoadedModel.load(run + "/" + FineTuneRun.modelFolder, arithmetic: arithmetic).model,
                                 summary: base.summary + " (fine-tuned in \(run))", started: Date())
                : base
            score = try Safetensors.read(run + "/" + FineTuneRun.scoreFile).tensor("score.weight")
        }
        guard let decoder = loaded.model as? DecoderModel else { throw InferenceError("\(info.base): not a decoder model") }
        guard loaded.tokenizer != nil else { throw InferenceError("\(info.base): no tokenizer") }
        let classifier = try SequenceClassifier(base: decoder, labels: labels, score: score)
        classifier.eval()
        return LoadedClassifier(loaded: loaded, classifier: classifier, info: info)
    }

    /// Texts → ids as the run was trained (BOS when the model wants it, cut to its max length).
    public func encode(_ text: String) -> [Int32] {
        let ids = (loaded.bos.map { [$0] } ?? []) + loaded.tokenizer!.encodeOrdinary(text).map { Int32($0) }
        return Array(ids.prefix(min(info.options.maxLength, classifier.base.contextLength)))
    }

    /// Class probabilities for each text (softmax of the head's logits), in batches of similar length.
    public func probabilities(_ texts: [String], batch: Int = 8) throws -> [[Float]] {
        let encoded = texts.map { EncodedExample(tokens: encode($0), trained: []) }
        for (i, e) in encoded.enumerated() where e.tokens.isEmpty { throw InferenceError("text \(i + 1) encodes to no tokens") }
        var out = [[Float]](repeating: [], count: texts.count)
        let k = labels.count
        for group in LengthGroupedBatches(lengths: encoded.map(\.tokens.count), batch: batch, seed: 0).groups {
            let b = PaddedBatch(group.map { encoded[$0] }, pad: 0, task: .classify)
            let p = try withNoGrad { try classifier.logits(b.ids, lengths: b.lengths, length: b.length).softmax() }   // (B, K)
            for (r, i) in group.enumerated() { out[i] = Array(UnsafeBufferPointer(start: p.data + r * k, count: k)) }
        }
        return out
    }
}
