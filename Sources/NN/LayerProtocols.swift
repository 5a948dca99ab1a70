import Tensors

/// What a projection is to the model around it: (..., in) → (..., out). A float `Linear`, a
/// `QuantizedLinear` reading GGUF blocks, and (later) an adapter wrapped around either all fit
/// the same property, so a model can swap one for another without knowing which it holds.
public protocol LinearLayer: Module {
    var inFeatures: Int { get }
    var outFeatures: Int { get }
    func callAsFunction(_ x: Tensor) -> Tensor
    /// The gradient reaching the input when the weights are held fixed: g (..., out) → g·W
    /// (..., in). An adapter around this layer asks for it in its own backward.
    func inputGradient(_ g: Tensor) -> Tensor
}

extension Linear: LinearLayer {
    public func inputGradient(_ g: Tensor) -> Tensor { withNoGrad { matmul(g.reshaped(-1, outFeatures), weight).reshaped(Array(g.shape.dropLast()) + [inFeatures]) } }
}

/// A normalization over the last axis: (..., dim) → (..., dim). LayerNorm and RMSNorm fill the same
/// slots, so a decoder's norm kind is a choice made when it is built.
public protocol NormLayer: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}

extension LayerNorm: NormLayer {}
extension RMSNorm: NormLayer {}

/// A token table: ids → vectors, and its transpose as a tied output head (x · Eᵀ → logits).
public protocol TokenEmbedding: Module {
    var vocabularySize: Int { get }
    var dimension: Int { get }
    func callAsFunction(_ ids: [Int32], shape: [Int]?) -> Tensor
    /// x (..., dim) → (..., vocabulary): the same table used as the output projection.
    func project(_ x: Tensor) -> Tensor
}

extension Embedding: TokenEmbedding {
    public var vocabularySize: Int { weight.shape[0] }
    public var dimension: Int { weight.shape[1] }
    public func project(_ x: Tensor) -> Tensor { linear(x, weight) }
}

/// A frozen linear layer whose weight stays in its quantized blocks (Q8_0, Q4_0, Q4_1, F16, BF16).
/// No parameters to train; gradients still flow to the input.
///
/// With `roundActivations` (the default), inputs are first rounded to the format ggml's CPU path
/// would convert them to (8-bit blocks for Q4_0/Q4_1/Q8_0 weights, F16 for F16 weights), so the
/// products equal llama.cpp's up to float rounding order.
public final class QuantizedLinear: Module, LinearLayer {
    public let weight: QuantizedMatrix      // (out, in)
    public let bias: Tensor?
    public var roundActivations: Bool

    public init(_ weight: QuantizedMatrix, bias: Tensor? = nil, roundActivations: Bool = true) {
        self.weight = weight
        self.bias = bias
        self.roundActivations = roundActivations
    }

    public var inFeatures: Int { weight.cols }
    public var outFeatures: Int { weight.rows }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = roundActivations ? linearGGML(x, weight) : linear(x, weight)
        return bias.map { y + $0 } ?? y
    }

    /// Rounding the activations passes gradients straight through, so this is g·W either way.
    public func inputGradient(_ g: Tensor) -> Tensor { linearInputGradient(g, weight) }
}

/// A frozen token table kept quantized: a lookup dequantizes just the rows it needs.
public final class QuantizedEmbedding: Module, TokenEmbedding {
    public let weight: QuantizedMatrix      // (vocabulary, dim)
    public var roundActivations: Bool

    public init(_ weight: QuantizedMatrix, roundActivations: Bool = true) {
        self.weight = weight
        self.roundActivations = roundActivations
    }

    public var vocabularySize: Int { weight.rows }
    public var dimension: Int { weight.cols }

    public func callAsFunction(_ ids: [Int32], shape: [Int]? = nil) -> Tensor {
        let out = Tensor.zeros((shape ?? [ids.count]) + [weight.cols])
        for (i, id) in ids.enumerated() {
            precondition(id >= 0 && Int(id) < weight.rows, "embedding: id \(id) outside the vocabulary of \(weight.rows)")
            weight.dequantizeRow(Int(id), into: out.data + i * weight.cols)
        }
        return out
    }

    public func project(_ x: Tensor) -> Tensor { roundActivations ? linearGGML(x, weight) : linear(x, weight) }
}
