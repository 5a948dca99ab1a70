import Foundation
import Hummingbird
import Inference
import Logging
import Models
import NIOCore
import Tokenization

/// How `llm serve` runs.
public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// The model's name in answers and /v1/models.
    public var modelName: String
    public var apiKey: String?
    public var corsOrigin: String?
    /// Request bodies larger than this are answered 413.
    public var bodyLimit = 2 << 20
    /// A line per request on standard output.
    public var logRequests = true
    public init(modelName: String) { self.modelName = modelName }
}

/// Per-request notes the access log reads: tokens generated, and whether the body streams (then
/// the stream writes the log line when it ends).
final class RequestNotes: @unchecked Sendable {
    var tokens = 0
    var streaming = false
    var started = Date()
    var method = "", path = ""
}

public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let notes = RequestNotes()
    public init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
}

/// The OpenAI-compatible HTTP API over a `ServingEngine`: routes, request checks, error shapes,
/// streaming, the access log and metrics. `makeRouter` is what `llm serve` runs and what the
/// tests drive without a socket.
public final class LLMServer: Sendable {
    public let engine: ServingEngine
    public let options: ServerOptions
    private let output: @Sendable (String) -> Void

    public init(engine: ServingEngine, options: ServerOptions, output: @escaping @Sendable (String) -> Void = { print($0); fflush(stdout) }) {
        self.engine = engine
        self.options = options
        self.output = output
    }

    public static let routes = ["/", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"]

    public func makeRouter() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: AccessMiddleware(server: self))
        if let origin = options.corsOrigin {
            router.add(middleware: CORSMiddleware(allowOrigin: origin == "*" ? .all : .custom(origin),
                                                  allowHeaders: [.contentType, .authorization], allowMethods: [.get, .post, .options]))
        }
        router.add(middleware: APIKeyMiddleware(key: options.apiKey))
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: ChatPage.html)))
        }
        router.get("/health") { [self] _, _ in
            let load = engine.load
            return json(["status": "ok", "model": options.modelName, "slots_idle": max(0, engine.parallel - load.running),
                         "slots_processing": load.running, "queue": load.waiting])
        }
        router.get("/metrics") { [self] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: engine.metrics.exposition())))
        }
        router.get("/v1/models") { [self] _, _ in
            json(["object": "list", "data": [["id": options.modelName, "object": "model", "created": 0, "owned_by": "llm",
                                              "context_length": engine.context]]])
        }
        router.post("/v1/chat/completions") { [self] request, context in try await chat(request, context) }
        router.post("/v1/completions") { [self] request, context in try await complete(request, context) }
        router.post("/tokenize") { [self] request, context in try await tokenize(request, context) }
        router.post("/detokenize") { [self] request, context in try await detokenize(request, context) }
        return router
    }

    /// Serves until SIGINT or SIGTERM: then stops taking connections, lets the streams in flight
    /// finish, and stops the engine. `ready` gets the address bound (port 0: the one chosen).
    public func run(ready: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        engine.start()
        var logger = Logger(label: "llm-serve")
        logger.logLevel = .error
        let app = Application(router: makeRouter(), configuration: .init(address: .hostname(options.host, port: options.port), serverName: "llm"),
                              onServerRunning: { channel in
                                  let port = channel.localAddress?.port ?? 0
                                  ready("http://\(self.options.host.contains(":") ? "[\(self.options.host)]" : self.options.host):\(port)")
                              }, logger: logger)
        defer { engine.shutdown() }
        try await app.runService()
    }

    // MARK: - Routes

    func body(_ request: Request) async throws -> Data {
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: options.bodyLimit)
            return Data(buffer: buffer)
        } catch is NIOTooManyBytesError {
            throw APIError(status: 413, "the request body is larger than \(options.bodyLimit) bytes", code: "request_too_large")
        }
    }

    func chat(_ request: Request, _ context: ServerContext) async throws -> Response {
        let parsed = try ChatRequest(try JSONValue.object(from: try await body(request)), maxParallel: engine.parallel, context: engine.context)
        let template = engine.loaded.chat ?? ChatTemplate()
        let prompt: [Int32]
        do { prompt = try engine.loaded.encode(template.render(parsed.messages)) } catch {
            throw APIError.invalid("messages", "the messages cannot be tokenized: \(error)")
        }
        return try await run(kind: .chat, model: parsed.model, prompts: [prompt], settings: parsed.settings, context: context)
    }

    func complete(_ request: Request, _ context: ServerContext) async throws -> Response {
        let parsed = try CompletionRequest(try JSONValue.object(from: try await body(request)), maxParallel: engine.parallel, context: engine.context)
        var prompts: [[Int32]] = []
        for (i, p) in parsed.prompts.enumerated() {
            let at = parsed.prompts.count == 1 ? "prompt" : "prompt[\(i)]"
            switch p {
            case .text(let text):
                do { prompts.append(try engine.loaded.encode(text)) } catch { throw APIError.invalid("prompt", "\(at) cannot be tokenized: \(error)") }
            case .ids(let ids):
                do { try engine.loaded.check(ids, what: at) } catch { throw APIError.invalid("prompt", "\(error)") }
                prompts.append(ids)
            }
        }
        return try await run(kind: .text, model: parsed.model, prompts: prompts, settings: parsed.settings, context: context)
    }

    /// Checks the prompts against the context, submits every choice, and answers whole or as a stream.
    func run(kind: Completion.Kind, model: String?, prompts: [[Int32]], settings: GenerationSettings, context: ServerContext) async throws -> Response {
        let param = kind == .chat ? "messages" : "prompt"
        var jobs: [ServingEngine.Job] = []
        for (p, prompt) in prompts.enumerated() {
            guard !prompt.isEmpty else { throw APIError.invalid(param, "the prompt is empty (no tokens)") }
            guard prompt.count < engine.context else {
                throw APIError(status: 400, "the prompt has \(prompt.count) tokens, but the context holds \(engine.context) (prompt and answer together)",
                               param: param, code: "context_length_exceeded")
            }
            let room = engine.context - prompt.count
            for i in 0..<settings.n {
                jobs.append(ServingEngine.Job(prompt: prompt, maxTokens: min(settings.maxTokens ?? room, room),
                                              sampler: settings.sampler(choice: p * settings.n + i), stops: settings.stops, logprobs: settings.logprobs))
            }
        }
        let submission: (group: UInt64, events: AsyncStream<[ServingEngine.Event]>)
        do { submission = try engine.submit(jobs) } catch let e as ServingEngine.EngineError {
            switch e {
            case .queueFull(let waiting):
                var error = APIError(status: 503, "the server is busy: \(waiting) requests are waiting (--max-queue \(engine.maxQueue)); try again shortly",
                                     type: "server_error", code: "queue_full")
                error.retryAfter = 1
                throw error
            case .stopped:
                throw APIError(status: 503, "the server is stopping", type: "server_error", code: "shutting_down")
            }
        }
        let completion = Completion(kind: kind, model: model ?? options.modelName, settings: settings, loaded: engine.loaded,
                                    promptTokens: prompts.map(\.count))
        if settings.stream { return stream(completion, submission, choices: jobs.count, context: context) }

        var choices = [Completion.Choice](repeating: .init(), count: jobs.count)
        for await events in submission.events {
            for event in events {
                switch event {
                case let .token(i, token):
                    choices[i].text += token.text
                    choices[i].completionTokens += 1
                    if settings.logprobs != nil { choices[i].tokens.append(token) }
                case let .done(i, reason, tail, _, _):
                    choices[i].text += tail
                    choices[i].finish = reason
                case let .failed(i, message):
                    choices[i].error = message
                }
            }
        }
        if let failed = choices.first(where: { $0.error != nil }) {
            engine.cancel(group: submission.group)
            throw APIError.invalid(param, failed.error!)
        }
        context.notes.tokens = choices.reduce(0) { $0 + $1.completionTokens }
        return json(completion.response(choices))
    }

    /// Server-Sent Events: a chunk per token (per choice), the finish reasons, the usage when asked,
    /// then `data: [DONE]`; the chunks of the events the engine hands over together go in one write.
    /// A client that goes away cancels its choices (the next write fails).
    func stream(_ completion: Completion, _ submission: (group: UInt64, events: AsyncStream<[ServingEngine.Event]>), choices count: Int,
                context: ServerContext) -> Response {
        context.notes.streaming = true
        let notes = context.notes
        let engine = self.engine
        let settings = completion.settings
        let line = accessLine
        let body = ResponseBody { writer in
            var choices = [Completion.Choice](repeating: .init(), count: count)
            var started = [Bool](repeating: false, count: count)
            var offsets = [Int](repeating: 0, count: count)
            var status = "200"
            var buffer = ByteBuffer()
            func send(_ object: Any) {
                buffer.writeString("data: ")
                buffer.writeBytes(jsonData(object))
                buffer.writeString("\n\n")
            }
            do {
                for await events in submission.events {
                    for event in events {
                        switch event {
                        case let .token(i, token):
                            choices[i].completionTokens += 1
                            choices[i].text += token.text
                            // Held-back text (a possible stop string) waits; a token with log-probabilities is always sent.
                            guard !token.text.isEmpty || settings.logprobs != nil else { continue }
                            send(completion.chunk(index: i, text: token.text, tokens: [token], finish: nil, first: !started[i], textOffset: offsets[i]))
                            started[i] = true
                            offsets[i] += token.text.utf8.count
                        case let .done(i, reason, tail, _, _):
                            choices[i].text += tail
                            choices[i].finish = reason
                            if !tail.isEmpty {
                                send(completion.chunk(index: i, text: tail, tokens: [], finish: nil, first: !started[i], textOffset: offsets[i]))
                                started[i] = true
                            }
                            send(completion.chunk(index: i, text: nil, tokens: [], finish: reason, first: !started[i], textOffset: offsets[i]))
                        case let .failed(_, message):
                            send(APIError(status: 400, message, param: completion.kind == .chat ? "messages" : "prompt").json)
                            status = "400"
                        }
                    }
                    if buffer.readableBytes > 0 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
                if settings.includeUsage { send(completion.usageChunk(choices)) }
                buffer.writeString("data: [DONE]\n\n")
                try await writer.write(buffer)
                try await writer.finish(nil)
            } catch {
                engine.cancel(group: submission.group)
                status = "200, client gone"
                notes.tokens = choices.reduce(0) { $0 + $1.completionTokens }
                line(notes, status)
                throw error
            }
            notes.tokens = choices.reduce(0) { $0 + $1.completionTokens }
            line(notes, status)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// `POST /tokenize` `{"content": text, "add_special": false, "with_pieces": false}` →
    /// `{"tokens": [ids]}`, or with pieces `{"tokens": [{"id", "piece"}]}` (llama-server's shape).
    func tokenize(_ request: Request, _ context: ServerContext) async throws -> Response {
        let f = Fields(try JSONValue.object(from: try await body(request)))
        guard let text = try f.string("content") ?? f.string("text") else { throw APIError.invalid("content", "content is missing: the text to tokenize") }
        let addSpecial = try f.bool("add_special") ?? false, withPieces = try f.bool("with_pieces") ?? false
        var ids: [Int32]
        do { ids = try engine.loaded.encode(text) } catch { throw APIError.invalid("content", "the text cannot be tokenized: \(error)") }
        if addSpecial, let bos = engine.loaded.bos, ids.first != bos { ids.insert(bos, at: 0) }
        if !withPieces { return json(["tokens": ids.map(Int.init)]) }
        return json(["tokens": ids.map { id -> [String: Any] in ["id": Int(id), "piece": piece(id)] }])
    }

    /// `POST /detokenize` `{"tokens": [ids]}` → `{"content": text, "pieces": [...]}`.
    func detokenize(_ request: Request, _ context: ServerContext) async throws -> Response {
        let f = Fields(try JSONValue.object(from: try await body(request)))
        guard let v = f.value("tokens") else { throw APIError.invalid("tokens", "tokens is missing: an array of token ids") }
        guard case .array(let list) = v else { throw APIError.invalid("tokens", "tokens must be an array of token ids, got \(v.kind)") }
        let vocabulary = engine.loaded.model.vocabularySize
        let ids: [Int32] = try list.enumerated().map { i, item in
            guard case .number(let x) = item, x == x.rounded(), x >= 0, x < Double(vocabulary) else {
                throw APIError.invalid("tokens", "tokens[\(i)] must be a token id from 0 to \(vocabulary - 1)")
            }
            return Int32(x)
        }
        let text: String
        do { text = try engine.loaded.decode(ids) } catch { throw APIError.invalid("tokens", "\(error)") }
        return json(["content": text, "pieces": ids.map(piece)])
    }

    /// A token's own text, as the tokenizer's vocabulary spells it (its bytes, decoded leniently).
    func piece(_ id: Int32) -> String {
        if let bytes = engine.loaded.tokenizer?.tokenBytes(UInt32(bitPattern: id)) { return String(decoding: bytes, as: UTF8.self) }
        return (try? engine.loaded.decode([id])) ?? ""
    }

    // MARK: - Log

    /// Writes the access line for a finished request (method, path, status, tokens, ms).
    var accessLine: @Sendable (RequestNotes, String) -> Void {
        { [output, options] notes, status in
            guard options.logRequests else { return }
            let ms = Int(Date().timeIntervalSince(notes.started) * 1000)
            output("\(notes.method) \(notes.path) \(status) \(notes.tokens) tokens \(ms) ms")
        }
    }
}

/// A JSON response (200 unless said).
func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonData(object))))
}

/// Outermost: the access log, metrics by route and status, and every error (ours, the router's
/// 404, a body over the limit) turned into OpenAI's error shape.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let server: LLMServer

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let notes = context.notes
        notes.started = Date()
        notes.method = request.method.rawValue
        notes.path = request.uri.path
        let route = LLMServer.routes.contains(request.uri.path) ? request.uri.path : "other"
        var response: Response
        do { response = try await next(request, context) } catch { response = Self.errorResponse(error, request: request) }
        server.engine.metrics.request(route: route, status: response.status.code)
        if !notes.streaming || response.status != .ok { server.accessLine(notes, String(response.status.code)) }
        return response
    }

    static func errorResponse(_ error: any Error, request: Request) -> Response {
        let api: APIError
        switch error {
        case let e as APIError: api = e
        case let e as HTTPError where e.status == .notFound:
            api = APIError(status: 404, "no route \(request.method.rawValue) \(request.uri.path): see GET /v1/models, POST /v1/chat/completions, POST /v1/completions",
                           code: "not_found")
        case let e as HTTPError where e.status == .methodNotAllowed:
            api = APIError(status: 405, "\(request.method.rawValue) is not allowed on \(request.uri.path)", code: "method_not_allowed")
        case let e as any HTTPResponseError:
            api = APIError(status: Int(e.status.code), e.status.reasonPhrase, type: e.status.code >= 500 ? "server_error" : "invalid_request_error")
        default:
            api = APIError(status: 500, "internal error: \(error)", type: "server_error")
        }
        var response = json(api.json, status: HTTPResponse.Status(code: api.status))
        if let seconds = api.retryAfter { response.headers[.retryAfter] = String(seconds) }
        return response
    }
}

/// `Authorization: Bearer KEY` on every route but the page and /health (and CORS preflights,
/// answered before this).
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let key: String?

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        guard let key, !["/", "/health"].contains(request.uri.path) else { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            throw APIError(status: 401, "no API key: send the header Authorization: Bearer KEY", code: "invalid_api_key")
        }
        guard header.hasPrefix("Bearer "), Self.same(String(header.dropFirst(7)), key) else {
            throw APIError(status: 401, "the API key is wrong", code: "invalid_api_key")
        }
        return try await next(request, context)
    }

    /// Compares in time that does not depend on where the strings first differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = x.count ^ y.count
        for i in 0..<max(x.count, y.count) { diff |= Int((i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)) }
        return diff == 0
    }
}
