import Foundation
import Models
import Tensors

/// Perplexity, exp(mean negative log-likelihood of each next token), by llama.cpp's
/// `llama-perplexity` method so that the numbers compare:
///
/// - the text's ids are cut into consecutive chunks of `context` tokens (a partial last chunk is dropped);
/// - with `bos`, each chunk's first token is replaced by it;
/// - every chunk runs on its own, and only its second half is scored: positions context/2 … context−2
///   predict the token after them, so every scored token has at least context/2 tokens of context.
public struct PerplexityResult: Sendable {
    public var perplexity: Double { Foundation.exp(meanNLL) }
    public var meanNLL: Double
    public var chunks: Int
    public var scored: Int
}

public func perplexity(model: any LanguageModel, ids: [Int32], context n: Int, bos: Int32? = nil, maxChunks: Int? = nil,
                       onChunk: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> PerplexityResult {
    guard n >= 4 && n <= model.contextLength else { throw ModelError.input("perplexity: context \(n) outside 4...\(model.contextLength)") }
    let count = chunkCount(ids, context: n, maxChunks: maxChunks)
    let v = model.vocabularySize, first = n / 2
    var nll = 0.0, scored = 0
    model.eval()
    for c in 0..<count {
        let chunk = scoringChunk(ids, c, context: n, bos: bos)
        if let decoder = model as? DecoderModel {
            // The output head only at the scored positions (half the chunk; with Gemma's 262,144-word
            // vocabulary the head is most of the work): log p(next token) there, fused.
            var targets = [Int32](repeating: defaultIgnoreIndex, count: n)
            for j in first..<(n - 1) { targets[j] = chunk[j + 1] }
            let logp = try withNoGrad { try decoder.targetLogProbabilities(chunk, targets: targets, batch: 1, length: n) }   // (n − 1 − first)
            for k in 0..<logp.count { nll -= Double(logp.data[k]) }
            scored += logp.count
        } else {
            let logits = try withNoGrad { try model.logits(chunk, batch: 1, length: n) }   // (1, n, V)
            for j in first..<(n - 1) {
                nll -= logSoftmax(logits.data + j * v, v, target: Int(chunk[j + 1]))
                scored += 1
            }
        }
        onChunk(c + 1, count, Foundation.exp(nll / Double(scored)))
    }
    return PerplexityResult(meanNLL: scored > 0 ? nll / Double(scored) : .nan, chunks: count, scored: scored)
}

/// How many whole chunks of `n` tokens are scored (at most `maxChunks`).
func chunkCount(_ ids: [Int32], context n: Int, maxChunks: Int?) -> Int {
    min(ids.count / n, maxChunks ?? .max)
}

/// Chunk c of the text: tokens c·n ..< (c + 1)·n, the first replaced by `bos` when there is one.
func scoringChunk(_ ids: [Int32], _ c: Int, context n: Int, bos: Int32?) -> [Int32] {
    var chunk = Array(ids[(c * n)..<((c + 1) * n)])
    if let bos { chunk[0] = bos }
    return chunk
}

/// log Σ exp(row) for a row of v logits, in Double (the largest subtracted first).
func logSumExp(_ row: UnsafePointer<Float>, _ v: Int) -> Double {
    var m = -Float.infinity
    for i in 0..<v where row[i] > m { m = row[i] }
    var sum = 0.0
    for i in 0..<v { sum += Foundation.exp(Double(row[i] - m)) }
    return Double(m) + Foundation.log(sum)
}

/// log softmax(row)[target] for a row of v logits, in Double.
public func logSoftmax(_ row: UnsafePointer<Float>, _ v: Int, target: Int) -> Double {
    Double(row[target]) - logSumExp(row, v)
}

/// How far a model's next-token distributions are from a base model's on the same chunks, as
/// `llama-perplexity --kl-divergence` measures a quantized model against the unquantized one:
/// at every scored position (the chunks and positions of `perplexity`), KL(P_base ‖ P_model) =
/// Σ p_base · (log p_base − log p_model), averaged; also how often the two agree on the most
/// likely token, and the model's own perplexity.
public struct DivergenceResult: Sendable {
    public var model: PerplexityResult
    public var base: PerplexityResult
    public var meanKL: Double
    public var sameTopToken: Double        // fraction of scored positions
}

public func klDivergence(model: any LanguageModel, base: any LanguageModel, ids: [Int32], context n: Int, bos: Int32? = nil,
                         maxChunks: Int? = nil, onChunk: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> DivergenceResult {
    guard n >= 4 && n <= min(model.contextLength, base.contextLength) else {
        throw ModelError.input("KL divergence: context \(n) outside 4...\(min(model.contextLength, base.contextLength))")
    }
    guard model.vocabularySize == base.vocabularySize else {
        throw ModelError.input("KL divergence: the base model has \(base.vocabularySize) tokens in its vocabulary, the model \(model.vocabularySize)")
    }
    let count = chunkCount(ids, context: n, maxChunks: maxChunks)
    let v = model.vocabularySize, first = n / 2
    var nll = 0.0, baseNLL = 0.0, kl = 0.0, same = 0, scored = 0
    model.eval(); base.eval()
    var lp = [Double](repeating: 0, count: v), lq = [Double](repeating: 0, count: v)
    for c in 0..<count {
        let chunk = scoringChunk(ids, c, context: n, bos: bos)
        let q = try withNoGrad { try model.logits(chunk, batch: 1, length: n) }     // (1, n, V)
        let p = try withNoGrad { try base.logits(chunk, batch: 1, length: n) }      // (1, n, V)
        for j in first..<(n - 1) {
            logSoftmaxRow(p.data + j * v, v, into: &lp)
            logSoftmaxRow(q.data + j * v, v, into: &lq)
            var sum = 0.0
            for i in 0..<v { sum += Foundation.exp(lp[i]) * (lp[i] - lq[i]) }
            kl += sum
            let target = Int(chunk[j + 1])
            nll -= lq[target]
            baseNLL -= lp[target]
            if argmax(UnsafeBufferPointer(start: p.data + j * v, count: v)) == argmax(UnsafeBufferPointer(start: q.data + j * v, count: v)) { same += 1 }
            scored += 1
        }
        onChunk(c + 1, count, kl / Double(scored))
    }
    let d = Double(max(scored, 1))
    return DivergenceResult(model: PerplexityResult(meanNLL: nll / d, chunks: count, scored: scored),
                            base: PerplexityResult(meanNLL: baseNLL / d, chunks: count, scored: scored),
                            meanKL: kl / d, sameTopToken: Double(same) / d)
}

/// log softmax of a row of v logits, in Double.
func logSoftmaxRow(_ row: UnsafePointer<Float>, _ v: Int, into out: inout [Double]) {
    let shift = logSumExp(row, v)
    for i in 0..<v { out[i] = Double(row[i]) - shift }
}
