import Foundation
import Models
import Testing
import Tensors

/// Builds GGUF bytes by hand (the spec's layout), so the reader is tested on files with known
/// contents, and on every kind of damage.
struct GGUFBuilder {
    var version: UInt32 = 3
    var metadata: [(String, [UInt8])] = []           // key, (type u32 + value bytes)
    var tensors: [(name: String, dims: [UInt64], type: UInt32, data: [UInt8])] = []
    var alignment = 32

    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func str(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func add(_ key: String, type: UInt32, _ value: [UInt8]) { metadata.append((key, GGUFBuilder.u32(type) + value)) }
    mutating func add(_ key: String, u32 v: UInt32) { add(key, type: 4, GGUFBuilder.u32(v)) }
    mutating func add(_ key: String, string s: String) { add(key, type: 8, GGUFBuilder.str(s)) }
    mutating func add(_ key: String, f32 v: Float) { add(key, type: 6, GGUFBuilder.u32(v.bitPattern)) }
    mutating func add(_ key: String, strings: [String]) {
        add(key, type: 9, GGUFBuilder.u32(8) + GGUFBuilder.u64(UInt64(strings.count)) + strings.flatMap(GGUFBuilder.str))
    }

    func bytes() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8) + GGUFBuilder.u32(version)
        out += GGUFBuilder.u64(UInt64(tensors.count)) + GGUFBuilder.u64(UInt64(metadata.count))
        for (k, v) in metadata { out += GGUFBuilder.str(k) + v }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            out += GGUFBuilder.str(t.name) + GGUFBuilder.u32(UInt32(t.dims.count)) + t.dims.flatMap(GGUFBuilder.u64)
            out += GGUFBuilder.u32(t.type) + GGUFBuilder.u64(UInt64(off))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out += t.data
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    func write() throws -> String {
        let path = NSTemporaryDirectory() + "gguf-test-\(UUID().uuidString).gguf"
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
        return path
    }
}

func writeTemp(_ bytes: [UInt8]) throws -> String {
    let path = NSTemporaryDirectory() + "gguf-test-\(UUID().uuidString).gguf"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// The error a read fails with, as text ("" when it does not fail).
func ggufError(_ bytes: [UInt8]) throws -> String {
    let path = try writeTemp(bytes)
    defer { try? FileManager.default.removeItem(atPath: path) }
    do { _ = try GGUFFile(path: path); return "" } catch { return error.description }
}

@Suite struct GGUFReading {
    static func sample() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.add("general.architecture", string: "llama")
        b.add("general.name", string: "tiny ünïcode")
        b.add("test.u8", type: 0, [200])
        b.add("test.i8", type: 1, [0xFF])
        b.add("test.u16", type: 2, [0x34, 0x12])
        b.add("test.i16", type: 3, [0xFE, 0xFF])
        b.add("test.u32", u32: 4_000_000_000)
        b.add("test.i32", type: 5, GGUFBuilder.u32(UInt32(bitPattern: -7)))
        b.add("test.f32", f32: 0.25)
        b.add("test.bool", type: 7, [1])
        b.add("test.u64", type: 10, GGUFBuilder.u64(1 << 40))
        b.add("test.i64", type: 11, GGUFBuilder.u64(UInt64(bitPattern: -3)))
        b.add("test.f64", type: 12, GGUFBuilder.u64(Double(1.5).bitPattern))
        b.add("test.strings", strings: ["a", "bc", ""])
        // An array of arrays of i32: [[1, 2], [3]]
        let inner1 = GGUFBuilder.u32(5) + GGUFBuilder.u64(2) + GGUFBuilder.u32(1) + GGUFBuilder.u32(2)
        let inner2 = GGUFBuilder.u32(5) + GGUFBuilder.u64(1) + GGUFBuilder.u32(3)
        b.add("test.nested", type: 9, GGUFBuilder.u32(9) + GGUFBuilder.u64(2) + inner1 + inner2)
        // A (2, 32) F32 matrix, a (32,) F16 vector, a (1, 32) Q8_0 row.
        let f32 = (0..<64).flatMap { GGUFBuilder.u32(Float($0).bitPattern) }
        let f16 = (0..<32).flatMap { i in withUnsafeBytes(of: Float16(Float(i) / 2).bitPattern.littleEndian, Array.init) }
        let q8: [UInt8] = withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian, Array.init) + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        b.tensors = [("m.f32", [32, 2], 0, f32), ("v.f16", [32], 1, f16), ("r.q8_0", [32, 1], 8, q8)]
        return b
    }

    @Test func readsEveryValueTypeAndTensors() throws {
        let path = try Self.sample().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try GGUFFile(path: path)
        #expect(f.version == 3)
        #expect(f["general.name"]?.string == "tiny ünïcode")
        #expect(f["test.u8"]?.int == 200)
        #expect(f["test.i8"]?.int == -1)
        #expect(f["test.u16"]?.int == 0x1234)
        #expect(f["test.i16"]?.int == -2)
        #expect(f["test.u32"]?.int == 4_000_000_000)
        #expect(f["test.i32"]?.int == -7)
        #expect(f["test.f32"]?.double == 0.25)
        #expect(f["test.bool"]?.bool == true)
        #expect(f["test.u64"]?.int == 1 << 40)
        #expect(f["test.i64"]?.int == -3)
        #expect(f["test.f64"]?.double == 1.5)
        #expect(f["test.strings"]?.strings == ["a", "bc", ""])
        let nested = f["test.nested"]?.array?.map { $0.array?.compactMap(\.int) ?? [] }
        #expect(nested == [[1, 2], [3]])
        #expect(f.metadata.map(\.key).first == "general.architecture")   // file order kept
        #expect(f.tensors.map(\.name) == ["m.f32", "v.f16", "r.q8_0"])
        let m = try f.floatTensor("m.f32")
        #expect(m.shape == [2, 32] && m.scalars == (0..<64).map(Float.init))
        #expect(try f.floatTensor("v.f16").scalars == (0..<32).map { Float($0) / 2 })
        #expect(try f.floatTensor("r.q8_0").scalars == (0..<32).map { Float($0 - 16) * 0.5 })
        // Version 2 has the same layout.
        var v2 = Self.sample()
        v2.version = 2
        #expect(try ggufError(v2.bytes()) == "")
    }

    @Test func everyTruncationIsAnErrorNamingFieldAndOffset() throws {
        let full = Self.sample().bytes()
        // Every cut inside the header, metadata and tensor table, then a sample of cuts in the data.
        let headerEnd = full.count - 64 * 4 - 64 - 64      // roughly where the data starts
        var cuts = Array(0..<headerEnd)
        cuts += stride(from: headerEnd, to: full.count - 30, by: 7)   // the last 30 bytes are padding
        for cut in cuts {
            let message = try ggufError(Array(full[..<cut]))
            #expect(message.contains("truncated") || message.contains("not a GGUF") || message.contains("more than the remaining"),
                    "cut at \(cut): \(message)")
        }
        let message = try ggufError(Array(full[..<40]))
        #expect(message.contains("byte"), "\(message)")
    }

    @Test func corruptFilesGiveClearErrors() throws {
        var bytes = Self.sample().bytes()
        bytes[0] = UInt8(ascii: "X")
        #expect(try ggufError(bytes).contains("not a GGUF file"))

        var b = Self.sample(); b.version = 7
        #expect(try ggufError(b.bytes()).contains("version 7"))

        // A metadata count larger than the file could hold.
        bytes = Self.sample().bytes()
        bytes.replaceSubrange(16..<24, with: GGUFBuilder.u64(1 << 60))
        #expect(try ggufError(bytes).contains("metadata count"))

        // A string whose length runs past the end.
        b = GGUFBuilder(); b.add("k", type: 8, GGUFBuilder.u64(1 << 50) + [0x41])
        #expect(try ggufError(b.bytes()).contains("metadata k"))

        b = GGUFBuilder(); b.add("k", type: 13, [0])
        #expect(try ggufError(b.bytes()).contains("unknown value type 13"))

        b = GGUFBuilder(); b.add("k", type: 7, [2])
        #expect(try ggufError(b.bytes()).contains("bool"))

        b = GGUFBuilder(); b.add("k", type: 8, GGUFBuilder.u64(2) + [0xC3, 0x28])
        #expect(try ggufError(b.bytes()).contains("UTF-8"))

        b = GGUFBuilder(); b.add("general.alignment", u32: 24)
        #expect(try ggufError(b.bytes()).contains("power of two"))

        // A tensor whose bytes lie beyond the end of the file.
        b = Self.sample()
        b.tensors[0].dims = [32, 2000]
        let e = try ggufError(b.bytes())
        #expect(e.contains("truncated: tensor m.f32") && e.contains("spans bytes"), "\(e)")

        // Dimensions whose product overflows, and an offset far beyond the file.
        b = Self.sample()
        b.tensors[0].dims = [1 << 39, 1 << 39, 1 << 39]
        #expect(try ggufError(b.bytes()).contains("too many"))
        bytes = Self.sample().bytes()
        let name = Array("m.f32".utf8)
        let at = (0...(bytes.count - name.count)).first { Array(bytes[$0..<($0 + name.count)]) == name }!
        let offsetField = at + name.count + 4 + 2 * 8 + 4          // after n_dims, two dims, type
        bytes.replaceSubrange(offsetField..<(offsetField + 8), with: GGUFBuilder.u64(1 << 60))
        #expect(try ggufError(bytes).contains("lies beyond the end of the file"))

        // A supported type with a row length that is not whole blocks.
        b = Self.sample()
        b.tensors[2].dims = [16, 1]
        #expect(try ggufError(b.bytes()).contains("not a multiple of Q8_0's block of 32"))

        // An unsupported type reads fine, but asking for the tensor names the type and tensor.
        b = Self.sample()
        b.tensors[2].type = 23        // IQ4_XS
        b.tensors[2].dims = [256, 1]
        b.tensors[2].data = [UInt8](repeating: 0, count: 136)
        let path = try b.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try GGUFFile(path: path)
        #expect(throws: ModelError.self) { try f.matrix("r.q8_0") }
        do { _ = try f.matrix("r.q8_0") } catch {
            #expect(error.description.contains("r.q8_0") && error.description.contains("IQ4_XS"), "\(error)")
        }
        do { _ = try f.matrix("nope") } catch { #expect(error.description.contains("no tensor named nope")) }

        // Not a file at all.
        do { _ = try GGUFFile(path: "/nonexistent/x.gguf"); Issue.record("expected an error") } catch {
            #expect(error.description.contains("/nonexistent/x.gguf"))
        }
    }
}
