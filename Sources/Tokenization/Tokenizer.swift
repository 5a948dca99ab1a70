import Dispatch
import Foundation

/// Which special tokens `encode` may produce (or must refuse) when their text appears.
public enum SpecialTokenPolicy: Sendable {
    case none, all
    case only(Set<String>)

    func contains(_ token: String) -> Bool {
        switch self {
        case .none: return false
        case .all: return true
        case let .only(set): return set.contains(token)
        }
    }
}

/// Text ⇄ token ids: a split pattern, byte-level BPE, and special tokens.
///
/// `encodeOrdinary` treats everything as text; `encode` turns allowed special-token text into
/// its id and, like tiktoken, refuses (by default) text that spells a special token not allowed.
public final class Tokenizer: @unchecked Sendable {
    public let pattern: SplitPattern
    public let bpe: BytePairEncoder
    /// Special tokens by id order.
    public let specialTokens: [(text: String, id: UInt32)]
    private let specialBytes: [[UInt8]]
    private let specialById: [UInt32: Int]
    private let caches = CachePool()

    public init(pattern: SplitPattern, bpe: BytePairEncoder, specialTokens: [String: UInt32] = [:]) {
        self.pattern = pattern
        self.bpe = bpe
        self.specialTokens = specialTokens.map { ($0.key, $0.value) }.sorted { $0.1 < $1.1 }
        specialBytes = self.specialTokens.map { Array($0.text.utf8) }
        specialById = Dictionary(uniqueKeysWithValues: self.specialTokens.enumerated().map { ($0.element.id, $0.offset) })
    }

    /// Ids run 0..<vocabularySize (BPE tokens, then special tokens).
    public var vocabularySize: Int { max(bpe.count, (specialTokens.map { Int($0.id) }.max() ?? -1) + 1) }

    public func specialTokenId(_ text: String) -> UInt32? { specialTokens.first { $0.text == text }?.id }

    // MARK: Encoding

    /// Encodes text with no special tokens: `<|endoftext|>` is just characters here.
    public func encodeOrdinary(_ text: String) -> [UInt32] {
        var text = text
        var out: [UInt32] = []
        out.reserveCapacity(text.utf8.count / 3)
        let cache = caches.take()
        text.withUTF8 { encodeOrdinary($0, into: &out, cache: cache) }
        caches.give(cache)
        return out
    }

    /// Encodes valid UTF-8 bytes with no special tokens, appending to `out`.
    public func encodeOrdinary(utf8 bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt32]) {
        let cache = caches.take()
        encodeOrdinary(bytes, into: &out, cache: cache)
        caches.give(cache)
    }

    func encodeOrdinary(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt32], cache: PieceCache) {
        guard let base = bytes.baseAddress else { return }
        let bpe = self.bpe
        pattern.split(bytes) { r in
            let p = base + r.lowerBound, n = r.count
            let h = BytesMap.hash(p, n)
            if let id = bpe.wholeToken(p, n, hash: h) { out.append(id); return }
            if cache.append(p, n, hash: h, to: &out) { return }
            let before = out.count
            bpe.encodePiece(p, n, into: &out, scratch: &cache.scratch)
            cache.insert(p, n, hash: h, ids: out[before...])
        }
    }

    /// Encodes text, turning the text of allowed special tokens into their ids. Text that spells a
    /// special token in `disallowedSpecial` (and not allowed) is an error naming it and its offset.
    public func encode(_ text: String, allowedSpecial: SpecialTokenPolicy = .none,
                       disallowedSpecial: SpecialTokenPolicy = .all) throws(TokenizerError) -> [UInt32] {
        var text = text
        var result: Result<[UInt32], TokenizerError> = .success([])
        text.withUTF8 { buf in
            result = Result { () throws(TokenizerError) in
                try encode(utf8: buf, allowedSpecial: allowedSpecial, disallowedSpecial: disallowedSpecial)
            }
        }
        return try result.get()
    }

    public func encode(utf8 buf: UnsafeBufferPointer<UInt8>, allowedSpecial: SpecialTokenPolicy = .none,
                       disallowedSpecial: SpecialTokenPolicy = .all) throws(TokenizerError) -> [UInt32] {
        let matches = findSpecials(buf)
        for m in matches {
            let token = specialTokens[m.index].text
            if !allowedSpecial.contains(token) && disallowedSpecial.contains(token) {
                throw .disallowedSpecial(token: token, offset: m.offset)
            }
        }
        var out: [UInt32] = []
        out.reserveCapacity(buf.count / 3)
        let cache = caches.take()
        defer { caches.give(cache) }
        var start = 0
        for m in matches where allowedSpecial.contains(specialTokens[m.index].text) {
            if m.offset < start { continue }      // overlapped by an earlier special token
            encodeOrdinary(UnsafeBufferPointer(rebasing: buf[start..<m.offset]), into: &out, cache: cache)
            out.append(specialTokens[m.index].id)
            start = m.offset + specialBytes[m.index].count
        }
        encodeOrdinary(UnsafeBufferPointer(rebasing: buf[start...]), into: &out, cache: cache)
        return out
    }

    /// Every occurrence of a special token's text, leftmost first (the longest at one offset).
    private func findSpecials(_ buf: UnsafeBufferPointer<UInt8>) -> [(offset: Int, index: Int)] {
        guard !specialBytes.isEmpty, let base = buf.baseAddress else { return [] }
        var found: [(Int, Int)] = []
        let firstBytes = Set(specialBytes.compactMap(\.first))
        var i = 0
        while i < buf.count {
            if firstBytes.contains(base[i]) {
                var best = -1
                for (k, s) in specialBytes.enumerated() where s.count <= buf.count - i && (best < 0 || s.count > specialBytes[best].count) {
                    if memcmp(base + i, s, s.count) == 0 { best = k }
                }
                if best >= 0 { found.append((i, best)); i += specialBytes[best].count; continue }
            }
            i += 1
        }
        return found
    }

    /// Encodes many texts on `threads` threads (each with its own cache); results in input order.
    public func encodeOrdinaryBatch(_ texts: [String], threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [[UInt32]] {
        var results = [[UInt32]](repeating: [], count: texts.count)
        let chunks = max(1, min(threads, texts.count))
        results.withUnsafeMutableBufferPointer { res in
            let res = res
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let cache = caches.take()
                defer { caches.give(cache) }
                for i in (c * texts.count / chunks)..<((c + 1) * texts.count / chunks) {
                    var t = texts[i]
                    var out: [UInt32] = []
                    out.reserveCapacity(t.utf8.count / 3)
                    t.withUTF8 { encodeOrdinary($0, into: &out, cache: cache) }
                    res[i] = out
                }
            }
        }
        return results
    }

    /// Encodes one long text on several threads, exactly as `encodeOrdinary` would: the text is cut
    /// into pieces first (one pass), and runs of whole pieces are encoded concurrently.
    public func encodeOrdinaryParallel(utf8 bytes: UnsafeBufferPointer<UInt8>, threads: Int) -> [UInt32] {
        guard threads > 1, bytes.count > 1 << 16, let base = bytes.baseAddress else {
            var out: [UInt32] = []
            encodeOrdinary(utf8: bytes, into: &out)
            return out
        }
        // Cut points at piece boundaries, about bytes/threads/4 apart.
        var cuts = [0]
        let target = bytes.count / (threads * 4)
        pattern.split(bytes) { r in if r.upperBound - cuts.last! >= target { cuts.append(r.upperBound) } }
        if cuts.last! != bytes.count { cuts.append(bytes.count) }
        var parts = [[UInt32]](repeating: [], count: cuts.count - 1)
        parts.withUnsafeMutableBufferPointer { res in
            let res = res
            DispatchQueue.concurrentPerform(iterations: res.count) { i in
                var out: [UInt32] = []
                let cache = caches.take()
                encodeOrdinary(UnsafeBufferPointer(start: base + cuts[i], count: cuts[i + 1] - cuts[i]), into: &out, cache: cache)
                caches.give(cache)
                res[i] = out
            }
        }
        return parts.flatMap { $0 }
    }

    // MARK: Decoding

    /// The bytes of one token (special tokens included).
    public func tokenBytes(_ id: UInt32) -> [UInt8]? {
        if Int(id) < bpe.count { return Array(bpe.tokenBytes(id)) }
        return specialById[id].map { specialBytes[$0] }
    }

    /// Concatenated token bytes. An id outside the vocabulary is an error naming it and its position.
    public func decodeBytes(_ ids: [UInt32]) throws(TokenizerError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        try bpe.bytes.withUnsafeBufferPointer { (arena) throws(TokenizerError) in
            try bpe.offsets.withUnsafeBufferPointer { (offs) throws(TokenizerError) in
                let n = bpe.count
                for (pos, id) in ids.enumerated() {
                    if Int(id) < n {
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: arena[offs[Int(id)]..<offs[Int(id) + 1]]))
                    } else if let s = specialById[id] {
                        out.append(contentsOf: specialBytes[s])
                    } else {
                        throw .unknownId(id: Int(id), position: pos, vocabularySize: vocabularySize)
                    }
                }
            }
        }
        return out
    }

    /// Decoded text; bytes that are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: [UInt32]) throws(TokenizerError) -> String {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }
}

/// Remembers the ids of pieces already encoded (pieces repeat a lot in real text).
final class PieceCache: @unchecked Sendable {
    private var map = BytesMap(capacity: 1 << 12)
    private var ids: [UInt32] = []
    var scratch = MergeScratch()
    static let maxEntries = 1 << 18

    @inline(__always)
    func append(_ p: UnsafePointer<UInt8>, _ n: Int, hash: UInt64, to out: inout [UInt32]) -> Bool {
        guard let v = map.get(p, n, hash: hash) else { return false }
        let start = Int(v >> 32), count = Int(v & 0xFFFF_FFFF)
        out.append(contentsOf: ids[start..<(start + count)])
        return true
    }

    @inline(__always)
    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, hash: UInt64, ids new: ArraySlice<UInt32>) {
        if map.count >= Self.maxEntries { map = BytesMap(capacity: 1 << 12); ids = [] }
        map.set(p, n, UInt64(ids.count) << 32 | UInt64(new.count), hash: hash)
        ids.append(contentsOf: new)
    }
}

/// Caches handed to concurrent callers one each.
final class CachePool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [PieceCache] = []
    func take() -> PieceCache { lock.lock(); defer { lock.unlock() }; return free.popLast() ?? PieceCache() }
    func give(_ c: PieceCache) { lock.lock(); free.append(c); lock.unlock() }
}
