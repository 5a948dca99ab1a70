import ArgumentParser
import Foundation
import Inference
import Tokenization
import Training

extension Bench {
    /// `llm bench sentencepiece`: one text (a file repeated), one thread, encoded as one string by a
    /// SentencePiece `.model` (or a GGUF vocabulary): best of 7, MB/s, and an FNV-1a hash of the ids
    /// so that bench/run.py can check that the `sentencepiece` library produced the same ones.
    struct SentencePieceSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "sentencepiece", abstract: "SentencePiece encoding speed on one text, one thread.")
        @Option(help: "A SentencePiece .model file (or a .gguf model's vocabulary).") var model: String
        @Option(help: "The text file.") var text: String
        @Option(name: .customLong("repeat"), help: "How many copies of the text make the string encoded.") var copies = 4
        @Flag(help: "One JSON object.") var json = false

        func validate() throws {
            try existing(model, "--model", .file)
            try existing(text, "--text", .file)
            try positive(copies, "--repeat", max: 1 << 12)
        }

        func run() throws {
            let tok = try loadTokenizer(path: model)
            let one = try utf8Text(try readFile(text), source: text)
            let input = String(repeating: one, count: copies)
            var ids: [UInt32] = []
            let seconds = best(7) { ids = tok.encodeOrdinary(input) }
            var digest: UInt64 = 0xcbf29ce484222325
            for i in ids { digest = (digest ^ UInt64(i)) &* 0x100000001b3 }
            let bytes = input.utf8.count
            let hex = String(digest, radix: 16), hash = String(repeating: "0", count: 16 - hex.count) + hex
            if json {
                print(#"{"bytes":\#(bytes),"ids":\#(ids.count),"seconds":\#(seconds),"mb_per_s":\#(Double(bytes) / seconds / 1e6),"fnv1a":"\#(hash)"}"#)
            } else {
                print("\(bytes) bytes -> \(ids.count) ids in \(String(format: "%.1f", seconds * 1000)) ms: \(String(format: "%.2f", Double(bytes) / seconds / 1e6)) MB/s (ids FNV-1a \(hash))")
            }
        }
    }

    /// `llm bench tokenizer`: GPT-2 encoding/decoding throughput on a corpus, and BPE training.
    /// Prints one JSON object (bench/run.py puts tiktoken and HF tokenizers beside it).
    struct TokenizerSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tokenizer",
            abstract: "Tokenizer throughput (encode, batch encode, decode) and BPE training time.")
        @Option(help: "Corpus to encode (documents are separated by blank lines).") var corpus: String
        @Option(help: "Text to train a tokenizer on.") var train: String?
        @Option(help: "Held-out text to measure the trained tokenizer's compression on.") var heldout: String?
        @Option(help: "Vocabulary size for training.") var vocab = 4096
        @Option(help: "Threads for batch encoding and training.") var threads = 2
        @Option(help: "Write all ids (little-endian uint32) here, for an exact comparison.") var idsOut: String?
        @Option(help: "Repetitions (best is kept).") var repeats = 3

        func validate() throws {
            try existing(corpus, "--corpus", .file)
            try existing(train, "--train", .file)
            try existing(heldout, "--heldout", .file)
            try atLeast(257, vocab, "--vocab", max: largestVocabulary)
            try positive(threads, "--threads", max: largestThreadCount)
            try outputFile(idsOut, "--ids-out")
            try positive(repeats, "--repeats", max: 1000)
        }

        func run() throws {
            let gpt2 = try loadGPT2()
            let text = try utf8Text(try readFile(corpus), source: corpus)
            let docs = documents(text)
            let bytes = Double(text.utf8.count)

            var ids: [[UInt32]] = []
            let encode = best(repeats) { ids = docs.map { gpt2.encodeOrdinary($0) } }
            let batch = best(repeats) { _ = gpt2.encodeOrdinaryBatch(docs, threads: threads) }
            var decodedBytes = 0
            let decode = best(repeats) { decodedBytes = 0; for d in ids { decodedBytes += (try! gpt2.decodeBytes(d)).count } }
            let tokens = ids.reduce(0) { $0 + $1.count }
            if let idsOut {
                var all = ids.flatMap { $0 }.map { $0.littleEndian }
                try atomicWrite(Data(bytes: &all, count: all.count * 4), to: idsOut)
            }
            var result: [String: Any] = [
                "encode_mb_per_s": bytes / encode / 1e6, "batch_mb_per_s": bytes / batch / 1e6,
                "decode_mb_per_s": Double(decodedBytes) / decode / 1e6, "tokens": tokens, "threads": threads,
            ]
            if let train {
                let data = try readFile(train)
                _ = try utf8Text(data, source: train)
                var tok: Tokenizer?
                let seconds = try bestThrowing(2) {
                    tok = try BPETrainer(vocabularySize: vocab, pattern: .gpt2, specialTokens: ["<|endoftext|>"]).train([Array(data)], threads: threads)
                }
                result["train_seconds"] = seconds
                if let heldout, let tok {
                    let h = try utf8Text(try readFile(heldout), source: heldout)
                    let n = documents(h).reduce(0) { $0 + tok.encodeOrdinary($1).count }
                    result["bytes_per_token"] = Double(h.utf8.count) / Double(n)
                }
            }
            let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: json, as: UTF8.self))
        }
    }
}

/// The corpus cut into documents just after every (non-overlapping) "\n\n", the separator staying
/// with its document and a final empty piece dropped: bench/tokenizer_reference.py's rule, so the
/// documents join back into the exact file.
func documents(_ text: String) -> [String] {
    var docs: [String] = []
    var text = text
    text.withUTF8 { b in
        var start = 0, i = 0
        while i + 1 < b.count {
            if b[i] == 0x0A && b[i + 1] == 0x0A {
                docs.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<(i + 2)]), as: UTF8.self))
                i += 2
                start = i
            } else { i += 1 }
        }
        if start < b.count { docs.append(String(decoding: UnsafeBufferPointer(rebasing: b[start...]), as: UTF8.self)) }
    }
    return docs
}

func best(_ n: Int, _ body: () -> Void) -> Double {
    var t = Double.infinity
    for _ in 0..<max(n, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return t
}

func bestThrowing(_ n: Int, _ body: () throws -> Void) throws -> Double {
    var t = Double.infinity
    for _ in 0..<max(n, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return t
}
