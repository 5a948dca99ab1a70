/// Two small open-addressing hash tables for the encoder's hot path (the standard Dictionary
/// hashes with SipHash and would need an Array per byte-string key).

/// UInt64 → UInt64, linear probing. Key UInt64.max is reserved as "empty".
struct IntMap {
    private(set) var keys: [UInt64]
    private(set) var values: [UInt64]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: .max, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always) private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    @inline(__always)
    func get(_ key: UInt64) -> UInt64? {
        var i = Self.slot(key, mask)
        return keys.withUnsafeBufferPointer { k in
            while true {
                let stored = k[i]
                if stored == key { return values[i] }
                if stored == .max { return nil }
                i = (i + 1) & mask
            }
        }
    }

    mutating func set(_ key: UInt64, _ value: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        var i = Self.slot(key, mask)
        while keys[i] != .max && keys[i] != key { i = (i + 1) & mask }
        if keys[i] == .max { count += 1 }
        keys[i] = key
        values[i] = value
    }

    private mutating func grow() {
        var bigger = IntMap(capacity: keys.count)
        for (k, v) in zip(keys, values) where k != .max { bigger.set(k, v) }
        self = bigger
    }
}

/// Byte string → UInt64. Keys are copied into one arena; slots keep a 64-bit hash, so a probe
/// compares bytes only when the hashes agree.
struct BytesMap {
    private var hashes: [UInt64]          // 0 = empty slot
    private var starts: [Int32]
    private var lengths: [Int32]
    private var values: [UInt64]
    private(set) var arena: [UInt8] = []
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        hashes = [UInt64](repeating: 0, count: size)
        starts = [Int32](repeating: 0, count: size)
        lengths = [Int32](repeating: 0, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    /// A fast 64-bit hash of a byte string, eight bytes at a time; never 0.
    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(n)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
            i += 8
        }
        if i < n {
            var tail: UInt64 = 0
            for k in 0..<(n - i) { tail |= UInt64(p[i + k]) << (8 * UInt64(k)) }
            h = (h ^ tail) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
        }
        h = (h ^ (h >> 32)) &* 0xD6E8_FEB8_6659_FD93
        h ^= h >> 32
        return h | 1
    }

    @inline(__always)
    func get(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64) -> UInt64? {
        var i = Int(truncatingIfNeeded: h) & mask
        return hashes.withUnsafeBufferPointer { hs in
            arena.withUnsafeBufferPointer { a in
                while true {
                    let stored = hs[i]
                    if stored == 0 { return nil }
                    if stored == h && Int(lengths[i]) == n
                        && (n == 0 || memcmp(a.baseAddress! + Int(starts[i]), p, n) == 0) { return values[i] }
                    i = (i + 1) & mask
                }
            }
        }
    }

    @inline(__always)
    func get(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64? { get(p, n, hash: Self.hash(p, n)) }

    func get(_ bytes: [UInt8]) -> UInt64? {
        bytes.withUnsafeBufferPointer { get($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
    }

    mutating func set(_ p: UnsafePointer<UInt8>, _ n: Int, _ value: UInt64, hash h: UInt64) {
        if (count + 1) * 2 > hashes.count { grow() }
        var i = Int(truncatingIfNeeded: h) & mask
        while hashes[i] != 0 {
            if hashes[i] == h && Int(lengths[i]) == n && arena.withUnsafeBufferPointer({ n == 0 || memcmp($0.baseAddress! + Int(starts[i]), p, n) == 0 }) {
                values[i] = value
                return
            }
            i = (i + 1) & mask
        }
        hashes[i] = h
        starts[i] = Int32(arena.count)
        lengths[i] = Int32(n)
        values[i] = value
        arena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        count += 1
    }

    mutating func set(_ bytes: [UInt8], _ value: UInt64) {
        bytes.withUnsafeBufferPointer { b in
            let p = b.baseAddress ?? UnsafePointer(bitPattern: 1)!
            set(p, b.count, value, hash: Self.hash(p, b.count))
        }
    }

    /// Visits every (key bytes, key length, value).
    func forEach(_ body: (UnsafePointer<UInt8>, Int, UInt64) -> Void) {
        arena.withUnsafeBufferPointer { a in
            let base = a.baseAddress ?? UnsafePointer(bitPattern: 1)!
            for i in hashes.indices where hashes[i] != 0 { body(base + Int(starts[i]), Int(lengths[i]), values[i]) }
        }
    }

    private mutating func grow() {
        var bigger = BytesMap(capacity: hashes.count)
        arena.withUnsafeBufferPointer { a in
            for i in hashes.indices where hashes[i] != 0 {
                bigger.set(a.baseAddress! + Int(starts[i]), Int(lengths[i]), values[i], hash: hashes[i])
            }
        }
        self = bigger
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
