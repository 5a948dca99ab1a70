import ArgumentParser
import Tensors

@main
struct LLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm",
        abstract: "A large language model built from scratch in Swift: tensors, autograd, training, inference.",
        subcommands: [Demo.self, Bench.self]
    )
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Threads for our kernels and BLAS (default: all cores).")
    var threads: Int?

    func apply() {
        if let threads { Parallel.setThreads(threads) } else { Parallel.setThreads(Parallel.threads) }
    }
}
