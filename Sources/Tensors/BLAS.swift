#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// The only door to BLAS: OpenBLAS on Linux, Accelerate on Apple systems.
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, row-major. op(A) is (m, k), op(B) is (k, n), C is (m, n).
    /// `lda`, `ldb`, `ldc` are the row lengths of A, B, C as stored (defaults: packed).
    @inline(__always)
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int? = nil,
        _ b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        guard m > 0 && n > 0 else { return }
        if k == 0 {  // BLAS leaves C untouched for k = 0 only when beta = 1
            if beta == 0 { c.update(repeating: 0, count: m * (ldc ?? n)) }
            return
        }
        let lda = lda ?? (transposeA ? m : k)
        let ldb = ldb ?? (transposeB ? k : n)
        let ldc = ldc ?? n
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    static func setThreads(_ n: Int) {
        #if !canImport(Accelerate)
        openblas_set_num_threads(Int32(n))
        #endif
    }
}
