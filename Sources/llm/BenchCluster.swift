import ArgumentParser
import Cluster
import Foundation
import Tensors

extension Bench {
    /// `mpirun -np N llm bench allreduce`: the time to average a buffer of gradients across the
    /// ranks (the communication of one data-parallel optimizer step), as the trainer does it.
    struct AllReduceSpeed: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "allreduce", abstract: "Seconds to sum N floats across the ranks of an mpirun job.")
        @Option(help: "Floats to reduce (default: GPT-2 124M's parameter count).") var floats = 124_439_808
        @Option(help: "Timed runs (the best is reported).") var repetitions = 5
        @Flag(help: "Print {\"ranks\", \"floats\", \"seconds\", \"bus_gb_s\"} and nothing else.") var json = false

        func validate() throws {
            try positive(floats, "--floats", max: 1 << 34)
            try positive(repetitions, "--repetitions", max: 1000)
        }

        func run() throws {
            try Distributed.start()
            defer { Distributed.finish() }
            let buffer = Tensor(zeros: [floats])
            Distributed.allReduceSum(buffer.data, count: floats)              // warm-up
            var best = Double.infinity
            for _ in 0..<repetitions {
                Distributed.barrier()
                let t0 = Date()
                Distributed.allReduceSum(buffer.data, count: floats)
                best = min(best, Distributed.allReduceMax([Date().timeIntervalSince(t0)])[0])
            }
            // A ring all-reduce moves 2(N − 1)/N of the buffer through each rank's link.
            let n = Double(Distributed.size)
            let bus = Distributed.isParallel ? 2 * (n - 1) / n * Double(floats * 4) / best / 1e9 : 0
            guard Distributed.isMain else { return }
            if json {
                print("{\"ranks\": \(Distributed.size), \"floats\": \(floats), \"seconds\": \(best), \"bus_gb_s\": \(bus)}")
            } else {
                print(String(format: "%d ranks: all-reduce of %d floats (%.0f MB) in %.4f s, bus bandwidth %.2f GB/s (best of %d)",
                             Distributed.size, floats, Double(floats * 4) / 1e6, best, bus, repetitions))
            }
        }
    }
}
