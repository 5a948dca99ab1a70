import Foundation
import Inference
import Models
import Server
import Tensors
import Tokenization
import Training

/// The readers that take files from users, each as a fuzz target: the input's bytes are written
/// where the reader expects its file (or the files of its folder) and read as a command would
/// read them; what was read is then used (every tensor's values, a forward pass, an encode and a
/// decode), so that a file the reader accepted but should not have shows up too.
///
/// Errors are the expected outcome of hostile bytes. A finding is a crash (a trap, an
/// out-of-bounds access), a hang, or an allocation the input's real size does not justify.
/// `make fuzz` runs every target under libFuzzer; `Tests/FuzzTests` replays the seeds and every
/// finding kept under `Tests/Fuzz/<target>/`.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case safetensors
    case gguf
    case tiktoken
    case tokenizerJSON = "tokenizer-json"
    case tokenizerFolder = "tokenizer-folder"
    case checkpointState = "checkpoint-state"
    case tokenFile = "token-file"
    case sentencepiece
    case datasetJSON = "dataset-json"
    case datasetJSONL = "dataset-jsonl"
    case datasetCSV = "dataset-csv"
    case adapter
    case modelFolder = "model-folder"
    /// The body of an HTTP request to `llm serve`: read as a chat and as a text completion request.
    case httpBody = "http-body"

    /// The tokenizer chat requests are encoded with (trained once).
    static let chatTokenizer = try? FuzzSeeds.tokenizer()

    /// Folder targets take several files in one input, split at this line.
    public static let fileSeparator = Array("\n--next-file--\n".utf8)

    /// Reads `input` the way this target's reader is used. Throws what the reader throws.
    public func run(_ input: [UInt8], in scratch: FuzzScratch) throws {
        scratch.clear()
        let dir = scratch.folder
        switch self {
        case .safetensors:
            let path = try scratch.write(input, "model.safetensors")
            let file = try Safetensors.read(path)
            for name in file.entries.keys.sorted() { _ = try file.tensor(name) }
        case .gguf:
            let path = try scratch.write(input, "model.gguf")
            let file = try GGUFFile(path: path)
            for t in file.tensors where GGMLType(rawValue: t.type) != nil { _ = try file.matrix(t.name).dequantized() }
            // Both arithmetics: llama.cpp's quantized kernels and Float32.
            let loaded = try LoadedModel.load(path, arithmetic: input.count % 2 == 0 ? .llamaCpp : .float32)
            try use(loaded)
        case .tiktoken:
            let path = try scratch.write(input, "ranks.tiktoken")
            _ = try TiktokenFile.read(path)
            try use(try loadTokenizer(path: path))
        case .tokenizerJSON:
            let path = try scratch.write(input, "tokenizer.json")
            try use(try loadTokenizer(path: path))
        case .tokenizerFolder:
            try scratch.write(Self.split(input, into: [Tokenizer.configFileName, Tokenizer.ranksFileName]))
            try use(try loadTokenizer(path: dir))
        case .checkpointState:
            try FileManager.default.createDirectory(atPath: dir + "/checkpoint", withIntermediateDirectories: true)
            _ = try scratch.write(input, "checkpoint/state.json")
            _ = try Checkpoint.readState(dir + "/checkpoint")
        case .tokenFile:
            let path = try scratch.write(input, "data.tok")
            let file = try TokenFile(path: path)
            _ = file.tokens(0..<file.count)
            if file.count >= 10 {
                var batches = try SlidingWindowBatches(file: file, range: 0..<file.count, context: 4, batch: 2, seed: 0)
                _ = batches.next()
            }
        case .sentencepiece:
            let path = try scratch.write(input, "tokenizer.model")
            try use(try loadTokenizer(path: path))
        case .datasetJSON, .datasetJSONL:
            let path = try scratch.write(input, self == .datasetJSON ? "data.json" : "data.jsonl")
            let records = try InstructionData.records(path)
            for (source, record) in records.prefix(64) {
                for format in PromptFormat.allCases {
                    if PreferenceData.isPair(record) {
                        _ = try? PreferenceData.pair(record, source: source, format: format, template: ChatTemplate())
                    } else {
                        _ = try? InstructionData.example(record, source: source, format: format, template: ChatTemplate(), placeholders: ["name": "x"])
                    }
                }
            }
        case .datasetCSV:
            // As CSV with a header, as TSV without one: refused only when both refuse it.
            let csv = try scratch.write(input, "data.csv"), tsv = try scratch.write(input, "data.tsv")
            let asCSV = Result { try ClassificationData.read(csv) }
            let asTSV = Result { try ClassificationData.read(tsv, columns: ["label", "text"]) }
            if case let .failure(error) = asCSV, case .failure = asTSV { throw error }
        case .adapter:
            let files = Self.split(input, into: [PEFTAdapter.configFile, PEFTAdapter.weightsFile])
            try scratch.write(files)
            // GPT-2's module names in the config: into the GPT, else into the Llama (a seed each).
            let model: DecoderModel = Self.firstRange(of: Array("c_attn".utf8), in: files[0].1[...]) != nil ? FuzzModels.gpt() : FuzzModels.llama()
            _ = try PEFTAdapter.load(dir, into: model)
            _ = try model.logits([1, 2], batch: 1, length: 2)
        case .modelFolder:
            try scratch.write(Self.split(input, into: ["config.json", "model.safetensors"]))
            try use(try LoadedModel.load(dir, arithmetic: .float32))
        case .httpBody:
            // As both completion routes read it (JSON, every field's type and range), then the
            // chat messages rendered in a template and encoded; refused only when both refuse it.
            let path = try scratch.write(input, "request-body.json")           // kept for replay; refusals name it
            let body = Data(input)
            let asChat = Result { () throws -> Void in
                let request = try ChatRequest(try JSONValue.object(from: body), maxParallel: 4, context: 64)
                _ = try Self.chatTokenizer?.encode(ChatTemplate().render(request.messages), allowedSpecial: .all)
            }
            let asCompletion = Result { _ = try CompletionRequest(try JSONValue.object(from: body), maxParallel: 4, context: 64) }
            if case let .failure(error) = asChat, case .failure = asCompletion { throw RefusedRequest(path: path, error: error) }
        }
    }

    /// The parts of a folder input, named in order (missing parts are left out; extra ones join the last).
    static func split(_ input: [UInt8], into names: [String]) -> [(String, [UInt8])] {
        var parts: [[UInt8]] = []
        var rest = input[...]
        while parts.count < names.count - 1, let r = firstRange(of: fileSeparator, in: rest) {
            parts.append(Array(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        parts.append(Array(rest))
        return Array(zip(names, parts))
    }

    /// Joins files into one folder input (seeds).
    public static func join(_ files: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, f) in files.enumerated() { if i > 0 { out += fileSeparator }; out += f }
        return out
    }

    private static func firstRange(of needle: [UInt8], in hay: ArraySlice<UInt8>) -> Range<Int>? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.startIndex
        while i + needle.count <= hay.endIndex {
            if hay[i] == needle[0] && hay[i..<i + needle.count].elementsEqual(needle) { return i..<i + needle.count }
            i += 1
        }
        return nil
    }

    /// A loaded model at work: a short encode, a forward pass on its first ids, a decode.
    private func use(_ loaded: LoadedModel) throws {
        let lm = loaded.model
        var ids: [Int32] = (try? loaded.encode("Hi there")) ?? []
        ids = Array(ids.filter { $0 >= 0 && Int($0) < lm.vocabularySize }.prefix(max(0, min(4, lm.contextLength))))
        if ids.isEmpty, lm.vocabularySize > 0, lm.contextLength > 0 { ids = [0] }
        guard !ids.isEmpty else { return }
        _ = try lm.logits(ids, batch: 1, length: ids.count)
        _ = try? loaded.decode(ids)
    }

    private func use(_ tokenizer: any TextTokenizer) throws {
        let ids = tokenizer.encodeOrdinary("Hello world, ça va? 123 ▁x\n\t<|endoftext|>")
        _ = try tokenizer.decodeBytes(ids)
        _ = try? tokenizer.encode("a <|endoftext|> b", allowedSpecial: .all)
    }
}

/// An HTTP request body both completion routes refused, named by the file it was written to.
struct RefusedRequest: Error, CustomStringConvertible {
    let path: String
    let error: any Error
    var description: String { "\(path): \(error)" }
}

/// A private folder for one fuzzing process: the input's files are written here (in memory when
/// /dev/shm exists), replacing the previous input's.
public final class FuzzScratch: @unchecked Sendable {
    public let folder: String

    public init() throws {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        folder = base + "/llm-fuzz-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// Empties the folder.
    public func clear() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    @discardableResult
    public func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = folder + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func write(_ files: [(String, [UInt8])]) throws { for (name, bytes) in files { try write(bytes, name) } }
}
