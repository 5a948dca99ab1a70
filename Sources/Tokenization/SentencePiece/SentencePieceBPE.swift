/// BPE over pieces with scores, as sentencepiece's `bpe_model.cc` and llama.cpp's SPM tokenizer do
/// it: the text starts as single UTF-8 characters; while some adjacent pair spells a piece, the
/// pair whose piece has the highest score merges (the leftmost among equal scores). Symbols are a
/// linked list and candidate pairs sit in a max-heap, so each merge costs O(log n); each symbol
/// keeps its trie node, so a pair is looked up by walking only the right symbol's bytes.
///
/// The two differ only in the knobs below. sentencepiece: only normal, user-defined and unused
/// pieces are merge results; user-defined pieces are cut out first and never merge; an unused
/// piece is split back into the two pieces it was merged from. llama.cpp: every token is.
struct ScoredBPE: Sendable {
    let trie: PieceTrie
    /// Per id: may a merge produce this piece.
    let mergeable: [Bool]
    /// Per id: the score as an Int32 with the same order (a bigger score merges first).
    let priority: [Int32]
    /// User-defined pieces, matched longest first and kept whole (sentencepiece only).
    let frozen: PieceTrie?
    /// Per id: unused (sentencepiece only; nil when the vocabulary has none).
    let unused: [Bool]?

    /// An order-preserving integer for a score. `signedZero`: -0 sorts below +0, as
    /// sentencepiece's integer comparison does; otherwise they are equal, as in llama.cpp.
    static func priority(_ score: Float, signedZero: Bool) -> Int32 {
        let s = signedZero || score != 0 ? score : 0
        let i = Int32(bitPattern: s.bitPattern)
        return i >= 0 ? i : i ^ Int32.max
    }

    /// Appends the pieces of p[0..<n] to `raw` as (id << 32 | byte length); id -1 (0xFFFFFFFF)
    /// marks a piece the vocabulary does not have.
    func encode(_ p: UnsafePointer<UInt8>, _ n: Int, into raw: inout [UInt64], scratch s: BPEScratch) {
        guard n > 0 else { return }
        s.reset()
        var i = 0
        while i < n {
            var len = min(utf8LeadLength(p[i]), n - i)
            var isFrozen = false
            if let frozen, let (length, _) = frozen.longestMatch(p + i, n - i) { len = length; isFrozen = true }
            s.add(start: i, length: len, node: trie.walk(0, p + i, len), frozen: isFrozen)
            i += len
        }
        let count = s.start.count
        for k in 1..<max(count, 1) { tryPair(k - 1, k, p, s) }
        while let top = s.pop() {
            let l = Int(top.left), r = Int(top.right)
            if s.length[l] == 0 || s.length[r] == 0 || s.length[l] + s.length[r] != top.size { continue }
            s.length[l] += s.length[r]
            s.node[l] = top.node
            s.length[r] = 0
            s.next[l] = s.next[r]
            if s.next[r] >= 0 { s.prev[Int(s.next[r])] = Int32(l) }
            if s.prev[l] >= 0 { tryPair(Int(s.prev[l]), l, p, s) }
            if s.next[l] >= 0 { tryPair(l, Int(s.next[l]), p, s) }
        }
        var k = 0
        while k >= 0 {
            let node = s.node[k]
            let id = node >= 0 ? trie.value(node) : -1
            resegment(p + Int(s.start[k]), Int(s.length[k]), id: id, depth: 0, into: &raw, s)
            k = Int(s.next[k])
        }
    }

    @inline(__always)
    private func tryPair(_ l: Int, _ r: Int, _ p: UnsafePointer<UInt8>, _ s: BPEScratch) {
        if s.frozen[l] || s.frozen[r] || s.node[l] < 0 { return }
        let node = trie.walk(s.node[l], p + Int(s.start[r]), Int(s.length[r]))
        if node < 0 { return }
        let id = trie.value(node)
        if id < 0 || !mergeable[Int(id)] { return }
        s.push(BPEScratch.Pair(priority: priority[Int(id)], left: Int32(l), right: Int32(r),
                               size: s.length[l] + s.length[r], node: node))
        if let unused, unused[Int(id)] { s.splits.set(UInt64(id), UInt64(s.length[l])) }
    }

    /// Emits a final symbol: its piece, or for an unused piece the two pieces it was made of.
    private func resegment(_ p: UnsafePointer<UInt8>, _ n: Int, id: Int32, depth: Int, into raw: inout [UInt64], _ s: BPEScratch) {
        func emit(_ id: Int32) { raw.append(UInt64(UInt32(bitPattern: id)) << 32 | UInt64(n)) }
        if depth > 100 { emit(id); return }
        if id < 0 || !mergeable[Int(id)] { emit(-1); return }
        guard let unused, unused[Int(id)] else { emit(id); return }
        guard let leftLength = s.splits.get(UInt64(id)).map(Int.init), leftLength > 0, leftLength < n else { emit(-1); return }
        resegment(p, leftLength, id: trie.lookup(p, leftLength), depth: depth + 1, into: &raw, s)
        resegment(p + leftLength, n - leftLength, id: trie.lookup(p + leftLength, n - leftLength), depth: depth + 1, into: &raw, s)
    }
}

/// The symbols and heap of one BPE run, kept between runs to avoid allocating.
final class BPEScratch {
    struct Pair {
        var priority: Int32
        var left: Int32
        var right: Int32
        var size: Int32
        var node: Int32
    }

    var start: [Int32] = [], length: [Int32] = [], prev: [Int32] = [], next: [Int32] = []
    var node: [Int32] = [], frozen: [Bool] = []
    private var heap: [Pair] = []
    /// Unused piece id → byte length of the left piece it was last merged from.
    var splits = IntMap()

    func reset() {
        start.removeAll(keepingCapacity: true); length.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true); next.removeAll(keepingCapacity: true)
        node.removeAll(keepingCapacity: true); frozen.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        if splits.count > 0 { splits = IntMap() }
    }

    @inline(__always)
    func add(start s: Int, length n: Int, node v: Int32, frozen f: Bool) {
        let i = Int32(start.count)
        if i > 0 { next[Int(i) - 1] = i }
        start.append(Int32(s)); length.append(Int32(n)); prev.append(i - 1); next.append(-1)
        node.append(v); frozen.append(f)
    }

    /// a comes out before b: higher priority, then the leftmost.
    @inline(__always)
    private static func before(_ a: Pair, _ b: Pair) -> Bool {
        a.priority > b.priority || (a.priority == b.priority && a.left < b.left)
    }

    @inline(__always)
    func push(_ x: Pair) {
        heap.append(x)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !Self.before(x, heap[parent]) { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = x
    }

    @inline(__always)
    func pop() -> Pair? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        let n = heap.count
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && Self.before(heap[l + 1], heap[l]) { c = l + 1 }
            if !Self.before(heap[c], last) { break }
            heap[i] = heap[c]
            i = c
        }
        heap[i] = last
        return top
    }
}
