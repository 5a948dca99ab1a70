import ArgumentParser
import Foundation
import Training
import Inference
import Models
import Tensors

/// `llm perplexity`: how surprised a model is by a text, exp(mean negative log-likelihood), by
/// llama-perplexity's method (chunks of --context tokens, second halves scored; see
/// Inference/Perplexity.swift).
struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Perplexity of a model on a text file (llama-perplexity's method).")
    @Option(help: "A GGUF file, a model folder (config.json + model.safetensors), or a training run.") var model: String
    @Option(help: "The text file (UTF-8).") var file: String
    @Option(help: "Tokens per chunk (default: 512, or the model's context if smaller).") var context: Int?
    @Option(help: "Score at most this many chunks.") var chunks: Int?
    @Option(help: "Tokenizer (default: the model's own).") var tokenizer: String?
    @Option(help: ArgumentHelp("Also the mean KL divergence from this base model's next-token distributions to the model's (as llama-perplexity --kl-divergence; say, the unquantized model of a quantized one). Same vocabulary.", valueName: "model"))
    var klBase: String?
    @Flag(help: "Print {\"perplexity\", \"nll\", \"chunks\", \"scored\", \"context\", \"tokens\"} (with --kl-base also \"kl_divergence\", \"same_top\", \"base_perplexity\") and nothing else.") var json = false
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        try existing(file, "--file", .file)
        try atLeast(4, context, "--context", max: 1 << 20)
        try positive(chunks, "--chunks")
        try checkTokenizer(tokenizer)
        try checkModel(klBase, "--kl-base")
    }

    func run() throws {
        global.apply()
        let loaded = try loading.load(model, tokenizer: tokenizer)
        let lm = loaded.model
        var text = try utf8Text(readFile(file), source: file)
        // As llama-perplexity: one trailing newline dropped, special-token text read as plain text,
        // BOS (when the model wants it) first in the text and again at the start of every chunk.
        if text.unicodeScalars.last == "\n" { text.unicodeScalars.removeLast() }
        let ids = (loaded.bos.map { [$0] } ?? []) + (try loaded.encodePlain(text))
        try loaded.check(ids, what: file)
        if let context, context > lm.contextLength { throw CLIError("--context \(context) exceeds the model's context of \(lm.contextLength)") }
        let n = min(context ?? 512, lm.contextLength)
        guard n >= 4 else { throw CLIError("--context \(n) is too small (at least 4)") }
        guard ids.count >= n else {
            throw CLIError("\(file): \(ids.count) tokens is less than one chunk of \(n) (use a smaller --context or a longer text)")
        }
        let started = Date()
        if let klBase {
            let base: LoadedModel
            do { base = try loading.load(klBase, tokenizer: tokenizer) } catch { throw CLIError("--kl-base \(klBase): \(error)") }
            guard base.model.vocabularySize == lm.vocabularySize else {
                throw CLIError("--kl-base \(klBase): its vocabulary has \(base.model.vocabularySize) tokens, the model's \(lm.vocabularySize); the two must share one tokenizer")
            }
            guard n <= base.model.contextLength else { throw CLIError("--kl-base \(klBase): its context is \(base.model.contextLength) tokens, less than the chunks of \(n)") }
            let r = try klDivergence(model: lm, base: base.model, ids: ids, context: n, bos: loaded.bos, maxChunks: chunks) { c, total, running in
                if !json { FileHandle.standardError.write(Data("[\(c)/\(total)] KL \(String(format: "%.6f", running))\n".utf8)) }
            }
            if json {
                print("{\"perplexity\": \(r.model.perplexity), \"nll\": \(r.model.meanNLL), \"chunks\": \(r.model.chunks), \"scored\": \(r.model.scored), \"context\": \(n), \"tokens\": \(ids.count), \"kl_divergence\": \(r.meanKL), \"same_top\": \(r.sameTopToken), \"base_perplexity\": \(r.base.perplexity)}")
            } else {
                print("perplexity \(String(format: "%.4f", r.model.perplexity)) (base \(String(format: "%.4f", r.base.perplexity))), mean KL divergence from the base \(String(format: "%.6f", r.meanKL)), same top token \(String(format: "%.2f", 100 * r.sameTopToken)) % (over \(r.model.scored) tokens: \(r.model.chunks) chunks of \(n), second halves scored; \(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
            }
            return
        }
        let result = try Inference.perplexity(model: lm, ids: ids, context: n, bos: loaded.bos, maxChunks: chunks) { c, total, running in
            if !json { FileHandle.standardError.write(Data("[\(c)/\(total)] \(String(format: "%.4f", running))\n".utf8)) }
        }
        let (mean, ppl, scored, count) = (result.meanNLL, result.perplexity, result.scored, result.chunks)
        if json {
            print("{\"perplexity\": \(ppl), \"nll\": \(mean), \"chunks\": \(count), \"scored\": \(scored), \"context\": \(n), \"tokens\": \(ids.count)}")
        } else {
            print("perplexity \(String(format: "%.4f", ppl)) (mean NLL \(String(format: "%.5f", mean)) over \(scored) tokens: \(count) chunks of \(n), second halves scored; \(ids.count) tokens in the text; \(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
        }
    }
}

