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
    func table(start: Int, length: Int) -> (cos: [Float], sin: [Float]) {
        let half = headSize / 2
        var c = [Float](repeating: 0, count: length * half), s = c
        for t in 0..<length {
            let p = Float(start + t)
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
        let out = Tensor(uninitialized: shape)
        Tensor.rotate(data, out.data, b: b, t: t, h: h, d: d, cosT, sinT, r.pairing, inverse: false)
        return Autograd.record(out, "rope", [self]) { g in
            let gx = Tensor(uninitialized: g.shape)
            Tensor.rotate(g.data, gx.data, b: b, t: t, h: h, d: d, cosT, sinT, r.pairing, inverse: true)
            return [gx]
        }
    }

    private static func rotate(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, b: Int, t: Int, h: Int, d: Int,
                               _ cosT: [Float], _ sinT: [Float], _ pairing: RotaryEmbedding.Pairing, inverse: Bool) {
        let half = d / 2
        let sign: Float = inverse ? -1 : 1
        cosT.withUnsafeBufferPointer { cp in sinT.withUnsafeBufferPointer { sp in
            let cp = cp.baseAddress!, sp = sp.baseAddress!
            Parallel.forEachChunk(b * t, grain: max(1, 4096 / max(h * d, 1))) { rows in
                for row in rows {
                    let pos = row % t
                    let c = cp + pos * half, s = sp + pos * half
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
        } }
    }
}
