import Foundation

/// Learning rate as a function of the step (0-based).
public protocol LRSchedule {
    func learningRate(at step: Int) -> Float
}

public struct ConstantLR: LRSchedule {
    public let value: Float
    public init(_ value: Float) { self.value = value }
    public func learningRate(at step: Int) -> Float { value }
}

/// Linear warmup to `maxLR` over `warmupSteps`, then cosine decay to `minLR` at `decaySteps`,
/// then `minLR` (the schedule nanoGPT trains GPT-2 with).
public struct WarmupCosineLR: LRSchedule {
    public let maxLR: Float, minLR: Float
    public let warmupSteps: Int, decaySteps: Int

    public init(maxLR: Float, minLR: Float, warmupSteps: Int, decaySteps: Int) {
        self.maxLR = maxLR; self.minLR = minLR
        self.warmupSteps = warmupSteps; self.decaySteps = max(decaySteps, warmupSteps)
    }

    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return maxLR * Float(step + 1) / Float(warmupSteps + 1) }
        if step >= decaySteps { return minLR }
        let ratio = Double(step - warmupSteps) / Double(max(decaySteps - warmupSteps, 1))
        let coef = 0.5 * (1 + cos(Double.pi * ratio))
        return minLR + Float(coef) * (maxLR - minLR)
    }
}
