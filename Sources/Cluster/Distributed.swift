import CMPI
import Foundation

/// Processes that train together (data parallelism over MPI): the one place that calls MPI, so
/// nothing else depends on how it is spelled. A process started without `mpirun` is rank 0 of 1
/// and every collective is a no-op; a build without MPI (no `mpi.h`: Apple systems, machines
/// without libopenmpi-dev) behaves the same and refuses to run under `mpirun`.
///
/// Every collective is called by every rank in the same order (MPI's rule); a failed MPI call
/// aborts the whole job, so no rank waits forever on one that is gone.
public enum Distributed {
    public private(set) static var rank = 0
    public private(set) static var size = 1
    private static var started = false

    /// Rank 0 writes checkpoints, logs and plots and prints progress.
    public static var isMain: Bool { rank == 0 }
    public static var isParallel: Bool { size > 1 }
    /// Whether this binary can run under mpirun (it was built with MPI).
    public static var compiled: Bool { llm_mpi_compiled() != 0 }

    /// Whether an MPI launcher started this process (Open MPI, MPICH/Hydra, PMIx).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].contains { env[$0] != nil }
    }

    /// Joins the job when an MPI launcher started this process; otherwise does nothing.
    public static func start() throws {
        guard launchedByMPI, !started else { return }
        guard compiled else {
            throw DistributedError("started by mpirun, but this llm was built without MPI: install libopenmpi-dev (bash scripts/setup.sh) and rebuild")
        }
        guard llm_mpi_init() == 0 else { throw DistributedError("MPI_Init failed") }
        started = true
        rank = Int(llm_mpi_rank())
        size = Int(llm_mpi_size())
    }

    /// Leaves the job (every rank, at the end).
    public static func finish() {
        guard started else { return }
        started = false
        _ = llm_mpi_finalize()
    }

    /// Ends every rank of the job: prints the message (naming this rank) and has MPI kill the rest.
    public static func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(isParallel ? "rank \(rank): " : "")\(message)\n".utf8))
        if started { llm_mpi_abort(1) }
        exit(1)
    }

    /// MPI counts are 32-bit: buffers go in pieces of at most this many elements.
    static let piece = 1 << 30

    private static func check(_ code: Int32, _ what: String) {
        if code != 0 { abort("MPI \(what) failed (code \(code))") }
    }

    /// Sums `count` floats across ranks, in place on every rank.
    public static func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        guard isParallel else { return }
        for start in stride(from: 0, to: count, by: piece) {
            check(llm_mpi_allreduce_sum_f32(buffer + start, Int32(min(piece, count - start))), "all-reduce")
        }
    }

    /// Sums (or takes the largest of) each value across ranks.
    public static func allReduceSum(_ values: [Double]) -> [Double] {
        guard isParallel else { return values }
        var v = values
        check(v.withUnsafeMutableBufferPointer { llm_mpi_allreduce_sum_f64($0.baseAddress, Int32($0.count)) }, "all-reduce")
        return v
    }

    public static func allReduceMax(_ values: [Double]) -> [Double] {
        guard isParallel else { return values }
        var v = values
        check(v.withUnsafeMutableBufferPointer { llm_mpi_allreduce_max_f64($0.baseAddress, Int32($0.count)) }, "all-reduce")
        return v
    }

    /// Copies `count` floats from `root` to every other rank.
    public static func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, from root: Int = 0) {
        guard isParallel else { return }
        for start in stride(from: 0, to: count, by: piece) {
            check(llm_mpi_bcast_f32(buffer + start, Int32(min(piece, count - start)), Int32(root)), "broadcast")
        }
    }

    /// `root`'s bytes on every rank (any length).
    public static func broadcast(_ bytes: [UInt8], from root: Int = 0) -> [UInt8] {
        guard isParallel else { return bytes }
        var length = [Double(bytes.count)]
        check(length.withUnsafeMutableBytes { llm_mpi_bcast_bytes($0.baseAddress, 8, Int32(root)) }, "broadcast")
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length[0]))
        if !out.isEmpty { check(out.withUnsafeMutableBytes { llm_mpi_bcast_bytes($0.baseAddress, Int32($0.count), Int32(root)) }, "broadcast") }
        return out
    }

    /// Waits until every rank has come here.
    public static func barrier() {
        guard isParallel else { return }
        check(llm_mpi_barrier(), "barrier")
    }

    /// Each rank's part (`counts[r]` floats at `offsets[r]`) of `buffer`, gathered on every rank.
    public static func allGather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int], offsets: [Int]) {
        guard isParallel else { return }
        precondition(counts.count == size && offsets.count == size && counts.allSatisfy { $0 < Int(Int32.max) } && (offsets.last ?? 0) < Int(Int32.max),
                     "all-gather: parts must be one per rank, each under 2³¹ elements")
        let c = counts.map { Int32($0) }, o = offsets.map { Int32($0) }
        check(llm_mpi_allgatherv_f32(buffer, c, o), "all-gather")
    }

    /// The same, gathered on `root` only.
    public static func gather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int], offsets: [Int], to root: Int = 0) {
        guard isParallel else { return }
        let c = counts.map { Int32($0) }, o = offsets.map { Int32($0) }
        check(llm_mpi_gatherv_f32(buffer, c, o, Int32(root)), "gather")
    }

    /// A sum all-reduce that runs while the caller goes on (the backward pass, say): `wait()`
    /// before reading the buffer.
    public final class PendingSum {
        private var handles: [UnsafeMutableRawPointer] = []
        init(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
            guard Distributed.isParallel else { return }
            for start in stride(from: 0, to: count, by: Distributed.piece) {
                guard let h = llm_mpi_iallreduce_sum_f32(buffer + start, Int32(min(Distributed.piece, count - start))) else {
                    Distributed.abort("MPI non-blocking all-reduce failed to start")
                }
                handles.append(h)
            }
        }
        /// Lets MPI make progress; true when the sum is complete.
        public func test() -> Bool { handles.allSatisfy { llm_mpi_test($0) != 0 } }
        public func wait() {
            for h in handles { Distributed.check(llm_mpi_wait(h), "wait") }
            handles = []
        }
    }

    public static func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) -> PendingSum { PendingSum(buffer, count: count) }
}

public struct DistributedError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
