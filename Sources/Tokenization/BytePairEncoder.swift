/// Byte-level BPE: a vocabulary of byte strings and the merges between them.
///
/// Every token is a byte string; ids are dense 0..<count. A merge joins two adjacent tokens into
/// a third and has a rank (lower merges first). Encoding a piece starts from its single bytes and
/// keeps merging the adjacent pair of lowest rank (the leftmost among equals) until none applies;
/// it uses a linked list of parts and a min-heap of candidate pairs, so each merge costs O(log n)
/// instead of a rescan of every pair.
///
/// Two ways to get the merges:
/// - tiktoken ranks files list tokens only; a pair (a, b) merges when the concatenation of their
///   bytes is itself a token, with that token's rank (= its id).
/// - Hugging Face `tokenizer.json` and our trainer list merges explicitly; only those apply.
public final class BytePairEncoder: @unchecked Sendable {
    /// Token bytes, concatenated; token i is bytes[offsets[i] ..< offsets[i + 1]].
    public let bytes: [UInt8]
    public let offsets: [Int]
    /// (left << 32 | right) → (rank << 32 | merged id).
    let merges: IntMap
    /// The id of each single byte.
    let byteTokens: [UInt32]
    /// Whole-token lookup: byte string → id.
    let ids: BytesMap
    /// The explicit merge list in rank order, when there is one.
    public let mergeList: [(UInt32, UInt32)]?

    public var count: Int { offsets.count - 1 }

    /// From tokens in id order; `merges` explicit (rank = position) or derived from ranks = ids.
    /// With `allowMissingBytes` a vocabulary may lack some single bytes (SmolLM2 has no token for
    /// most control characters); such bytes are dropped when encoding, as llama.cpp does.
    public init(tokens: [[UInt8]], merges explicit: [(UInt32, UInt32)]? = nil, allowMissingBytes: Bool = false) throws(TokenizerError) {
        var flat: [UInt8] = [], offs = [0]
        var ids = BytesMap(capacity: tokens.count)
        for (i, t) in tokens.enumerated() {
            if ids.get(t) != nil { throw .invalidVocabulary("token \(i) repeats the bytes of an earlier token: \(escapeBytes(t))") }
            flat.append(contentsOf: t)
            offs.append(flat.count)
            ids.set(t, UInt64(i))
        }
        var byteTokens = [UInt32](repeating: .max, count: 256)
        for b in 0..<256 {
            guard let id = ids.get([UInt8(b)]) else {
                if allowMissingBytes { continue }
                throw .invalidVocabulary("no token for the single byte 0x\(String(b, radix: 16))")
            }
            byteTokens[b] = UInt32(id)
        }
        var table = IntMap(capacity: explicit?.count ?? tokens.count * 2)
        if let explicit {
            for (rank, (a, b)) in explicit.enumerated() {
                guard Int(a) < tokens.count, Int(b) < tokens.count, let m = ids.get(tokens[Int(a)] + tokens[Int(b)]) else {
                    throw .invalidVocabulary("merge \(rank) (\(a), \(b)) does not make a token of the vocabulary")
                }
                let key = UInt64(a) << 32 | UInt64(b)
                if table.get(key) == nil { table.set(key, UInt64(rank) << 32 | m) }
            }
        } else {
            for (id, t) in tokens.enumerated() where t.count >= 2 {
                for cut in 1..<t.count {
                    guard let a = ids.get(Array(t[..<cut])), let b = ids.get(Array(t[cut...])) else { continue }
                    table.set(a << 32 | b, UInt64(id) << 32 | UInt64(id))
                }
            }
        }
        self.bytes = flat
        self.offsets = offs
        self.merges = table
        self.byteTokens = byteTokens
        self.ids = ids
        self.mergeList = explicit
    }

    /// The bytes of one token.
    @inline(__always)
    public func tokenBytes(_ id: UInt32) -> ArraySlice<UInt8> { bytes[offsets[Int(id)]..<offsets[Int(id) + 1]] }

    /// The id of a byte string that is a whole token.
    public func id(of tokenBytes: [UInt8]) -> UInt32? { ids.get(tokenBytes).map { UInt32($0) } }

    @inline(__always)
    func wholeToken(_ p: UnsafePointer<UInt8>, _ n: Int, hash: UInt64) -> UInt32? {
        ids.get(p, n, hash: hash).map { UInt32(truncatingIfNeeded: $0) }
    }

    /// Encodes one piece (no special tokens, no splitting), appending ids to `out`.
    public func encodePiece(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt32]) {
        var scratch = MergeScratch()
        encodePiece(p, n, into: &out, scratch: &scratch)
    }

    /// The same, reusing `scratch`'s buffers from piece to piece.
    func encodePiece(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt32], scratch: inout MergeScratch) {
        // A byte without a token (only in vocabularies that allow it) is .max and is dropped.
        if n == 1 { let a = byteTokens[Int(p[0])]; if a != .max { out.append(a) }; return }
        if n == 2 {   // common and cheap: one possible merge
            let a = byteTokens[Int(p[0])], b = byteTokens[Int(p[1])]
            if let m = merges.get(UInt64(a) << 32 | UInt64(b)) { out.append(UInt32(truncatingIfNeeded: m)); return }
            if a != .max { out.append(a) }
            if b != .max { out.append(b) }
            return
        }
        scratch.reset(n)
        scratch.run(p, n, self)
        var i = 0
        while i < n { if scratch.id[i] != .max { out.append(scratch.id[i]) }; i = scratch.next[i] }
    }
}

/// The linked list of parts and the heap of candidate merges for one piece.
struct MergeScratch {
    var id: [UInt32], next: [Int], prev: [Int]
    var heap = MinHeap<UInt64>()       // (rank << 32 | position of the left part): lowest rank, then leftmost

    init() { id = []; next = []; prev = [] }

    /// Ready for a piece of n bytes (buffers grow, never shrink).
    mutating func reset(_ n: Int) {
        if id.count < n {
            id = [UInt32](repeating: 0, count: n)
            next = [Int](repeating: 0, count: n)
            prev = [Int](repeating: 0, count: n)
        }
        for i in 0..<n { next[i] = i + 1; prev[i] = i - 1 }
        heap.removeAll()
    }

    @inline(__always)
    func candidate(_ pos: Int, _ n: Int, _ bpe: BytePairEncoder) -> UInt64? {
        let nx = next[pos]
        guard nx < n, let m = bpe.merges.get(UInt64(id[pos]) << 32 | UInt64(id[nx])) else { return nil }
        return (m >> 32) << 32 | UInt64(pos)
    }

    mutating func run(_ p: UnsafePointer<UInt8>, _ n: Int, _ bpe: BytePairEncoder) {
        for i in 0..<n { id[i] = bpe.byteTokens[Int(p[i])] }
        for i in 0..<(n - 1) { if let c = candidate(i, n, bpe) { heap.push(c) } }
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF), rank = top >> 32
            // Stale entries: the part was merged away, or its neighbours changed.
            let right = next[pos]
            guard right >= 0, right < n, let m = bpe.merges.get(UInt64(id[pos]) << 32 | UInt64(id[right])),
                  m >> 32 == rank else { continue }
            id[pos] = UInt32(truncatingIfNeeded: m)
            next[pos] = next[right]
            if next[right] < n { prev[next[right]] = pos }
            next[right] = -1                       // mark dead
            if prev[pos] >= 0, let c = candidate(prev[pos], n, bpe) { heap.push(c) }
            if let c = candidate(pos, n, bpe) { heap.push(c) }
        }
    }
}

/// A binary min-heap: `pop` returns the smallest element. The encoder keeps merge candidates in
/// one, the trainer its pairs by count.
struct MinHeap<Element: Comparable> {
    private var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    @inline(__always)
    mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !(items[i] < items[parent]) { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    @inline(__always)
    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
