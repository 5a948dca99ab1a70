import Foundation

/// A byte trie of pieces as a double array, built here from the vocabulary: the child of node s
/// by byte c is t = base[s] + c when check[t] == s. A walk costs two array reads per byte, which
/// is what Viterbi over every prefix at every position (Unigram) and pair lookups (BPE) need.
/// Node 0 is the root; value[node] is the id of the piece spelled by the path, or -1.
final class PieceTrie: @unchecked Sendable {
    /// (base, check) of each node side by side: one cache line per step of a walk.
    private let units: UnsafeMutableBufferPointer<SIMD2<Int32>>
    private let values: UnsafeMutableBufferPointer<Int32>
    /// The longest key, in bytes.
    let maxKeyLength: Int

    /// From (key bytes, value) pairs; a key given twice keeps its last value. Empty keys are ignored.
    init(_ entries: [([UInt8], Int32)]) {
        // Keys side by side in one arena, sorted (equal keys in input order, the last one kept).
        var arena: [UInt8] = [], starts: [Int] = [], lengths: [Int] = []
        for (key, _) in entries { starts.append(arena.count); lengths.append(key.count); arena += key }
        let order = arena.withUnsafeBufferPointer { a -> [Int] in
            let p = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
            return entries.indices.filter { lengths[$0] > 0 }.sorted { i, j in
                let c = memcmp(p + starts[i], p + starts[j], min(lengths[i], lengths[j]))
                return c != 0 ? c < 0 : lengths[i] != lengths[j] ? lengths[i] < lengths[j] : i < j
            }
        }
        var keyStart: [Int] = [], keyLength: [Int] = [], vals: [Int32] = []
        for i in order {
            if let last = keyStart.indices.last, keyLength[last] == lengths[i],
               arena[keyStart[last]..<(keyStart[last] + lengths[i])].elementsEqual(arena[starts[i]..<(starts[i] + lengths[i])]) {
                vals[last] = entries[i].1
                continue
            }
            keyStart.append(starts[i]); keyLength.append(lengths[i]); vals.append(entries[i].1)
        }
        maxKeyLength = keyLength.max() ?? 0
        func byte(_ k: Int, _ depth: Int) -> Int { Int(arena[keyStart[k] + depth]) }

        var base: [Int32] = [0], check: [Int32] = [-2], value: [Int32] = [-1]
        // freeAfter[i]: a slot at or after i that may be free (i itself when free), followed with
        // path halving, so a search skips runs of taken slots at once.
        var freeAfter: [Int32] = [1]
        func ensure(_ n: Int) {
            while base.count < n {
                freeAfter.append(Int32(base.count))
                base.append(0); check.append(-1); value.append(-1)
            }
        }
        func firstFree(_ from: Int) -> Int {
            var i = from
            ensure(i + 1)
            while Int(freeAfter[i]) != i {
                let next = Int(freeAfter[i])
                ensure(next + 1)
                let after = Int(freeAfter[next])
                freeAfter[i] = Int32(after)
                i = next
            }
            return i
        }
        // Where searches for nodes with several children start: moved past crowded slots.
        var searchFrom = 1
        // Work list: (node, keys[lo..<hi] share their first `depth` bytes).
        var work: [(node: Int, lo: Int, hi: Int, depth: Int)] = [(0, 0, vals.count, 0)]
        var labels: [(label: Int, lo: Int, hi: Int)] = []
        while let (node, lo0, hi, depth) = work.popLast() {
            var lo = lo0
            if lo < hi && keyLength[lo] == depth { value[node] = vals[lo]; lo += 1 }
            labels.removeAll(keepingCapacity: true)
            var i = lo
            while i < hi {
                let c = byte(i, depth)
                var j = i + 1
                while j < hi && byte(j, depth) == c { j += 1 }
                labels.append((c, i, j))
                i = j
            }
            if labels.isEmpty { continue }
            // First fit: a base b >= 1 whose slots b + c are all free.
            let first = labels[0].label
            var p = firstFree(labels.count == 1 ? first + 1 : max(searchFrom, first + 1))
            var tries = 0
            while labels.count > 1 {
                let b = p - first
                ensure(b + 257)
                if labels.dropFirst().allSatisfy({ check[b + $0.label] == -1 }) { break }
                tries += 1
                p = firstFree(p + 1)
            }
            if tries > 16 { searchFrom = p }
            let b = p - first
            ensure(b + 257)
            base[node] = Int32(b)
            for l in labels {
                let t = b + l.label
                check[t] = Int32(node)
                freeAfter[t] = Int32(t + 1)
                work.append((t, l.lo, l.hi, depth + 1))
            }
        }
        ensure((Int(base.max() ?? 0)) + 257)
        units = .allocate(capacity: base.count)
        _ = units.initialize(from: zip(base, check).map { SIMD2($0, $1) })
        self.values = .allocate(capacity: value.count)
        _ = self.values.initialize(from: value)
    }

    deinit {
        units.deallocate()
        values.deallocate()
    }

    /// The child of `node` by byte `c`, or -1.
    @inline(__always)
    func child(_ node: Int32, _ c: UInt8) -> Int32 {
        let t = Int(units[Int(node)].x) + Int(c)
        return units[t].y == node ? Int32(t) : -1
    }

    /// The node reached from `node` by the bytes p[0..<n], or -1.
    @inline(__always)
    func walk(_ node: Int32, _ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        var s = node
        for i in 0..<n {
            s = child(s, p[i])
            if s < 0 { return -1 }
        }
        return s
    }

    /// The piece id at `node` (-1: no piece ends there).
    @inline(__always)
    func value(_ node: Int32) -> Int32 { values[Int(node)] }

    /// The id of exactly the bytes p[0..<n], or -1.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        let s = walk(0, p, n)
        return s < 0 ? -1 : values[Int(s)]
    }

    /// The longest key that prefixes p[0..<n]: (its length, its value).
    @inline(__always)
    func longestMatch(_ p: UnsafePointer<UInt8>, _ n: Int) -> (Int, Int32)? {
        var s: Int32 = 0
        var best: (Int, Int32)? = nil
        for i in 0..<n {
            s = child(s, p[i])
            if s < 0 { break }
            let v = values[Int(s)]
            if v >= 0 { best = (i + 1, v) }
        }
        return best
    }
}
