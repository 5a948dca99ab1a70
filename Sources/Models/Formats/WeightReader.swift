import NN
import Tensors

/// Reads a checkpoint's tensors by name for a loader, strictly: every missing and mis-shaped
/// tensor is noted (a zero placeholder stands in so the model can still be assembled), and
/// `finish` throws one error listing them all, with the tensors nobody asked for.
struct WeightReader {
    let file: Safetensors.File
    private(set) var used = Set<String>()
    private(set) var problems: [String] = []

    init(_ file: Safetensors.File) { self.file = file }

    /// The tensor `name` of shape `shape`, trainable. `aliases` are other names it may be stored under.
    mutating func tensor(_ name: String, _ shape: [Int], aliases: [String] = []) throws(ModelError) -> Tensor {
        guard let key = ([name] + aliases).first(where: { file.entries[$0] != nil }) else {
            problems.append("missing: \(name)")
            return Tensor.zeros(shape, requiresGrad: true)
        }
        used.insert(key)
        let t = try file.tensor(key)
        guard t.shape == shape else {
            problems.append("\(name): expected \(Shape.describe(shape)), got \(Shape.describe(t.shape))")
            return Tensor.zeros(shape, requiresGrad: true)
        }
        t.requiresGrad = true
        return t
    }

    /// Marks names as accounted for without reading them (buffers, a saved copy of a tied matrix).
    mutating func allow(where accept: (String) -> Bool) {
        for name in file.entries.keys where accept(name) { used.insert(name) }
    }

    /// Throws the collected problems, unexpected tensors included, as one error.
    func finish(_ what: String) throws(ModelError) {
        let unexpected = file.entries.keys.filter { !used.contains($0) }.sorted().map { "unexpected: \($0)" }
        let all = problems + unexpected
        if !all.isEmpty { throw .weights("\(what): " + all.joined(separator: "; ")) }
    }
}

extension WeightReader {
    /// Every layer of `spec` from a Hugging Face checkpoint: "model.layers.N." + `names[role]`,
    /// float `Linear` projections and RMSNorms whose stored weight `normScale` turns into their
    /// scale (Gemma stores w for a scale of 1 + w).
    mutating func huggingFaceLayers(_ spec: DecoderConfig, names: [DecoderWeight: String], rng: RandomGenerator,
                                    normScale: (Tensor) -> Tensor = { $0 }) throws(ModelError) -> [DecoderLayer] {
        var layers: [DecoderLayer] = []
        for i in 0..<spec.layers {
            let p = "model.layers.\(i)."
            layers.append(try DecoderLayer(spec, index: i, rng: rng,
                linear: { w, rows, cols throws(ModelError) in Linear(weight: try tensor(p + names[w]!, [rows, cols])) },
                norm: { w, size throws(ModelError) in RMSNorm(weight: normScale(try tensor(p + names[w]!, [size])), eps: spec.normEpsilon) }))
        }
        return layers
    }
}
