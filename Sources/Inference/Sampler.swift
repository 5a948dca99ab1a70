import Foundation
import Tensors

/// Picks the next token from a row of logits: greedy (temperature 0), or temperature-scaled
/// sampling restricted to the top k and/or the smallest set whose probability reaches top-p.
/// It owns a seeded generator that advances with every draw: a fresh sampler with the same seed
/// makes the same choices again.
public struct Sampler {
    public var temperature: Float
    public var topK: Int?
    public var topP: Float?
    public let rng: RandomGenerator

    public init(temperature: Float = 1, topK: Int? = nil, topP: Float? = nil, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        rng = RandomGenerator(seed: seed)
    }

    public static var greedy: Sampler { Sampler(temperature: 0) }

    /// The chosen id for one row of logits (V floats).
    public func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        if temperature <= 0 || topK == 1 { return Int32(argmax(logits)) }
        // Candidates: (id, logit / T), best first (ties: lower id first), cut to top-k.
        var candidates: [(id: Int, z: Float)]
        if let k = topK, k > 0, k < logits.count {
            candidates = Sampler.best(k, of: logits).map { (id: $0, z: logits[$0] / temperature) }
        } else {
            candidates = logits.enumerated().map { (id: $0.offset, z: $0.element / temperature) }
            candidates.sort { $0.z != $1.z ? $0.z > $1.z : $0.id < $1.id }
        }
        // Softmax over the candidates (in Double), then the nucleus.
        let m = Double(candidates[0].z)
        var probs = candidates.map { Foundation.exp(Double($0.z) - m) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        var keep = probs.count
        if let p = topP, p < 1 {
            var cumulative = 0.0
            for (i, q) in probs.enumerated() {
                cumulative += q
                if cumulative >= Double(p) { keep = i + 1; break }
            }
        }
        let mass = probs[..<keep].reduce(0, +)
        var u = rng.uniformDouble() * mass
        for i in 0..<keep {
            u -= probs[i]
            if u < 0 { return Int32(candidates[i].id) }
        }
        return Int32(candidates[keep - 1].id)
    }
}

extension Sampler {
    /// The ids of the k largest logits, best first (ties: lower id first), in one pass: a sorted
    /// list of the best k so far, which most logits fail to enter (a 49,152-token vocabulary is
    /// not sorted for every token).
    public static func best(_ k: Int, of logits: UnsafeBufferPointer<Float>) -> [Int] {
        var ids: [Int] = [], values: [Float] = []
        ids.reserveCapacity(k + 1); values.reserveCapacity(k + 1)
        for (i, v) in logits.enumerated() {
            if ids.count == k && v <= values[k - 1] { continue }      // not better than the k-th (ties keep the lower id)
            var at = values.count
            while at > 0 && values[at - 1] < v { at -= 1 }
            values.insert(v, at: at); ids.insert(i, at: at)
            if ids.count > k { values.removeLast(); ids.removeLast() }
        }
        return ids
    }
}


