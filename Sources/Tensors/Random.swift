/// Our own seeded random numbers, so a seed gives the same values on every platform.
///
/// xoshiro256** (Blackman & Vigna) seeded through SplitMix64. Normals use Marsaglia's polar
/// method with a logarithm written here from + − × ÷ and sqrt only (all correctly rounded in
/// IEEE 754), so no platform's libm can change a single bit.
public final class RandomGenerator: @unchecked Sendable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)
    private var spareNormal: Float?

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// Restores a generator from `snapshot` (e.g. from a checkpoint).
    public init(snapshot: [UInt64]) {
        precondition(snapshot.count == 4, "RandomGenerator: snapshot needs 4 words")
        state = (snapshot[0], snapshot[1], snapshot[2], snapshot[3])
    }

    /// Takes over another generator's state (for restoring from a checkpoint in place).
    public func restore(from other: RandomGenerator) {
        state = other.state
        spareNormal = nil
    }

    /// The state, for saving; a pending cached normal is dropped so the snapshot is exact.
    public var snapshot: [UInt64] {
        spareNormal = nil
        return [state.0, state.1, state.2, state.3]
    }

    @inline(__always)
    public func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    public func uniformDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform integer in 0..<n (n > 0), without modulo bias.
    public func int(below n: Int) -> Int {
        precondition(n > 0, "RandomGenerator.int: n = \(n)")
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let r = next()
            if r < limit { return Int(r % bound) }
        }
    }

    /// Standard normal.
    public func normal() -> Float {
        if let s = spareNormal { spareNormal = nil; return s }
        while true {
            let u = 2 * uniformDouble() - 1, v = 2 * uniformDouble() - 1
            let s = u * u + v * v
            if s > 0 && s < 1 {
                let f = (-2 * portableLog(s) / s).squareRoot()
                spareNormal = Float(v * f)
                return Float(u * f)
            }
        }
    }

    /// A random permutation of 0..<n (Fisher–Yates).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(below: i + 1)) } }
        return p
    }
}

/// Natural log for x in (0, 1], bit-identical everywhere: x = m·2^e with m in [√½, √2),
/// log m = 2·atanh(s) with s = (m−1)/(m+1), summed as a series to double precision.
func portableLog(_ x: Double) -> Double {
    var m = x, e = 0.0
    while m < 0.7071067811865476 { m *= 2; e -= 1 }
    while m > 1.4142135623730951 { m /= 2; e += 1 }
    let s = (m - 1) / (m + 1), s2 = s * s
    var term = s, sum = 0.0
    var k = 1.0
    while k < 60 {
        sum += term / k
        term *= s2
        k += 2
    }
    return 2 * sum + e * 0.6931471805599453
}
