import Tensors

/// Parameters that share optimizer settings (e.g. weight decay on matrices, none on biases).
public struct ParameterGroup {
    public var parameters: [Tensor]
    public var weightDecay: Float

    public init(_ parameters: [Tensor], weightDecay: Float = 0) {
        self.parameters = parameters
        self.weightDecay = weightDecay
    }

    /// The usual split: decay on parameters of rank ≥ 2 (matrices, embeddings), none on biases
    /// and norm gains. Frozen parameters are left out; `exclude` removes more by name.
    public static func decayMatrices(of module: Module, weightDecay: Float,
                                     exclude: (String) -> Bool = { _ in false }) -> [ParameterGroup] {
        let params = module.namedParameters().filter { $0.tensor.requiresGrad }
        var seen = Set<ObjectIdentifier>()
        let unique = params.filter { seen.insert(ObjectIdentifier($0.tensor)).inserted }
        let decay = unique.filter { $0.tensor.rank >= 2 && !exclude($0.name) }.map(\.tensor)
        let decaySet = Set(decay.map(ObjectIdentifier.init))
        let rest = unique.map(\.tensor).filter { !decaySet.contains(ObjectIdentifier($0)) }
        return [ParameterGroup(decay, weightDecay: weightDecay), ParameterGroup(rest, weightDecay: 0)]
    }
}

public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    /// Updates every parameter that has a gradient.
    func step()
    var groups: [ParameterGroup] { get }
}

extension Optimizer {
    public func zeroGrad() { for g in groups { for p in g.parameters { p.zeroGrad() } } }
}
