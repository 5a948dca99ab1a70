import ArgumentParser
import Dispatch
import Foundation
import Inference
import Server
import Tokenization
import Training

/// `llm serve`: the model behind OpenAI's HTTP API (chat and text completions, streaming) with
/// continuous batching, and a chat page at `/`.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over OpenAI's HTTP API (/v1/chat/completions, /v1/completions, streaming) with continuous batching, and a chat page at /.")
    @Option(help: "A GGUF file, a model folder, a training or fine-tuning run.") var model: String
    @Option(help: "The address to listen on (loopback by default; 0.0.0.0 for every interface).") var host = "127.0.0.1"
    @Option(help: "The port (0: any free one, printed).") var port = 8080
    @Option(help: "Sequences generated together in one batch; also the largest n.") var parallel = 4
    @Option(help: "Tokens (prompt + answer) each sequence may hold (default: the model's context).") var context: Int?
    @Option(help: "Require this key (Authorization: Bearer KEY) on every route but / and /health.") var apiKey: String?
    @Option(help: "Read the API key from this file (its first line).") var apiKeyFile: String?
    @Option(help: "Requests waiting for a place in the batch, at most; more are answered 503.") var maxQueue = 64
    @Option(help: "Milliseconds a streamed token may wait to go out with the next ones (fewer wake-ups while the cores compute; first tokens and endings go at once; 0: every token on its own).")
    var streamIntervalMs = Int(ServingEngine.defaultStreamInterval * 1000)
    @Option(help: "Allow browser pages from this origin (CORS), or * for any.") var corsOrigin: String?
    @Option(help: "The model's name in answers and /v1/models (default: the file or folder name).") var name: String?
    @Option(help: "Tokenizer (default: the model's own).") var tokenizer: String?
    @Flag(help: "No line per request on standard output.") var quiet = false
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try checkModel(model)
        try nonEmpty(host, "--host")
        guard (0...65535).contains(port) else { throw CLIError("--port must be from 0 to 65535, got \(port)") }
        try positive(parallel, "--parallel", max: 256)
        try atLeast(2, context, "--context", max: 1 << 24)
        guard apiKey == nil || apiKeyFile == nil else { throw CLIError("give --api-key or --api-key-file, not both") }
        try nonEmpty(apiKey, "--api-key")
        try existing(apiKeyFile, "--api-key-file", .file)
        try positive(maxQueue, "--max-queue", max: 1 << 20)
        try atLeast(0, streamIntervalMs, "--stream-interval-ms", max: 10_000, zero: "every token on its own")
        try nonEmpty(corsOrigin, "--cors-origin")
        try nonEmpty(name, "--name")
        try checkTokenizer(tokenizer)
    }

    func run() throws {
        global.apply()
        var key = apiKey
        if let apiKeyFile {
            let line = try utf8Text(readFile(apiKeyFile), source: apiKeyFile).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            key = line.trimmingCharacters(in: .whitespaces)
            guard !key!.isEmpty else { throw CLIError("--api-key-file \(apiKeyFile): the first line is empty") }
        }
        let loaded = try loading.load(model, tokenizer: tokenizer)
        if let context, context > loaded.model.contextLength {
            throw CLIError("--context \(context): the model's context is \(loaded.model.contextLength)")
        }
        guard loaded.tokenizer != nil || loaded.chars != nil else {
            throw CLIError("--model \(model): the model has no tokenizer to read text with: give --tokenizer")
        }
        var options = ServerOptions(modelName: name ?? URL(fileURLWithPath: model).lastPathComponent)
        options.host = host; options.port = port; options.apiKey = key; options.corsOrigin = corsOrigin; options.logRequests = !quiet
        let keyRequired = key != nil
        let engine = ServingEngine(loaded: loaded, parallel: parallel, maxQueue: maxQueue, context: context,
                                   streamInterval: Double(streamIntervalMs) / 1000)
        let server = LLMServer(engine: engine, options: options)
        print("model: \(loaded.summary)")
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: (any Error)?
        Task {
            do {
                try await server.run { url in
                    print("listening on \(url) (parallel \(engine.parallel), context \(engine.context), queue \(engine.maxQueue)\(keyRequired ? ", API key required" : "")); chat page at \(url)/")
                    fflush(stdout)
                }
            } catch { failure = error }
            done.signal()
        }
        done.wait()
        if let failure { throw CLIError("cannot serve on \(host):\(port) (--host, --port): \(failure)") }
        print("stopped")
    }
}
