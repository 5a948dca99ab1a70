#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
import Foundation
#endif

/// The only door to BLAS: OpenBLAS on Linux, Accelerate on Apple systems.
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, row-major. op(A) is (m, k), op(B) is (k, n), C is (m, n).
    /// `lda`, `ldb`, `ldc` are the row lengths of A, B, C as stored (defaults: packed).
    ///
    /// Threads are ours, not BLAS's: BLAS runs single-threaded and large products are split into
    /// row (or column) blocks of C computed concurrently. One pool then serves BLAS and our kernels,
    /// instead of BLAS's idle threads spinning on the core our next kernel needs.
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int? = nil,
        _ b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        guard m > 0 && n > 0 else { return }
        _ = singleThreaded
        let lda = lda ?? (transposeA ? m : k)
        let ldb = ldb ?? (transposeB ? k : n)
        let ldc = ldc ?? n
        if k == 0 {  // C = beta · C
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let work = m * n * k
        let chunks = work < 1 << 21 ? 1 : Parallel.threads
        if chunks <= 1 {
            call(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else if m >= n {
            // Split the rows of C (and of op(A)).
            Parallel.run(chunks) { i in
                let r0 = i * m / chunks, r1 = (i + 1) * m / chunks
                guard r1 > r0 else { return }
                call(transposeA, transposeB, r1 - r0, n, k, alpha, a + (transposeA ? r0 : r0 * lda), lda,
                     b, ldb, beta, c + r0 * ldc, ldc)
            }
        } else {
            // Split the columns of C (and of op(B)).
            Parallel.run(chunks) { i in
                let c0 = i * n / chunks, c1 = (i + 1) * n / chunks
                guard c1 > c0 else { return }
                call(transposeA, transposeB, m, c1 - c0, k, alpha, a, lda,
                     b + (transposeB ? c0 * ldb : c0), ldb, beta, c + c0, ldc)
            }
        }
    }

    @inline(__always)
    private static func call(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// BLAS itself stays on one thread (see `sgemm`); called once at start-up, after choosing
    /// OpenBLAS's kernels (`kernels`).
    static let singleThreaded: Void = {
        #if !canImport(Accelerate)
        _ = kernels
        openblas_set_num_threads(1)
        #endif
    }()

    /// The kernel family OpenBLAS runs ("SkylakeX", "Haswell", "Zen", ...); nil with Accelerate.
    public static var kernelName: String? {
        #if canImport(Accelerate)
        return nil
        #else
        _ = singleThreaded
        return openblas_get_corename().map { String(cString: $0) }
        #endif
    }

    #if !canImport(Accelerate)
    /// OpenBLAS built for many CPUs picks its kernels from the CPU's model number when it loads.
    /// A CPU it does not know (a newer model, or a VM that hides the model) gets its most generic
    /// x86-64 kernels, "Prescott": SSE3 only, 3–5x slower at sgemm on a machine with AVX-512. Then,
    /// unless the user chose with OPENBLAS_CORETYPE, we choose from the CPU's feature flags
    /// (AVX-512 F/BW/DQ/VL: SkylakeX; AVX2 + FMA: Haswell) and let OpenBLAS select again through
    /// its dynamic-arch entry points, looked up at run time (builds for one CPU have none).
    static let kernels: Void = {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              let name = openblas_get_corename().map({ String(cString: $0) }), name.lowercased() == "prescott",
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let choice: String
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { choice = "SkylakeX" }
        else if ["avx2", "fma"].allSatisfy(flags.contains) { choice = "Haswell" }
        else { return }
        guard let quit = dlsym(nil, "gotoblas_dynamic_quit"),          // nil: RTLD_DEFAULT on glibc
              let initialize = dlsym(nil, "gotoblas_dynamic_init") else { return }
        typealias Entry = @convention(c) () -> Void
        setenv("OPENBLAS_CORETYPE", choice, 1)
        unsafeBitCast(quit, to: Entry.self)()
        unsafeBitCast(initialize, to: Entry.self)()
        unsetenv("OPENBLAS_CORETYPE")
    }()
    #endif
}


extension BLAS {
    /// For a symmetric positive definite A (n, n, row-major, Double): the upper triangular U with
    /// A⁻¹ = UᵀU, through LAPACK (dpotrf, dpotri, dpotrf). Nil when A is not positive definite.
    /// (Row-major A read as column-major is A itself; LAPACK's column-major lower factor L of a
    /// matrix, read row-major, is Lᵀ — the upper factor wanted here.)
    public static func inverseCholeskyUpper(_ a: [Double], _ n: Int) -> [Double]? {
        var m = a
        var size = Int32(n), lda = Int32(max(n, 1)), info: Int32 = 0
        var lower: CChar = 76   // "L"
        potrf(&lower, &size, &m, &lda, &info)
        guard info == 0 else { return nil }
        potri(&lower, &size, &m, &lda, &info)
        guard info == 0 else { return nil }
        // The inverse is in the row-major upper triangle; mirror it.
        for i in 0..<n { for j in 0..<i { m[i * n + j] = m[j * n + i] } }
        potrf(&lower, &size, &m, &lda, &info)
        guard info == 0 else { return nil }
        for i in 0..<n { for j in 0..<i { m[i * n + j] = 0 } }
        return m
    }

    private static func potrf(_ uplo: UnsafeMutablePointer<CChar>, _ n: UnsafeMutablePointer<Int32>, _ a: UnsafeMutablePointer<Double>,
                              _ lda: UnsafeMutablePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) {
        dpotrf_(uplo, n, a, lda, info)
    }

    private static func potri(_ uplo: UnsafeMutablePointer<CChar>, _ n: UnsafeMutablePointer<Int32>, _ a: UnsafeMutablePointer<Double>,
                              _ lda: UnsafeMutablePointer<Int32>, _ info: UnsafeMutablePointer<Int32>) {
        dpotri_(uplo, n, a, lda, info)
    }
}
