import Foundation
import Tokenization

/// What `prepareCorpus` did.
public struct CorpusSummary: Sendable, CustomStringConvertible {
    public var files: Int, documents: Int, duplicates: Int, bytes: Int, tokens: Int
    public var output: String
    public var description: String {
        "\(files) file(s), \(documents) document(s), \(duplicates) exact duplicate(s) dropped, \(bytes) bytes → \(tokens) tokens (\(String(format: "%.2f", Double(bytes) / Double(max(tokens, 1)))) bytes/token) in \(output)"
    }
}

/// Reads the documents (text files, folders of them, JSON-lines files with the text in
/// `jsonlField`), drops exact duplicates, tokenizes them (documents separated by the end-of-text
/// token when the tokenizer has one) and writes the token file. `progress(bytes done, total,
/// seconds)` is called as it goes.
public func prepareCorpus(inputs: [String], jsonlField: String, tokenizer tok: Tokenizer, out: String, threads: Int,
                          progress report: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> CorpusSummary {
    var documents: [String] = []
    var files = 0
    for path in inputs {
        for file in try expandInputs(path) {
            files += 1
            let data = try readFile(file)
            if file.hasSuffix(".jsonl") {
                for (n, line) in data.split(separator: 0x0A).enumerated() where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
                    guard let obj = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                        throw TrainingError.file("\(file):\(n + 1)", "not a JSON object")
                    }
                    guard let text = obj[jsonlField] as? String else { throw TrainingError.file("\(file):\(n + 1)", "no string field \"\(jsonlField)\"") }
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
    var done = 0
    let start = Date()
    func progress() { report(done, totalBytes, Date().timeIntervalSince(start)) }
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
    try TokenFile.write(tokens, vocabularySize: tok.vocabularySize, to: out)
    return CorpusSummary(files: files, documents: documents.count, duplicates: duplicates, bytes: totalBytes, tokens: tokens.count, output: out)
}

/// A file, or every regular file under a folder (sorted, hidden files skipped).
public func expandInputs(_ path: String) throws -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw TrainingError.config("cannot read \(path): no such file") }
    guard isDir.boolValue else { return [path] }
    guard let walker = FileManager.default.enumerator(atPath: path) else { throw TrainingError.config("cannot list \(path)") }
    var files: [String] = []
    for case let rel as String in walker where !rel.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
        var d: ObjCBool = false
        let full = path + "/" + rel
        if FileManager.default.fileExists(atPath: full, isDirectory: &d), !d.boolValue { files.append(full) }
    }
    return files.sorted()
}

/// Reads a whole file, or fails naming it.
public func readFile(_ path: String) throws -> Data {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw TrainingError.config("cannot read \(path): " + (FileManager.default.fileExists(atPath: path) ? "permission denied or a folder" : "no such file"))
    }
    return data
}

/// UTF-8 text from bytes, or an error that says where the first invalid byte is (offset and line).
public func utf8Text(_ data: Data, source: String) throws -> String {
    let bad = data.withUnsafeBytes { firstInvalidUTF8($0.bindMemory(to: UInt8.self)) }
    if let bad {
        let line = data.prefix(bad).filter { $0 == 0x0A }.count + 1
        throw TrainingError.file(source, "invalid UTF-8 at byte offset \(bad) (line \(line))")
    }
    return String(decoding: data, as: UTF8.self)
}
