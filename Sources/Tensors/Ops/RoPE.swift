import Foundation

/// Rotary position embedding (RoPE): each pair of features of a query or key head is rotated by
/// an angle that grows with the token's position, so q·k depends on the distance between them.
///
///   pair i (0 ≤ i < D/2) at position p: θ = p · invFreq[i],  invFreq[i] = base^(−2i/D) (then scaled)
///   (a, b) → (a·cos θ − b·sin θ,  a·sin θ + b·cos θ)
///
/// Which features form pair i depends on how the q/k weights are laid out:
///   .halves    features i and i + D/2   (Hugging Face Llama: rotate_half)
///   .adjacent  features 2i and 2i + 1   (GGUF/llama.cpp: the converter permutes the q/k rows so)
/// Both give the same attention scores for the same model, because q and k are permuted alike.
public struct RotaryEmbedding: Sendable {
    public enum Pairing: String, Sendable { case halves, adjacent }

    public let headSize: Int
    public let invFreq: [Float]          // (D/2)
    public let pairing: Pairing

    public init(headSize: Int, invFreq: [Float], pairing: Pairing) {
        precondition(headSize % 2 == 0 && invFreq.count == headSize / 2, "RoPE: \(invFreq.count) frequencies for head size \(headSize)")
        self.headSize = headSize
        self.invFreq = invFreq
        self.pairing = pairing
    }

    /// base^(−2i/D) for i in 0..<D/2.
    public static func frequencies(headSize: Int, base: Float) -> [Float] {
        (0..<(headSize / 2)).map { Float(1 / pow(Double(base), Double(2 * $0) / Double(headSize))) }
    }

    /// cos and sin of every angle for positions start..<start+T: (T, D/2) each.
    func table(start: Int, length: Int) -> (cos: [Float], sin: [Float]) { table(positions: Array(start..<(start + length))) }

    /// cos and sin of every angle for the given positions: (count, D/2) each.
    func table(positions: [Int]) -> (cos: [Float], sin: [Float]) {
        let half = headSize / 2, length = positions.count
        var c = [Float](repeating: 0, count: length * half), s = c
        for t in 0..<length {
            let p = Float(positions[t])
            for i in 0..<half {
                let angle = Double(p * invFreq[i])
                c[t * half + i] = Float(Foundation.cos(angle))
                s[t * half + i] = Float(Foundation.sin(angle))
            }
        }
        return (c, s)
    }
}

extension Tensor {
    /// Applies RoPE to x (B, T, H, D) for positions start..<start+T. Backward rotates the gradient
    /// back by the same angles (a rotation's inverse is its transpose).
    public func rope(_ r: RotaryEmbedding, start: Int = 0) -> Tensor {
        guard rank == 4, shape[3] == r.headSize else {
            fatalError(ShapeError(op: "rope", message: "input \(Shape.describe(shape)) is not (B, T, H, \(r.headSize))").description)
        }
        let (b, t, h, d) = (shape[0], shape[1], shape[2], shape[3])
        let (cosT, sinT) = r.table(start: start, length: t)
        let index = (0..<(b * t)).map { $0 % t }                  // row (b, t) uses table row t
        let out = Tensor(uninitialized: shape)
        Tensor.rotate(data, out.data, rows: b * t, tableRow: index, h: h, d: d, cosT, sinT, r.pairing, inverse: false)
        return Autograd.record(out, "rope", [self]) { g in
            let gx = Tensor(uninitialized: g.shape)
            Tensor.rotate(g.data, gx.data, rows: b * t, tableRow: index, h: h, d: d, cosT, sinT, r.pairing, inverse: true)
            return [gx]
        }
    }

    /// Applies RoPE to token rows x (N, H·D) whose row n sits at `positions[n]` (a ragged batch:
    /// each sequence's tokens at their own positions). Same rotation and backward as above.
    public func rope(_ r: RotaryEmbedding, positions: [Int]) -> Tensor {
        guard rank == 2, shape[0] == positions.count, shape[1] % r.headSize == 0 else {
            fatalError(ShapeError(op: "rope", message: "input \(Shape.describe(shape)) is not (\(positions.count), H·\(r.headSize))").description)
        }
        let (n, d) = (shape[0], r.headSize), h = shape[1] / d
        // One table row per distinct position when they form a short range (training: 0..<T
        // repeated per sequence), else one per token row.
        let lo = positions.min() ?? 0, hi = positions.max() ?? 0
        let (cosT, sinT, index): ([Float], [Float], [Int])
        if hi - lo < n {
            let t = r.table(start: lo, length: hi - lo + 1)
            (cosT, sinT, index) = (t.cos, t.sin, positions.map { $0 - lo })
        } else {
            let t = r.table(positions: positions)
            (cosT, sinT, index) = (t.cos, t.sin, Array(0..<n))
        }
        let out = Tensor(uninitialized: shape)
        Tensor.rotate(data, out.data, rows: n, tableRow: index, h: h, d: d, cosT, sinT, r.pairing, inverse: false)
        return Autograd.record(out, "rope", [self]) { g in
            let gx = Tensor(uninitialized: g.shape)
            Tensor.rotate(g.data, gx.data, rows: n, tableRow: index, h: h, d: d, cosT, sinT, r.pairing, inverse: true)
            return [gx]
        }
    }

    private static func rotate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows n: Int, tableRow: [Int], h: Int, d: Int,
                               _ cosT: [Float], _ sinT: [Float], _ pairing: RotaryEmbedding.Pairing, inverse: Bool) {
        let half = d / 2
        let sign: Float = inverse ? -1 : 1
        cosT.withUnsafeBufferPointer { cp in sinT.withUnsafeBufferPointer { sp in tableRow.withUnsafeBufferPointer { tr in
            let cp = cp.baseAddress!, sp = sp.baseAddress!, tr = tr.baseAddress!
            Parallel.forEachChunk(n, grain: max(1, 4096 / max(h * d, 1))) { rows in
                for row in rows {
                    let c = cp + tr[row] * half, s = sp + tr[row] * half
                    for head in 0..<h {
                        let xi = x + (row * h + head) * d, yi = y + (row * h + head) * d
                        for i in 0..<half {
                            let (ia, ib) = pairing == .halves ? (i, i + half) : (2 * i, 2 * i + 1)
                            let a = xi[ia], bb = xi[ib], sn = sign * s[i]
                            yi[ia] = a * c[i] - bb * sn
                            yi[ib] = a * sn + bb * c[i]
                        }
                    }
                }
            }
        } } }
    }
}
