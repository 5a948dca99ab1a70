import Dispatch
import Foundation

/// Learns byte-level BPE merges from text.
///
/// 1. Split the text with the pattern and count each distinct piece once (both cores, each on
///    half of the text, counts merged).
/// 2. Count every adjacent pair of symbols over the distinct pieces (weighted by piece count),
///    remembering which pieces hold each pair.
/// 3. Repeatedly take the most frequent pair from a max-heap, give it a new id, and rewrite only the
///    pieces that hold it, adjusting the counts of the pairs around each occurrence. Heap entries
///    whose count has changed since they were pushed are re-pushed with the current count (lazy
///    update), so nothing is ever recounted from scratch.
///
/// Deterministic: ties in count go to the pair with the smaller (left id, right id). Ids 0–255 are
/// the single bytes in byte order, merge i creates id 256 + i, special tokens come last.
public struct BPETrainer {
    public var vocabularySize: Int
    public var pattern: SplitPattern
    public var specialTokens: [String]
    /// Called after each merge with (merges done, merges wanted).
    public var progress: ((Int, Int) -> Void)?

    public init(vocabularySize: Int, pattern: SplitPattern = .gpt2, specialTokens: [String] = [], progress: ((Int, Int) -> Void)? = nil) {
        self.vocabularySize = vocabularySize
        self.pattern = pattern
        self.specialTokens = specialTokens
        self.progress = progress
    }

    /// Counts of distinct pieces in `texts` (each valid UTF-8), on `threads` threads.
    public func countPieces(_ texts: [[UInt8]], threads: Int = 2) -> [(bytes: [UInt8], count: Int)] {
        // Cut the work into `threads` shares of roughly equal bytes, at line boundaries.
        var shares: [[ArraySlice<UInt8>]] = Array(repeating: [], count: max(1, threads))
        let total = texts.reduce(0) { $0 + $1.count }
        let target = total / shares.count + 1
        var share = 0, filled = 0
        for t in texts {
            var start = 0
            while start < t.count {
                var end = min(t.count, start + (target - filled))
                if end < t.count, share < shares.count - 1 {
                    while end < t.count && t[end] != 0x0A { end += 1 }
                    if end < t.count { end += 1 }
                } else if share == shares.count - 1 { end = t.count }
                shares[share].append(t[start..<end])
                filled += end - start
                start = end
                if filled >= target && share < shares.count - 1 { share += 1; filled = 0 }
            }
        }
        var partial = [BytesMap](repeating: BytesMap(), count: shares.count)
        partial.withUnsafeMutableBufferPointer { maps in
            let maps = maps
            DispatchQueue.concurrentPerform(iterations: shares.count) { s in
                var counts = BytesMap(capacity: 1 << 14)
                for slice in shares[s] {
                    slice.withUnsafeBufferPointer { buf in
                        guard let base = buf.baseAddress else { return }
                        pattern.split(buf) { r in
                            let p = base + r.lowerBound, h = BytesMap.hash(p, r.count)
                            counts.set(p, r.count, (counts.get(p, r.count, hash: h) ?? 0) + 1, hash: h)
                        }
                    }
                }
                maps[s] = counts
            }
        }
        var merged = partial[0]
        for m in partial.dropFirst() {
            m.forEach { p, n, v in
                let h = BytesMap.hash(p, n)
                merged.set(p, n, (merged.get(p, n, hash: h) ?? 0) + v, hash: h)
            }
        }
        var out: [(bytes: [UInt8], count: Int)] = []
        out.reserveCapacity(merged.count)
        merged.forEach { p, n, v in out.append((Array(UnsafeBufferPointer(start: p, count: n)), Int(v))) }
        out.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }       // a fixed order, whatever the hashing
        return out
    }

    /// Learns merges from the given texts and returns the tokenizer.
    public func train(_ texts: [[UInt8]], threads: Int = 2) throws(TokenizerError) -> Tokenizer {
        let merges = learnMerges(countPieces(texts, threads: threads))
        return try makeTokenizer(merges)
    }

    /// Builds the tokenizer for a list of merges (ids as described above).
    public func makeTokenizer(_ merges: [(UInt32, UInt32)]) throws(TokenizerError) -> Tokenizer {
        var tokens = (0..<256).map { [UInt8($0)] }
        for (a, b) in merges { tokens.append(tokens[Int(a)] + tokens[Int(b)]) }
        let bpe = try BytePairEncoder(tokens: tokens, merges: merges)
        var specials: [String: UInt32] = [:]
        for (i, s) in specialTokens.enumerated() { specials[s] = UInt32(tokens.count + i) }
        return Tokenizer(pattern: pattern, bpe: bpe, specialTokens: specials)
    }

    /// The merge loop over counted pieces.
    public func learnMerges(_ pieces: [(bytes: [UInt8], count: Int)]) -> [(UInt32, UInt32)] {
        let wanted = max(0, vocabularySize - 256 - specialTokens.count)
        var words = pieces.map { $0.bytes.map(UInt32.init) }
        let counts = pieces.map(\.count)
        var pairCount: [UInt64: Int] = [:]
        var holders: [UInt64: Set<Int32>] = [:]
        @inline(__always) func key(_ a: UInt32, _ b: UInt32) -> UInt64 { UInt64(a) << 32 | UInt64(b) }

        for (w, word) in words.enumerated() where word.count >= 2 {
            for i in 0..<(word.count - 1) {
                let k = key(word[i], word[i + 1])
                pairCount[k, default: 0] += counts[w]
                holders[k, default: []].insert(Int32(w))
            }
        }
        var heap = MinHeap<PairCandidate>()
        for (k, c) in pairCount where c > 0 { heap.push(PairCandidate(count: c, pair: k)) }

        var merges: [(UInt32, UInt32)] = []
        merges.reserveCapacity(wanted)
        while merges.count < wanted, let top = heap.pop() {
            let current = pairCount[top.pair] ?? 0
            if current != top.count {                  // stale: re-queue with today's count
                if current > 0 { heap.push(PairCandidate(count: current, pair: top.pair)) }
                continue
            }
            if current <= 0 { break }
            let a = UInt32(top.pair >> 32), b = UInt32(top.pair & 0xFFFF_FFFF)
            let newId = UInt32(256 + merges.count)
            merges.append((a, b))
            var touched = Set<UInt64>()
            for w32 in holders[top.pair] ?? [] {
                let w = Int(w32), c = counts[w]
                var word = words[w]
                var i = 0
                var rewritten: [UInt32] = []
                rewritten.reserveCapacity(word.count)
                while i < word.count {
                    if i + 1 < word.count && word[i] == a && word[i + 1] == b {
                        // Occurrence at i: (prev, a) and (b, next) become (prev, new) and (new, next).
                        if let prev = rewritten.last {
                            let old = key(prev, a), new = key(prev, newId)
                            pairCount[old, default: 0] -= c; pairCount[new, default: 0] += c
                            holders[new, default: []].insert(w32)
                            touched.insert(old); touched.insert(new)
                        }
                        if i + 2 < word.count {
                            let next = word[i + 2]
                            let old = key(b, next), new = key(newId, next)
                            pairCount[old, default: 0] -= c; pairCount[new, default: 0] += c
                            holders[new, default: []].insert(w32)
                            touched.insert(old); touched.insert(new)
                        }
                        pairCount[top.pair, default: 0] -= c
                        rewritten.append(newId)
                        i += 2
                    } else {
                        rewritten.append(word[i])
                        i += 1
                    }
                }
                word = rewritten
                words[w] = word
            }
            holders[top.pair] = nil
            pairCount[top.pair] = nil
            for k in touched where k != top.pair {
                if let c = pairCount[k], c > 0 { heap.push(PairCandidate(count: c, pair: k)) }
            }
            progress?(merges.count, wanted)
        }
        return merges
    }
}

/// A pair waiting in the trainer's heap. "Less" means "merged first": the higher count, then
/// the smaller (left id, right id).
struct PairCandidate: Comparable {
    let count: Int
    let pair: UInt64
    static func < (x: PairCandidate, y: PairCandidate) -> Bool {
        x.count != y.count ? x.count > y.count : x.pair < y.pair
    }
}
