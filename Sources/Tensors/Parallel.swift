import CSIMD
import Dispatch
import Foundation
import Synchronization

/// One thread setting for our kernels and BLAS alike (`--threads`; default: all cores).
///
/// Work runs on our own small pool (see `ThreadPool`): BLAS stays single-threaded and large
/// products are split by `BLAS.sgemm` into blocks for the pool, so no second set of threads ever
/// competes for the cores.
public enum Parallel {
    public nonisolated(unsafe) private(set) static var threads: Int = {
        BLAS.singleThreaded
        return ProcessInfo.processInfo.activeProcessorCount
    }()

    nonisolated(unsafe) static var pool = ThreadPool(threads: threads)

    /// Sets the number of threads (1 = everything on the calling thread).
    public static func setThreads(_ n: Int) {
        let n = max(1, n)
        if n != pool.threads {
            pool.shutdown()              // its workers finish and exit; the pool is freed after them
            pool = ThreadPool(threads: n)
        }
        threads = n
    }

    /// Runs `body(i)` for i in 0..<n on the pool: the caller takes a share, each worker one.
    @inline(__always)
    public static func run(_ n: Int, _ body: (Int) -> Void) {
        if n == 1 { body(0); return }
        pool.run(n, body)
    }

    /// Splits `0..<n` into at most `threads` contiguous chunks of at least `grain` items each and
    /// runs `body` on them concurrently (or inline when one chunk is enough).
    @inline(__always)
    public static func forEachChunk(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, n / max(grain, 1)))
        if chunks <= 1 { if n > 0 { body(0..<n) }; return }
        run(chunks) { c in body((c * n / chunks)..<((c + 1) * n / chunks)) }
    }

    /// Like `forEachChunk`, but `0..<n` is cut into several pieces per thread (at least `grain`
    /// items each, multiples of 4 apart from the last) that the threads claim in order as they
    /// finish their previous one, so a thread that runs late or slow takes fewer and none waits
    /// long for the other at the end. Which thread computes a piece never changes what it computes.
    @inline(__always)
    public static func forEachChunkDynamic(_ n: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let threads = threads
        if threads <= 1 || n < 2 * max(grain, 1) { if n > 0 { body(0..<n) }; return }
        let pieces = min(threads * 8, n / max(grain, 1))
        let size = ((n + pieces - 1) / pieces + 3) & ~3
        let count = (n + size - 1) / size
        let next = Atomic<Int>(0)
        run(threads) { _ in
            while true {
                let c = next.add(1, ordering: .relaxed).oldValue
                if c >= count { break }
                body((c * size)..<min(n, (c + 1) * size))
            }
        }
    }
}

/// A fork-join pool of `threads − 1` workers plus the calling thread, in the manner of an OpenMP
/// static schedule: task i of a job goes to participant i mod threads. Workers spin briefly between
/// jobs (kernels follow each other within microseconds), then sleep on a semaphore.
/// A job submitted while another is running (a nested call, or a second thread) runs inline.
final class ThreadPool: @unchecked Sendable {
    let threads: Int
    private let busy = Atomic<Bool>(false)
    private let generation = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let workers: [Worker]
    private nonisolated(unsafe) var job: ((Int) -> Void)?
    private nonisolated(unsafe) var jobCount = 0

    init(threads: Int) {
        self.threads = threads
        workers = (0..<max(threads - 1, 0)).map { _ in Worker() }
        for w in workers.indices {
            let thread = Thread { self.workerLoop(w) }     // workers keep the pool alive until shutdown()
            thread.name = "llm-worker-\(w + 1)"
            thread.stackSize = 1 << 22
            thread.start()
        }
    }

    func run(_ n: Int, _ body: (Int) -> Void) {
        guard threads > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<n { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            jobCount = n
            let gen = generation.add(1, ordering: .releasing).newValue
            for worker in workers where worker.sleeping.exchange(false, ordering: .acquiringAndReleasing) {
                worker.wake.signal()
            }
            var i = 0
            while i < n { body(i); i += threads }
            for worker in workers {
                while worker.finished.load(ordering: .acquiring) != gen { spinPause() }
            }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Ends the workers (after any job in flight); the pool must not be used afterwards.
    func shutdown() {
        while !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { spinPause() }
        stopping.store(true, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        for worker in workers where worker.sleeping.exchange(false, ordering: .acquiringAndReleasing) {
            worker.wake.signal()
        }
    }

    private func workerLoop(_ w: Int) {
        let me = workers[w]
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < 200_000 { spinPause(); continue }
                // Sleep until the next job; re-check after announcing, so no wake-up is missed.
                me.sleeping.store(true, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) != seen {
                    if !me.sleeping.exchange(false, ordering: .acquiringAndReleasing) { me.wake.wait() }
                    break
                }
                me.wake.wait()
                spins = 0
            }
            seen = generation.load(ordering: .acquiring)
            if stopping.load(ordering: .acquiring) { return }
            if let job {
                var i = w + 1
                while i < jobCount { job(i); i += threads }
            }
            me.finished.store(seen, ordering: .releasing)
        }
    }

    /// One worker's handshake with the caller.
    private final class Worker: Sendable {
        let finished = Atomic<Int>(0)        // last generation completed
        let sleeping = Atomic<Bool>(false)
        let wake = DispatchSemaphore(value: 0)
    }
}

/// A moment's pause in a spin-wait (the CPU's pause instruction: see llm_spin_pause in CSIMD/shim.h).
@inline(__always) private func spinPause() { llm_spin_pause() }
