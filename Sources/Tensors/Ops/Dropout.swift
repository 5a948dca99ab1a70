/// Dropout: zeroes each element with probability p and scales the rest by 1/(1 − p), so the
/// expected value is unchanged. The mask comes from our seeded generator (same seed, same mask).
/// x (any shape) → out (same shape); backward multiplies by the same mask.
extension Tensor {
    public func dropout(_ p: Float, rng: RandomGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout: p = \(p) outside [0, 1)")
        if p == 0 { return self }
        let keep = 1 / (1 - p)
        let mask = Tensor(uninitialized: shape)
        for i in 0..<count { mask.data[i] = rng.uniform() < p ? 0 : keep }
        let out = broadcastBinary(self, mask, op: "dropout") { $0 * $1 }
        return Autograd.record(out, "dropout", [self]) { g in [g * mask] }
    }
}
