import Foundation

/// Saving and loading tokenizers: our own folder format, Hugging Face `tokenizer.json`, and
/// tiktoken ranks files.
///
/// Our folder: `tokenizer.tiktoken` (tiktoken's ranks format, so other tools can read the
/// vocabulary) and `tokenizer-config.json` with the split pattern, special tokens and the merges
/// in rank order (so encoding after a reload is exactly what the trainer produced).
struct TokenizerConfig: Codable {
    var format = "llm-bpe-1"
    var pattern: SplitPattern
    var regex: String
    var specialTokens: [String: UInt32]
    var merges: [[UInt32]]?

    enum CodingKeys: String, CodingKey {
        case format, pattern, regex, merges
        case specialTokens = "special_tokens"
    }
}

extension Tokenizer {
    public static let ranksFileName = "tokenizer.tiktoken"
    public static let configFileName = "tokenizer-config.json"

    /// Writes our folder format into `directory` (created if needed; files renamed into place).
    public func save(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tokens = (0..<bpe.count).map { Array(bpe.tokenBytes(UInt32($0))) }
        try TiktokenFile.write(tokens, to: directory + "/" + Self.ranksFileName)
        let config = TokenizerConfig(pattern: pattern, regex: pattern.regex,
                                     specialTokens: Dictionary(uniqueKeysWithValues: specialTokens.map { ($0.text, $0.id) }),
                                     merges: bpe.mergeList?.map { [$0.0, $0.1] })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(try encoder.encode(config), to: directory + "/" + Self.configFileName)
    }

    /// Reads our folder format.
    public static func load(directory: String) throws(TokenizerError) -> Tokenizer {
        let configPath = directory + "/" + configFileName
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw .file(path: configPath, line: nil, message: "cannot read the file")
        }
        let config: TokenizerConfig
        do { config = try JSONDecoder().decode(TokenizerConfig.self, from: data) } catch {
            throw .file(path: configPath, line: nil, message: "not a tokenizer config: \(describeJSONError(error, in: data))")
        }
        let tokens = try TiktokenFile.read(directory + "/" + ranksFileName)
        var merges: [(UInt32, UInt32)]?
        if let m = config.merges {
            guard m.allSatisfy({ $0.count == 2 }) else { throw .file(path: configPath, line: nil, message: "merges must be [left, right] pairs") }
            merges = m.map { ($0[0], $0[1]) }
        }
        return Tokenizer(pattern: config.pattern, bpe: try encoder(tokens, merges, file: configPath), specialTokens: config.specialTokens)
    }

    /// The encoder of a vocabulary read from `file` (its problems named with the file).
    private static func encoder(_ tokens: [[UInt8]], _ merges: [(UInt32, UInt32)]?, file: String) throws(TokenizerError) -> BytePairEncoder {
        do { return try BytePairEncoder(tokens: tokens, merges: merges) } catch let .invalidVocabulary(m) {
            throw .file(path: file, line: nil, message: "invalid vocabulary: \(m)")
        }
    }

    /// Loads whatever `path` is: our folder, a Hugging Face `tokenizer.json` (or a folder holding
    /// one), or a tiktoken ranks file (read with GPT-2's pattern, no special tokens).
    public static func load(path: String) throws(TokenizerError) -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw .file(path: path, line: nil, message: "no such file or folder")
        }
        if isDir.boolValue {
            if FileManager.default.fileExists(atPath: path + "/" + configFileName) { return try load(directory: path) }
            if FileManager.default.fileExists(atPath: path + "/tokenizer.json") { return try load(huggingFace: path + "/tokenizer.json") }
            throw .file(path: path, line: nil, message: "holds neither \(configFileName) nor tokenizer.json")
        }
        if path.hasSuffix(".json") { return try load(huggingFace: path) }
        return Tokenizer(pattern: .gpt2, bpe: try encoder(try TiktokenFile.read(path), nil, file: path))
    }

    /// A Hugging Face `tokenizer.json` for a byte-level BPE model (GPT-2 style): the vocabulary's
    /// strings use GPT-2's byte-to-character table; merges are "left right" strings or pairs.
    public static func load(huggingFace path: String) throws(TokenizerError) -> Tokenizer {
        func fail(_ m: String) -> TokenizerError { .file(path: path, line: nil, message: m) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read the file") }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw fail(jsonSyntaxError(data) ?? "not a JSON object") }
        guard let model = root["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
              let vocab = model["vocab"] as? [String: Int], let rawMerges = model["merges"] as? [Any] else {
            throw fail("not a BPE tokenizer.json (model.type, model.vocab, model.merges)")
        }
        let decodeTable = byteLevelDecodeTable()
        func bytes(_ s: String) throws(TokenizerError) -> [UInt8] {
            guard let out = byteLevelBytes(s, decodeTable) else { throw fail("vocabulary entry \(s.debugDescription) is not byte-level") }
            return out
        }
        // Ids run 0, 1, 2, … without gaps, so none can reach the number of entries (checked before
        // the table is sized by the largest).
        let added = root["added_tokens"] as? [[String: Any]] ?? []
        let limit = vocab.count + added.count
        for (s, id) in vocab where id < 0 || id >= limit {
            throw fail("model.vocab entry \(s.debugDescription) has id \(id), outside 0..<\(limit) (the vocabulary and added_tokens hold \(limit) entries)")
        }
        var tokens = [[UInt8]?](repeating: nil, count: (vocab.values.max() ?? -1) + 1)
        for (s, id) in vocab { tokens[id] = try bytes(s) }
        var specials: [String: UInt32] = [:]
        for (i, t) in added.enumerated() {
            guard let id = t["id"] as? Int, let content = t["content"] as? String else { continue }
            guard id >= 0, id < limit else { throw fail("added_tokens[\(i)] has id \(id), outside 0..<\(limit)") }
            specials[content] = UInt32(id)
            if id < tokens.count, tokens[id] == nil { tokens[id] = Array(content.utf8) }
        }
        if let gap = tokens.firstIndex(where: { $0 == nil }) { throw fail("vocabulary has no token with id \(gap)") }
        var merges: [(UInt32, UInt32)] = []
        for (i, m) in rawMerges.enumerated() {
            let pair: [String]
            if let s = m as? String { pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
            else if let a = m as? [String] { pair = a } else { throw fail("merge \(i) is neither \"a b\" nor [a, b]") }
            guard pair.count == 2, let a = vocab[pair[0]], let b = vocab[pair[1]] else { throw fail("merge \(i) \(pair) names unknown tokens") }
            merges.append((UInt32(a), UInt32(b)))
        }
        let pattern = try huggingFacePattern(root["pre_tokenizer"], fail)
        return Tokenizer(pattern: pattern, bpe: try encoder(tokens.map { $0! }, merges, file: path), specialTokens: specials)
    }

    private static func huggingFacePattern(_ pre: Any?, _ fail: (String) -> TokenizerError) throws(TokenizerError) -> SplitPattern {
        guard let pre = pre as? [String: Any] else { return .gpt2 }
        switch pre["type"] as? String {
        case "ByteLevel":
            if pre["add_prefix_space"] as? Bool == true { throw fail("pre_tokenizer ByteLevel with add_prefix_space=true is not supported") }
            if pre["use_regex"] as? Bool == false { throw fail("pre_tokenizer ByteLevel with use_regex=false is not supported") }
            return .gpt2
        case "Sequence":
            for p in pre["pretokenizers"] as? [[String: Any]] ?? [] where p["type"] as? String == "Split" {
                let regex = (p["pattern"] as? [String: Any])?["Regex"] as? String ?? ""
                guard let known = SplitPattern(regex: regex) else { throw fail("unsupported split pattern \(regex.debugDescription)") }
                return known
            }
            // SmolLM2's: each digit its own piece, then GPT-2's byte-level split.
            let types = (pre["pretokenizers"] as? [[String: Any]] ?? []).map { $0["type"] as? String ?? "" }
            if types == ["Digits", "ByteLevel"], (pre["pretokenizers"] as? [[String: Any]])?.first?["individual_digits"] as? Bool == true {
                return .gpt2Digits
            }
            return .gpt2
        default:
            throw fail("unsupported pre_tokenizer \(pre["type"] ?? "nil")")
        }
    }
}

/// A token spelled in GPT-2's byte-to-character alphabet → its bytes (nil when a character is not in it).
func byteLevelBytes(_ spelled: String, _ decodeTable: [UInt32: UInt8]) -> [UInt8]? {
    var out: [UInt8] = []
    for u in spelled.unicodeScalars {
        guard let b = decodeTable[u.value] else { return nil }
        out.append(b)
    }
    return out
}

/// GPT-2's byte-to-character table, inverted: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes were given the characters U+0100 onwards, in byte order.
func byteLevelDecodeTable() -> [UInt32: UInt8] {
    var table: [UInt32: UInt8] = [:]
    var next: UInt32 = 256
    for b in 0..<256 {
        let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
        if printable { table[UInt32(b)] = UInt8(b) } else { table[next] = UInt8(b); next += 1 }
    }
    return table
}

extension Tokenizer {
    /// Writes `tokenizer.json` (and a minimal `tokenizer_config.json`) that Hugging Face
    /// tokenizers and transformers load as this byte-level BPE: vocabulary spelled in GPT-2's
    /// byte alphabet, merges in rank order, the split pattern as a pre-tokenizer, special tokens
    /// as added tokens. Needs the explicit merge list (a tokenizer from tokenizer.json, a GGUF
    /// file or our trainer); a tiktoken ranks file has none and gets no tokenizer.json.
    public func saveHuggingFace(to directory: String, eos: UInt32? = nil) throws {
        guard let merges = bpe.mergeList else { return }
        var encode = [String](repeating: "", count: 256)
        for (scalar, byte) in byteLevelDecodeTable() { encode[Int(byte)] = String(UnicodeScalar(scalar)!) }
        let specialIds = Set(specialTokens.map(\.id))
        func spell(_ id: UInt32) -> String { bpe.tokenBytes(id).map { encode[Int($0)] }.joined() }
        var vocab: [String: Int] = [:]
        for id in 0..<UInt32(bpe.count) where !specialIds.contains(id) { vocab[spell(id)] = Int(id) }
        for s in specialTokens { vocab[s.text] = Int(s.id) }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let pre: [String: Any]
        switch pattern {
        case .gpt2: pre = byteLevel
        case .gpt2Digits:
            pre = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        case .gpt4:
            pre = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": pattern.regex], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false]]]
        }
        let added: [[String: Any]] = specialTokens.sorted { $0.id < $1.id }.map {
            ["id": Int($0.id), "content": $0.text, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        let root: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added, "normalizer": NSNull(),
            "pre_tokenizer": pre, "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges.map { [spell($0.0), spell($0.1)] }] as [String: Any],
        ]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try atomicWrite(try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys]), to: directory + "/tokenizer.json")
        var config: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false]
        if let eos, let text = specialTokens.first(where: { $0.id == eos })?.text { config["eos_token"] = text }
        try atomicWrite(try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]), to: directory + "/tokenizer_config.json")
    }
}

extension Tokenizer {
    /// The vocabulary as GGUF's "gpt2" tokenizer (and tokenizer.json) spell it: each ordinary
    /// token's bytes in GPT-2's byte alphabet (type 1, normal), special tokens as their text
    /// (type 3, control), and the merges in rank order as "left right". A tokenizer without an
    /// explicit merge list (a tiktoken ranks file) gets the merges its ranks imply: for each token
    /// in rank order, the two parts that byte-pair encoding with only lower ranks leaves of it.
    public func spelledVocabulary() -> (tokens: [String], types: [Int32], merges: [String]) {
        func spell(_ id: UInt32) -> String { bpe.tokenBytes(id).map { byteLevelSpelling[Int($0)] }.joined() }
        let specials = Dictionary(specialTokens.map { ($0.id, $0.text) }, uniquingKeysWith: { a, _ in a })
        var tokens: [String] = [], types: [Int32] = []
        for id in 0..<UInt32(vocabularySize) {
            if let text = specials[id] {
                tokens.append(text); types.append(3)
            } else if Int(id) < bpe.count {
                tokens.append(spell(id)); types.append(1)
            } else {
                tokens.append("[PAD\(id)]"); types.append(5)
            }
        }
        let pairs = bpe.mergeList ?? bpe.mergesImpliedByRanks(skipping: Set(specials.keys))
        return (tokens, types, pairs.map { spell($0.0) + " " + spell($0.1) })
    }
}

extension BytePairEncoder {
    /// The merge list that ranks = ids imply (tiktoken's vocabularies): token t of two or more
    /// bytes is made by merging the two parts left when its bytes are merged greedily, lowest
    /// rank first, using only tokens of lower rank than t. Tokens that do not come out as two
    /// parts (or are in `skipping`) are not reachable by a merge and get none.
    func mergesImpliedByRanks(skipping: Set<UInt32>) -> [(UInt32, UInt32)] {
        var out: [(UInt32, UInt32)] = []
        for target in 0..<UInt32(count) where !skipping.contains(target) {
            let bytes = Array(tokenBytes(target))
            guard bytes.count >= 2 else { continue }
            var parts: [[UInt8]] = bytes.map { [$0] }
            while parts.count > 2 {
                var best: (index: Int, rank: UInt32)? = nil
                for i in 0..<(parts.count - 1) {
                    if let rank = id(of: parts[i] + parts[i + 1]), rank < target, rank < (best?.rank ?? .max) { best = (i, rank) }
                }
                guard let b = best else { break }
                parts[b.index] += parts[b.index + 1]
                parts.remove(at: b.index + 1)
            }
            if parts.count == 2, let a = id(of: parts[0]), let b = id(of: parts[1]) { out.append((a, b)) }
        }
        return out
    }
}
