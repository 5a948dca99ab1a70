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
        subcommands: [Tokenize.self, Detokenize.self, TrainTokenizer.self, Prepare.self, Train.self, Generate.self, Chat.self, Logits.self, Perplexity.self, Inspect.self, Export.self, Quantize.self, FineTune.self, PreferenceTune.self, Merge.self, Classify.self, Evaluate.self, Demo.self, Bench.self]
    )

    /// Our own errors print as `error: <what was wrong>` on stderr with exit status 1; the
    /// argument parser's (usage, --help) print as it formats them.
    static func main() {
        do {
            var command = try parseAsRoot()
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
            exit(withError: error)
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

    func apply() {
        if let threads { Parallel.setThreads(threads) }
    }
}

/// Where reference data lives: $LLM_CACHE, else the repository's .cache folder (found from the
/// executable, .build/<config>/llm), else ./.cache.
