import Foundation
import FuzzTargets
import Testing

/// The fuzz targets outside the fuzzer: every seed (made by our writers) is read without an
/// error, every finding kept under Tests/Fuzz/<target>/ (once a crash) is refused with an error
/// naming the file, and a thousand seeded mutations per target run as a quick smoke test
/// (`make fuzz` runs a million coverage-guided ones per target).
@Suite struct FuzzRegressions {
    static let findings = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz").path

    @Test(arguments: FuzzTarget.allCases)
    func seedsAreRead(_ target: FuzzTarget) throws {
        let scratch = try FuzzScratch()
        let seeds = try FuzzSeeds.make(target)
        #expect(!seeds.isEmpty)
        for (i, seed) in seeds.enumerated() {
            do { try target.run(seed, in: scratch) } catch { Issue.record("\(target.rawValue) seed \(i) was refused: \(error)") }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func findingsStayFixed(_ target: FuzzTarget) throws {
        let scratch = try FuzzScratch()
        let dir = Self.findings + "/" + target.rawValue
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() {
            let input = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))
            // Each was a crash: now a refusal that names the file.
            do {
                try target.run(input, in: scratch)
                Issue.record("\(target.rawValue)/\(name) was read; it should be refused")
            } catch {
                #expect("\(error)".contains(scratch.folder), "\(target.rawValue)/\(name): \(error)")
            }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func mutatedSeedsNeverCrash(_ target: FuzzTarget) throws {
        let scratch = try FuzzScratch()
        let seeds = try FuzzSeeds.make(target)
        var rng = SplitMix(seed: UInt64(target.rawValue.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        var unnamed: [String] = []
        for i in 0..<1000 {
            var input = seeds[i % seeds.count]
            for _ in 0...rng.below(4) { mutate(&input, &rng) }
            // A refusal names the file it refuses (every file lies in the scratch folder).
            do { try target.run(input, in: scratch) } catch { if !"\(error)".contains(scratch.folder) { unnamed.append("\(error)") } }
        }
        #expect(unnamed.isEmpty, "\(target.rawValue): \(unnamed.count) errors do not name the file, e.g. \(unnamed.prefix(3))")
    }

    /// One of: flip a bit, set a byte to an edge value, write an edge 32/64-bit integer, cut the
    /// end, drop or repeat a range.
    func mutate(_ bytes: inout [UInt8], _ rng: inout SplitMix) {
        guard !bytes.isEmpty else { bytes = [UInt8(rng.below(256))]; return }
        let at = rng.below(bytes.count)
        switch rng.below(6) {
        case 0: bytes[at] ^= UInt8(1 << rng.below(8))
        case 1: bytes[at] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)]
        case 2:
            let v: UInt64 = [0, 1, 0xffff_ffff, 0x7fff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff, 1 << 40][rng.below(6)]
            for k in 0..<min(8, bytes.count - at) { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
        case 3: bytes.removeSubrange(at...)
        case 4: bytes.removeSubrange(at..<min(bytes.count, at + 1 + rng.below(16)))
        default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 1 + rng.below(16))], at: at)
        }
    }
}

/// A small seeded generator for the mutations.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
