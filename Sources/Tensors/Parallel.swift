import Dispatch
import Foundation

/// One thread setting for our kernels and BLAS alike (`--threads`; default: all cores).
public enum Parallel {
    public nonisolated(unsafe) private(set) static var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public static func setThreads(_ n: Int) {
        threads = max(1, n)
        BLAS.setThreads(threads)
    }

    /// Splits `0..<n` into at most `threads` contiguous chunks of at least `grain` items each and
    /// runs `body` on them concurrently (or inline when one chunk is enough).
    @inline(__always)
    public static func forEachChunk(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, n / max(grain, 1)))
        if chunks <= 1 { if n > 0 { body(0..<n) }; return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body((c * n / chunks)..<((c + 1) * n / chunks))
        }
    }
}
