import ArgumentParser
import Foundation
import Inference
import Models
import Training
import NN
import Tensors
import Tokenization

@main
struct LLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llm",
        abstract: "A large language model built from scratch in Swift: tokenizer, tensors, autograd, training, inference.",
        subcommands: [Tokenize.self, Detokenize.self, TrainTokenizer.self, Prepare.self, Train.self, Generate.self, Chat.self, Logits.self, Perplexity.self, Inspect.self, Export.self, Quantize.self, FineTune.self, PreferenceTune.self, Merge.self, Classify.self, Evaluate.self, Explain.self, Serve.self, Demo.self, Bench.self]
    )

    /// Every error prints as one line `error: <what was wrong>` on stderr with exit status 1:
    /// ours, the readers', and the argument parser's (a value that does not parse, a missing
    /// option, a failed check in a command's validate()). --help prints its text with status 0.
    static func main() {
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            fail(message(for: error).replacingOccurrences(of: "\n", with: " "))
        }
        do {
            try command.run()
        } catch let error as CLIError {
            fail(error.description)
        } catch let error as TokenizerError {
            fail(error.description)
        } catch let error as LoadError {
            fail(error.description)
        } catch let error as ShapeError {
            fail(error.description)
        } catch let error as ModelError {
            fail(error.description)
        } catch let error as TrainingError {
            fail(error.description)
        } catch let error as InferenceError {
            fail(error.description)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }     // `llm` alone: the help
            fail(message(for: error).replacingOccurrences(of: "\n", with: " "))
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// A failure the CLI reports in one line.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Threads for our kernels and BLAS (default: all cores).")
    var threads: Int?

    func validate() throws { try positive(threads, "--threads", max: largestThreadCount) }

    func apply() {
        if let threads { Parallel.setThreads(threads) }
    }
}

/// Where reference data lives: $LLM_CACHE, else the repository's .cache folder (found from the
/// executable, .build/<config>/llm), else ./.cache.
