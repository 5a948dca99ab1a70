import ArgumentParser
import Foundation
import Inference
import Tokenization
import Training

/// Which tokenizer a command uses: `--encoding gpt2` (default) or `--tokenizer PATH`.
struct TokenizerOptions: ParsableArguments {
    @Option(help: "A built-in encoding: gpt2.") var encoding: String?
    @Option(help: "A tokenizer: our folder (llm train-tokenizer), a Hugging Face tokenizer.json, a .tiktoken ranks file, a SentencePiece .model file, or a .gguf model's vocabulary.")
    var tokenizer: String?

    func validate() throws {
        try oneOf(encoding, "--encoding", ["gpt2"])
        try existing(tokenizer, "--tokenizer", .fileOrFolder)
        if tokenizer != nil && encoding != nil { throw CLIError("give --encoding or --tokenizer, not both") }
    }

    func load() throws -> any TextTokenizer {
        try tokenizer.map(loadTokenizer(path:)) ?? loadGPT2()
    }
}

/// `llm tokenize`: text → token ids.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Turn text into token ids.")

    @Argument(help: "The text (or use --file).") var text: String?
    @Option(help: "Read the text from a file.") var file: String?
    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(help: "Special tokens written in the text: all (become their ids) or none (an error, as in tiktoken).")
    var allowedSpecial: String = "none"
    @Flag(help: "Encode special-token text (<|endoftext|>, <start_of_turn>) as ordinary text, like tiktoken's encode_ordinary.")
    var ordinary = false
    @Flag(help: "Print one JSON array of ints and nothing else.") var json = false
    @Flag(help: "Print one line per token: id and its bytes as readable text (SentencePiece: the piece, ▁ for a space).") var show = false
    @Flag(help: "Print bytes, characters and token counts under char-level, GPT-2 and --tokenizer.") var stats = false

    func validate() throws {
        try existing(file, "--file", .file)
        if text != nil && file != nil { throw CLIError("give the text or --file, not both") }
        try oneOf(allowedSpecial, "--allowed-special", ["all", "none"])
        if ordinary && allowedSpecial != "none" { throw CLIError("--ordinary reads special-token text as text: it cannot go with --allowed-special \(allowedSpecial)") }
    }

    func run() throws {
        let input: String
        switch (text, file) {
        case let (t?, nil): input = t
        case let (nil, f?): input = try utf8Text(try readFile(f), source: f)
        case (nil, nil): input = try utf8Text(FileHandle.standardInput.readDataToEndOfFile(), source: "standard input")
        default: throw CLIError("give the text or --file, not both")
        }
        if stats { return try printStats(input) }
        let tok = try tokenizerOptions.load()
        let policy: SpecialTokenPolicy = allowedSpecial == "all" ? .all : .none
        let ids: [UInt32]
        if ordinary {
            ids = tok.encodeOrdinary(input)
        } else {
            switch Result(catching: { () throws(TokenizerError) in try tok.encode(input, allowedSpecial: policy) }) {
            case let .success(v): ids = v
            case let .failure(.disallowedSpecial(token, offset)):
                throw CLIError("the text spells the special token \(token) at byte offset \(offset): give --allowed-special all to encode it as that token, or --ordinary to encode it as text")
            case let .failure(error): throw error
            }
        }
        if json {
            print("[" + ids.map(String.init).joined(separator: ",") + "]")
        } else if show {
            let pieces = tok is SentencePieceTokenizer
            for id in ids { print("\(String(id).padding(6, left: true))  \(pieces ? tok.piece(id) ?? "?" : readableBytes(tok.tokenBytes(id) ?? []))") }
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }

    func printStats(_ input: String) throws {
        var rows: [(String, Int)] = [("char-level (Unicode scalars)", CharTokenizer(training: input).encode(input).count)]
        rows.append(("gpt2", try loadGPT2().encodeOrdinary(input).count))
        if let path = tokenizerOptions.tokenizer { rows.append((path, try loadTokenizer(path: path).encodeOrdinary(input).count)) }
        let bytes = input.utf8.count
        print("bytes       \(bytes)")
        print("characters  \(input.count)  (Unicode scalars: \(input.unicodeScalars.count))")
        for (name, n) in rows {
            let ratio = n == 0 ? 0 : Double(bytes) / Double(n)
            print("\(name.padding(30)) \(String(n).padding(9, left: true)) tokens  \(String(format: "%.2f", ratio)) bytes/token")
        }
    }
}

/// `llm detokenize`: token ids → the bytes they stand for, written unchanged.
struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Turn token ids back into text (raw bytes on stdout).")

    @Option(help: "Ids separated by spaces or commas.") var ids: String?
    @Option(help: "A file holding a JSON array of ids.") var file: String?
    @OptionGroup var tokenizerOptions: TokenizerOptions

    func validate() throws {
        guard (ids == nil) != (file == nil) else { throw CLIError("give --ids or --file (one of them)") }
        if let ids, try parseIds(ids, source: "--ids").isEmpty { throw CLIError("--ids must hold at least one token id") }
        try existing(file, "--file", .file)
    }

    func run() throws {
        let list: [UInt32]
        switch (ids, file) {
        case let (text?, nil): list = try parseIds(text, source: "--ids")
        case let (nil, f?):
            let data = try readFile(f)
            guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else { throw CLIError("\(f): not a JSON array") }
            list = try array.enumerated().map { i, v in
                guard let n = v as? Int, n >= 0, n <= Int(UInt32.max) else { throw CLIError("\(f): element \(i) (\(v)) is not a token id") }
                return UInt32(n)
            }
        default: throw CLIError("give --ids or --file (one of them)")
        }
        let bytes = try tokenizerOptions.load().decodeBytes(list)
        FileHandle.standardOutput.write(Data(bytes))
    }
}

/// "1 2 3" or "1,2,3" → ids; a bad element is named.
func parseIds(_ text: String, source: String) throws -> [UInt32] {
    try text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\t" }).enumerated().map { i, s in
        guard let n = UInt32(s) else { throw CLIError("\(source): element \(i) '\(s)' is not a token id") }
        return n
    }
}

/// `llm train-tokenizer`: learn a byte-level BPE vocabulary from text files.
struct TrainTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-tokenizer", abstract: "Learn a byte-level BPE tokenizer from text files.")

    @Option(parsing: .upToNextOption, help: "Text files (UTF-8).") var input: [String]
    @Option(help: "Vocabulary size, special tokens included.") var vocabSize: Int
    @Option(help: "Split pattern: gpt2 or gpt4.") var pattern: String = "gpt2"
    @Option(parsing: .upToNextOption, help: "Special tokens to add (e.g. '<|endoftext|>').") var special: [String] = []
    @Option(help: "Output folder.") var output: String
    @Option(help: "Threads for counting.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard !input.isEmpty else { throw CLIError("give at least one --input file") }
        for path in input { try existing(path, "--input", .file) }
        try atLeast(256 + special.count, vocabSize, "--vocab-size", max: largestVocabulary)
        try oneOf(pattern, "--pattern", ["gpt2", "gpt4"])
        for s in special { try nonEmpty(s, "--special") }
        try outputFolder(output, "--output")
        try positive(threads, "--threads", max: largestThreadCount)
    }

    func run() throws {
        let split = SplitPattern(rawValue: pattern)!
        var texts: [[UInt8]] = []
        for path in input {
            let data = try readFile(path)
            _ = try utf8Text(data, source: path)
            texts.append(Array(data))
        }
        let totalBytes = texts.reduce(0) { $0 + $1.count }
        let start = Date()
        var lastDraw = Date.distantPast, mergeStart: Date?
        var trainer = BPETrainer(vocabularySize: vocabSize, pattern: split, specialTokens: special)
        trainer.progress = { done, wanted in
            let now = Date()
            if mergeStart == nil { mergeStart = now }
            guard now.timeIntervalSince(lastDraw) > 0.1 || done == wanted else { return }
            lastDraw = now
            let elapsed = now.timeIntervalSince(mergeStart!), width = 30
            let filled = wanted == 0 ? width : width * done / wanted
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r  merges [\(bar)] \(done)/\(wanted)  \(Int(Double(done) / max(elapsed, 1e-9))) merges/s ".utf8))
        }
        let tok = try trainer.train(texts, threads: threads)
        FileHandle.standardError.write(Data("\n".utf8))
        let seconds = Date().timeIntervalSince(start)
        try tok.save(to: output)
        var tokens = 0
        for t in texts { t.withUnsafeBufferPointer { var out: [UInt32] = []; tok.encodeOrdinary(utf8: $0, into: &out); tokens += out.count } }
        let short = tok.vocabularySize < vocabSize ? " — the text had no more pairs to merge" : ""
        print("vocabulary   \(tok.vocabularySize) (256 bytes + \(tok.bpe.count - 256) merges + \(special.count) special)\(short)")
        print("input        \(totalBytes) bytes in \(input.count) file(s), \(tokens) tokens, \(String(format: "%.3f", Double(totalBytes) / Double(max(tokens, 1)))) bytes/token")
        print("time         \(String(format: "%.2f", seconds)) s")
        print("saved        \(output)/\(Tokenizer.ranksFileName), \(output)/\(Tokenizer.configFileName)")
    }
}
