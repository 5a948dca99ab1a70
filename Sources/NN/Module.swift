import Tensors

/// A layer or model: holds parameters and sub-modules under stable dotted names.
///
/// Names come from the stored properties, found by reflection: a `Tensor` property `weight` is the
/// parameter `weight`; a `Module` property `attn` contributes `attn.<its names>`; an array of
/// modules `blocks` contributes `blocks.0.…`, `blocks.1.…`. The names are the keys that checkpoints
/// use, so loading is a lookup and an optimizer walks the same list. Sub-modules are ordinary `var`
/// properties, so one can be swapped for another (an adapter around a frozen `Linear`, say).
/// A parameter is frozen by setting its `requiresGrad` to false. A tensor the module computes
/// with but does not learn (RoPE's frequencies, a mask) is held in a `Buffer`: it is listed by
/// `namedBuffers()`, and neither optimizers nor strict loading see it.
open class Module {
    /// Train mode (dropout active) or eval mode.
    public private(set) var training = true

    public init() {}

    /// All parameters with their dotted names, in declaration order.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        visit(prefix: "") { name, value in
            if let t = value as? Tensor { out.append((name, t)) }
        }
        return out
    }

    /// Buffers (non-learned tensors) with their dotted names.
    public func namedBuffers() -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        visit(prefix: "") { name, value in
            if let b = value as? Buffer { out.append((name, b.tensor)) }
        }
        return out
    }

    /// Direct and nested sub-modules with their dotted names (self is "").
    public func namedModules() -> [(name: String, module: Module)] {
        var out: [(String, Module)] = [("", self)]
        visit(prefix: "") { name, value in
            if let m = value as? Module { out.append((name, m)) }
        }
        return out
    }

    public var parameters: [Tensor] { namedParameters().map(\.tensor) }

    /// Parameters that will receive gradients (not frozen).
    public var trainableParameters: [Tensor] { parameters.filter(\.requiresGrad) }

    /// Number of scalars in all parameters (a tensor shared under two names counts once).
    public var parameterCount: Int {
        var seen = Set<ObjectIdentifier>()
        return parameters.filter { seen.insert(ObjectIdentifier($0)).inserted }.reduce(0) { $0 + $1.count }
    }

    /// Switches this module and every sub-module to train (true) or eval (false) mode.
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.training = on }
    }

    public func eval() { train(false) }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// Freezes (or unfreezes) every parameter.
    public func freeze(_ frozen: Bool = true) { for p in parameters { p.requiresGrad = !frozen } }

    /// Copies values into the parameters by name. Strict: every parameter must be given, no extra
    /// names, every shape must match; all problems are reported together in one error.
    public func load(_ values: [String: Tensor]) throws(LoadError) {
        let params = namedParameters()
        var problems: [String] = []
        let known = Set(params.map(\.name))
        let missing = params.map(\.name).filter { values[$0] == nil }
        let unexpected = values.keys.filter { !known.contains($0) }.sorted()
        if !missing.isEmpty { problems.append("missing: " + missing.joined(separator: ", ")) }
        if !unexpected.isEmpty { problems.append("unexpected: " + unexpected.joined(separator: ", ")) }
        for (name, t) in params {
            if let v = values[name], v.shape != t.shape {
                problems.append("\(name): expected \(Shape.describe(t.shape)), got \(Shape.describe(v.shape))")
            }
        }
        guard problems.isEmpty else { throw LoadError(problems: problems) }
        for (name, t) in params { t.assign(values[name]!) }
    }

    /// Walks stored properties (including those of superclasses), depth first.
    private func visit(prefix: String, _ body: (String, Any) -> Void) {
        var mirror: Mirror? = Mirror(reflecting: self)
        var seen = Set<String>()
        while let m = mirror {
            for child in m.children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }       // property-wrapper storage
                guard seen.insert(label).inserted, label != "training" else { continue }
                Module.visitValue(child.value, name: prefix + label, body)
            }
            mirror = m.superclassMirror
        }
    }

    private static func visitValue(_ value: Any, name: String, _ body: (String, Any) -> Void) {
        switch value {
        case let t as Tensor:
            body(name, t)
        case let b as Buffer:
            body(name, b)
        case let m as Module:
            body(name, m)
            m.visit(prefix: name + ".", body)
        case let list as [Module]:
            for (i, m) in list.enumerated() { visitValue(m, name: "\(name).\(i)", body) }
        case let list as [Tensor]:
            for (i, t) in list.enumerated() { body("\(name).\(i)", t) }
        default:
            // Optionals: unwrap one level.
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let inner = mirror.children.first?.value {
                visitValue(inner, name: name, body)
            }
        }
    }
}

/// A strict load failed: every missing, unexpected and mis-shaped name, in one message.
public struct LoadError: Error, CustomStringConvertible {
    public let problems: [String]
    public var description: String { "cannot load parameters: " + problems.joined(separator: "; ") }
}

/// A tensor a module computes with but does not learn: never a parameter, never loaded strictly.
public final class Buffer {
    public var tensor: Tensor
    public init(_ tensor: Tensor) { self.tensor = tensor }
}
