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

    func run() throws {
        let tok = try tokenizer == "gpt2" ? loadGPT2() : Tokenizer.load(path: tokenizer)
        let report = try prepareCorpus(inputs: input, jsonlField: jsonlField, tokenizer: tok, out: out, threads: threads)
        print(report)
    }
}

/// Reads the documents, drops exact duplicates, tokenizes them (documents separated by the
/// end-of-text token when the tokenizer has one) and writes the token file. Returns a summary.
func prepareCorpus(inputs: [String], jsonlField: String, tokenizer tok: Tokenizer, out: String, threads: Int) throws -> String {
    var documents: [String] = []
    var files = 0
    for path in inputs {
        for file in try expandInputs(path) {
            files += 1
            let data = try readFile(file)
            if file.hasSuffix(".jsonl") {
                for (n, line) in data.split(separator: 0x0A).enumerated() where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
                    guard let obj = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                        throw CLIError("\(file):\(n + 1): not a JSON object")
                    }
                    guard let text = obj[jsonlField] as? String else { throw CLIError("\(file):\(n + 1): no string field \"\(jsonlField)\"") }
                    documents.append(text)
                }
            } else {
                documents.append(try utf8Text(data, source: file))
            }
        }
    }
    var seen = Set<String>()
    let unique = documents.filter { seen.insert($0).inserted }
    let duplicates = documents.count - unique.count
    let eot = tok.specialTokenId("<|endoftext|>")
    var tokens: [UInt32] = []
    let totalBytes = unique.reduce(0) { $0 + $1.utf8.count }
    var done = 0, lastDraw = Date.distantPast
    let start = Date()
    func progress() {
        guard Date().timeIntervalSince(lastDraw) > 0.1 || done == totalBytes else { return }
        lastDraw = Date()
        let pct = totalBytes == 0 ? 100 : 100 * done / totalBytes
        FileHandle.standardError.write(Data("\r  tokenizing [\(String(repeating: "█", count: pct / 4))\(String(repeating: "·", count: 25 - pct / 4))] \(pct)%  \(String(format: "%.1f", Double(done) / 1e6 / max(Date().timeIntervalSince(start), 1e-9))) MB/s ".utf8))
    }
    // Large documents are cut at piece boundaries and encoded on all threads; small ones go
    // to the threads in groups. Either way the ids equal one-by-one encoding.
    var i = 0
    while i < unique.count {
        if unique[i].utf8.count >= 1 << 16 {
            var doc = unique[i]
            doc.withUTF8 { tokens += tok.encodeOrdinaryParallel(utf8: $0, threads: threads) }
            if let eot { tokens.append(eot) }
            done += doc.utf8.count
            i += 1
        } else {
            var j = i, bytes = 0
            while j < unique.count && unique[j].utf8.count < 1 << 16 && bytes < 1 << 22 { bytes += unique[j].utf8.count; j += 1 }
            for ids in tok.encodeOrdinaryBatch(Array(unique[i..<j]), threads: threads) {
                tokens += ids
                if let eot { tokens.append(eot) }
            }
            done += bytes
            i = j
        }
        progress()
    }
    FileHandle.standardError.write(Data("\n".utf8))
    try TokenFile.write(tokens, vocabularySize: tok.vocabularySize, to: out)
    return "\(files) file(s), \(documents.count) document(s), \(duplicates) exact duplicate(s) dropped, \(totalBytes) bytes → \(tokens.count) tokens (\(String(format: "%.2f", Double(totalBytes) / Double(max(tokens.count, 1)))) bytes/token) in \(out)"
}

/// A file, or every regular file under a folder (sorted, hidden files skipped).
func expandInputs(_ path: String) throws -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("cannot read \(path): no such file") }
    guard isDir.boolValue else { return [path] }
    guard let walker = FileManager.default.enumerator(atPath: path) else { throw CLIError("cannot list \(path)") }
    var files: [String] = []
    for case let rel as String in walker where !rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
        var d: ObjCBool = false
        let full = path + "/" + rel
        if FileManager.default.fileExists(atPath: full, isDirectory: &d), !d.boolValue { files.append(full) }
    }
    return files.sorted()
}
