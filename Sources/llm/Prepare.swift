import ArgumentParser
import Foundation
import Inference
import Tokenization
import Training

/// `llm prepare`: text files, folders and JSON-lines documents → one token file.
struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Tokenize a corpus once into a token file for training.")

    @Option(parsing: .upToNextOption, help: "Text files, folders of them, or .jsonl files.") var input: [String]
    @Option(help: "The field holding the text in .jsonl documents.") var jsonlField = "text"
    @Option(help: "gpt2, or a tokenizer path.") var tokenizer = "gpt2"
    @Option(help: "The token file to write.") var out: String
    @Option(help: "Threads for tokenizing.") var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard !input.isEmpty else { throw CLIError("give at least one --input file or folder") }
        for path in input { try existing(path, "--input", .fileOrFolder) }
        try nonEmpty(jsonlField, "--jsonl-field")
        if tokenizer != "gpt2" { try existing(tokenizer, "--tokenizer", .fileOrFolder) }
        try outputFile(out, "--out")
        try positive(threads, "--threads", max: largestThreadCount)
    }

    func run() throws {
        let tok = try tokenizer == "gpt2" ? loadGPT2() : Tokenizer.load(path: tokenizer)
        let report = try prepareCorpus(inputs: input, jsonlField: jsonlField, tokenizer: tok, out: out, threads: threads)
        print(report)
    }
}

/// `prepareCorpus` (Training) with a progress bar on stderr; returns its summary line.
func prepareCorpus(inputs: [String], jsonlField: String, tokenizer: Tokenizer, out: String, threads: Int) throws -> String {
    var lastDraw = Date.distantPast
    let summary = try Training.prepareCorpus(inputs: inputs, jsonlField: jsonlField, tokenizer: tokenizer, out: out, threads: threads) { done, total, seconds in
        guard Date().timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = Date()
        let pct = total == 0 ? 100 : 100 * done / total
        FileHandle.standardError.write(Data("\r  tokenizing [\(String(repeating: "█", count: pct / 4))\(String(repeating: "·", count: 25 - pct / 4))] \(pct)%  \(String(format: "%.1f", Double(done) / 1e6 / max(seconds, 1e-9))) MB/s ".utf8))
    }
    FileHandle.standardError.write(Data("\n".utf8))
    return summary.description
}
