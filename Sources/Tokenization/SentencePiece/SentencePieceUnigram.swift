/// Unigram segmentation as sentencepiece's `unigram_model.cc` does it (its optimized Viterbi):
/// the best-scoring path through every piece that starts at every character, where a path's
/// score is the sum of its pieces' scores (log-probabilities). A character that no one-character
/// piece covers gets an unknown piece scored 10 below the lowest normal piece. User-defined
/// pieces score 0.1 × (bytes − 1), so they always win. The sums are Float, accumulated in the same
/// order, ties keep the first path found, and scores are re-based past ±100000 exactly as there,
/// so the chosen path is the same to the last bit.
struct UnigramViterbi: Sendable {
    /// Every normal, user-defined and unused piece; unused ones have no id here (never chosen).
    let trie: PieceTrie
    /// Per id: the score a lattice node of this piece gets.
    let nodeScore: ContiguousArray<Float>
    let unknownScore: Float
    /// The unknown piece's id (-1 when the model has none, with byte fallback).
    let unk: Int32

    /// Appends the pieces of p[0..<n] to `raw` as (id << 32 | byte length); id -1 (0xFFFFFFFF)
    /// marks an unknown piece when the model has no unknown id.
    func encode(_ p: UnsafePointer<UInt8>, _ n: Int, into raw: inout [UInt64], scratch s: UnigramScratch) {
        guard n > 0 else { return }
        nodeScore.withUnsafeBufferPointer { viterbi(p, n, $0, s) }
        // Back from the end along the best path.
        let from = s.from, id = s.id
        let first = raw.count
        var end = n
        while end > 0 {
            let start = Int(from[end])
            guard start >= 0, start < end else {      // unreachable end: one unknown piece for the rest
                raw.append(UInt64(UInt32(bitPattern: -1)) << 32 | UInt64(end))
                break
            }
            raw.append(UInt64(UInt32(bitPattern: id[end])) << 32 | UInt64(end - start))
            end = start
        }
        raw[first...].reverse()
    }

    /// Fills the scratch arrays: for each end, the best path's score, last piece and its start.
    private func viterbi(_ p: UnsafePointer<UInt8>, _ n: Int, _ nodeScore: UnsafeBufferPointer<Float>, _ s: UnigramScratch) {
        s.reset(n + 1)
        let score = s.score, from = s.from, id = s.id
        var maxFrontier = 0
        var at = 0
        while at < n {
            var here = score[at]
            if here < -100_000 || here > 100_000 {
                let offset = here
                var i = at
                while i <= maxFrontier {
                    if i == at || from[i] != -1 { score[i] -= offset }
                    i += 1
                }
                here = 0
            }
            var hasSingle = false
            let charLength = min(utf8LeadLength(p[at]), n - at)
            var node: Int32 = 0
            var end = at
            while end < n {
                node = trie.child(node, p[end])
                if node < 0 { break }
                end += 1
                let v = trie.value(node)
                if v < 0 { continue }
                maxFrontier = max(maxFrontier, end)
                let candidate = nodeScore[Int(v)] + here
                if from[end] == -1 || candidate > score[end] {
                    score[end] = candidate
                    from[end] = Int32(at)
                    id[end] = v
                }
                if end - at == charLength { hasSingle = true }
            }
            if !hasSingle {
                let end = at + charLength
                maxFrontier = max(maxFrontier, end)
                let candidate = unknownScore + here
                if from[end] == -1 || candidate > score[end] {
                    score[end] = candidate
                    from[end] = Int32(at)
                    id[end] = unk
                }
            }
            at += charLength
        }
    }
}

/// The Viterbi arrays (best score, start and piece of the best path ending at each byte), reused.
final class UnigramScratch {
    private(set) var score = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var from = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private(set) var id = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var capacity = 1

    func reset(_ n: Int) {
        if n > capacity {
            score.deallocate(); from.deallocate(); id.deallocate()
            capacity = max(n, capacity * 2)
            score = .allocate(capacity: capacity)
            from = .allocate(capacity: capacity)
            id = .allocate(capacity: capacity)
        }
        score[0] = 0                          // the rest is written before it is read
        from.update(repeating: -1, count: n)
    }

    deinit { score.deallocate(); from.deallocate(); id.deallocate() }
}
