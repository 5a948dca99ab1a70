import Foundation
import Models
import Tensors

/// GPTQ (Frantar et al., 2022): rounding a weight matrix W (rows, cols) so that the layer's
/// outputs on calibration inputs X change least, ‖WX − ŴX‖², instead of each weight on its own.
///
/// With H = 2XᵀX (cols, cols), the columns are rounded one after another; the error of column j,
/// divided by [H⁻¹]jj, is fed into the columns not yet rounded through row j of H⁻¹ (its upper
/// Cholesky factor U, H⁻¹ = UᵀU): W[:, k] −= err · U[j, k]. The updates within a block of 128
/// columns are applied at once, those to later columns afterwards with one matrix product.
/// H is dampened first (λ = 1 % of its mean diagonal) so that it is invertible; a column no input
/// ever reached (Hjj = 0) is set to zero.
///
/// The result must be valid ggml blocks: when column j starts a block of the type (32 or 256
/// values), each row's block scales (and sub-block scales and mins) are chosen by the type's own
/// round-to-nearest quantizer on the current, error-updated weights; the values of that block are
/// then put on that grid column by column. So GPTQ decides the levels, ggml's rules the scales.
public enum GPTQ {
    /// `hessian`: XᵀX summed over `samples` input rows (cols × cols, symmetric).
    public static func quantize(_ weight: Tensor, hessian: [Double], samples: Int, as type: GGMLType,
                                damping: Double = 0.01, blockColumns: Int = 128) throws -> QuantizedMatrix {
        let (rows, cols) = (weight.shape[0], weight.shape[1])
        precondition(hessian.count == cols * cols, "GPTQ: the Hessian is \(hessian.count) values for \(cols) columns")
        precondition(type.blockSize > 1 && cols % type.blockSize == 0, "GPTQ: \(type.name) blocks do not fit \(cols) columns")
        var w = weight.scalars                                   // (rows, cols), updated in place
        var h = hessian.map { $0 * 2 / Double(max(samples, 1)) }
        for j in 0..<cols where h[j * cols + j] == 0 {
            h[j * cols + j] = 1
            for r in 0..<rows { w[r * cols + j] = 0 }
        }
        var mean = 0.0
        for j in 0..<cols { mean += h[j * cols + j] }
        let lambda = damping * mean / Double(cols)
        for j in 0..<cols { h[j * cols + j] += lambda }
        // H⁻¹ = UᵀU, U upper (cols, cols); if rounding left H not quite positive definite, more damping.
        var factor = BLAS.inverseCholeskyUpper(h, cols)
        var extra = max(lambda, 1e-8)
        for _ in 0..<8 where factor == nil {
            for j in 0..<cols { h[j * cols + j] += extra }
            extra *= 10
            factor = BLAS.inverseCholeskyUpper(h, cols)
        }
        guard let factor else {
            throw ModelError.weights("GPTQ: the Hessian of a (\(rows), \(cols)) weight is not positive definite even after damping (are the calibration activations finite?)")
        }
        let u = factor.map { Float($0) }

        let step = max(blockColumns, type.blockSize) / type.blockSize * type.blockSize
        let typeBlock = type.blockSize, blockBytes = type.blockBytes, rowBytes = type.byteCount(cols)
        return QuantizedMatrix.filled(type, rows: rows, cols: cols) { out in
            w.withUnsafeMutableBufferPointer { wp in
                let w = wp.baseAddress!
                let errors = UnsafeMutablePointer<Float>.allocate(capacity: rows * step)
                defer { errors.deallocate() }
                var c0 = 0
                while c0 < cols {
                    let c1 = min(c0 + step, cols), width = c1 - c0
                    Parallel.forEachChunk(rows, grain: 8) { rs in
                        for r in rs {
                            let row = w + r * cols, blocks = out + r * rowBytes, e = errors + r * step
                            for j in c0..<c1 {
                                let block = blocks + (j / typeBlock) * blockBytes
                                if j % typeBlock == 0 { quantizeRows(type, row + j, block, rows: 1, cols: typeBlock) }
                                let grid = type.grid(UnsafeRawPointer(block), j % typeBlock)
                                let q = grid.level(row[j])
                                type.setLevel(block, j % typeBlock, q)
                                let err = (row[j] - grid.value(q)) / u[j * cols + j]
                                e[j - c0] = err
                                for k in (j + 1)..<c1 { row[k] -= err * u[j * cols + k] }
                            }
                        }
                    }
                    // The later columns: W[:, c1…] −= E (rows, width) · U[c0..<c1, c1…].
                    if c1 < cols {
                        u.withUnsafeBufferPointer { up in
                            BLAS.sgemm(transposeA: false, transposeB: false, m: rows, n: cols - c1, k: width, alpha: -1,
                                       errors, lda: step, up.baseAddress! + c0 * cols + c1, ldb: cols, beta: 1, w + c1, ldc: cols)
                        }
                    }
                    c0 = c1
                }
            }
        }
    }
}
