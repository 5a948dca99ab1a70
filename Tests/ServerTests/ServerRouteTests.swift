import Foundation
import Hummingbird
import HummingbirdTesting
import Inference
import Models
import Server
import Testing

/// The HTTP API without a socket (Hummingbird's router tester) over the committed tiny Llama:
/// routes, request checks and OpenAI's error shape, whole and streamed answers, stop strings,
/// log-probabilities, seeds, the API key, a full queue.
@Suite(.serialized) struct ServerRoutes {
    static let modelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/llama-tiny").path
    static let loaded: LoadedModel = try! LoadedModel.load(modelPath, arithmetic: .float32)

    /// A server over the tiny model, its engine running for the test's duration.
    static func withServer<T>(parallel: Int = 4, maxQueue: Int = 16, context: Int? = nil, apiKey: String? = nil,
                              _ body: (any TestClientProtocol, LLMServer) async throws -> T) async throws -> T {
        var options = ServerOptions(modelName: "llama-tiny")
        options.apiKey = apiKey
        options.logRequests = false
        let server = LLMServer(engine: ServingEngine(loaded: loaded, parallel: parallel, maxQueue: maxQueue, context: context), options: options)
        server.engine.start()
        defer { server.engine.shutdown() }
        let app = Application(router: server.makeRouter())
        return try await app.test(.router) { client in try await body(client, server) }
    }

    static func post(_ client: any TestClientProtocol, _ uri: String, _ object: Any, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await post(client, uri, raw: try JSONSerialization.data(withJSONObject: object), headers: headers)
    }

    static func post(_ client: any TestClientProtocol, _ uri: String, raw: Data, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = "application/json"
        return try await client.execute(uri: uri, method: .post, headers: h, body: ByteBuffer(bytes: raw))
    }

    static func json(_ r: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any], "not a JSON object: \(String(buffer: r.body))")
    }

    /// The error object of an OpenAI-shaped error answer.
    static func error(_ r: TestResponse) throws -> [String: Any] {
        let e = try #require(try json(r)["error"] as? [String: Any])
        #expect(e["message"] is String && e["type"] is String)
        #expect(e.keys.contains("param") && e.keys.contains("code"))
        return e
    }

    /// The `data:` events of a Server-Sent Events body.
    static func events(_ r: TestResponse) -> [String] {
        String(buffer: r.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { line in
            #expect(line.hasPrefix("data: "), "not an SSE data line: \(line)")
            return String(line.dropFirst(6))
        }
    }

    /// Greedy tokens straight from the model (the reference the server must match).
    static func greedy(_ prompt: [Int32], _ n: Int) throws -> [Int32] {
        var g = Generator(model: loaded.model, sampler: .greedy)
        g.stopIds = loaded.stopIds
        return try g.generate(prompt: prompt, maxNewTokens: n)
    }

    @Test func infoRoutesAnswer() async throws {
        try await Self.withServer { client, _ in
            try await client.execute(uri: "/v1/models", method: .get) { r in
                #expect(r.status == .ok)
                let data = try #require(try Self.json(r)["data"] as? [[String: Any]])
                #expect(data.count == 1 && data[0]["id"] as? String == "llama-tiny" && data[0]["object"] as? String == "model")
            }
            try await client.execute(uri: "/health", method: .get) { r in
                let status = try Self.json(r)["status"] as? String
                #expect(r.status == .ok && status == "ok")
            }
            try await client.execute(uri: "/", method: .get) { r in
                #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/html") == true)
                let page = String(buffer: r.body)
                #expect(page.contains("<!doctype html>") && page.contains("v1/chat/completions") && !page.contains("http://") && !page.contains("https://"))
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(r.status == .ok && text.contains("# TYPE llm_generated_tokens_total counter") && text.contains("llm_queue_depth 0"))
            }
            try await client.execute(uri: "/v2/nothing", method: .get) { r in
                #expect(r.status == .notFound)
                let code = try Self.error(r)["code"] as? String
                #expect(code == "not_found")
            }
        }
    }

    @Test func badRequestsAreNamedAndTheServerGoesOn() async throws {
        try await Self.withServer(context: 64) { client, _ in
            let chat = "/v1/chat/completions"
            let user: [[String: Any]] = [["role": "user", "content": "hi"]]
            let cases: [(Any, Int, String?)] = [
                (["messages": user, "temperature": "hot"], 400, "temperature"),
                (["messages": user, "temperature": 3], 400, "temperature"),
                (["messages": user, "max_tokens": -1], 400, "max_tokens"),
                (["messages": user, "max_tokens": 1e15], 400, "max_tokens"),
                (["messages": user, "max_tokens": 1.5], 400, "max_tokens"),
                (["messages": [Any]()], 400, "messages"),
                (["messages": "hello"], 400, "messages"),
                (["model": "x"], 400, "messages"),
                (["messages": [["role": "wizard", "content": "hi"]]], 400, "messages[0].role"),
                (["messages": [["role": "user"]]], 400, "messages[0].content"),
                (["messages": user, "n": 0], 400, "n"),
                (["messages": user, "n": 99], 400, "n"),
                (["messages": user, "stop": [1, 2]], 400, "stop"),
                (["messages": user, "top_logprobs": 3], 400, "top_logprobs"),
                (["messages": user, "stream_options": ["include_usage": true]], 400, "stream_options"),
                (["messages": [["role": "user", "content": String(repeating: "word ", count: 200)]]], 400, "messages"),
                ([1, 2, 3], 400, nil),
            ]
            for (body, status, param) in cases {
                let r = try await Self.post(client, chat, body)
                #expect(r.status.code == status, "\(body): \(r.status) \(String(buffer: r.body))")
                let e = try Self.error(r)
                #expect(e["param"] as? String == param, "\(body): param \(e["param"] ?? "nil")")
            }
            // Not JSON, not UTF-8, too large.
            for raw in [Data("{\"messages\": [".utf8), Data([0x7B, 0xFF, 0xFE, 0x7D]), Data()] {
                let r = try await Self.post(client, chat, raw: raw)
                let code = try Self.error(r)["code"] as? String
                #expect(r.status == .badRequest && code == "invalid_json")
            }
            let big = try await Self.post(client, chat, raw: Data(repeating: 0x20, count: 10 << 20))
            #expect(big.status.code == 413)
            _ = try Self.error(big)
            // The context: the message says both sizes.
            let long = try await Self.post(client, "/v1/completions", ["prompt": Array(repeating: 5, count: 80)])
            let message = try Self.error(long)["message"] as? String ?? ""
            #expect(long.status == .badRequest && message.contains("80 tokens") && message.contains("64"))
            let badId = try await Self.post(client, "/v1/completions", ["prompt": [5, 999_999]])
            #expect(badId.status == .badRequest)
            // And after all that, a good request is answered.
            let ok = try await Self.post(client, "/v1/completions", ["prompt": "Hello", "max_tokens": 3, "temperature": 0])
            #expect(ok.status == .ok, "\(String(buffer: ok.body))")
        }
    }

    @Test func greedyCompletionEqualsTheGenerator() async throws {
        try await Self.withServer { client, _ in
            let prompt = try Self.loaded.encode("Count to five: 1 2")
            let expected = try Self.greedy(prompt, 12)
            let r = try await Self.post(client, "/v1/completions", ["prompt": prompt.map(Int.init), "max_tokens": 12, "temperature": 0])
            #expect(r.status == .ok)
            let j = try Self.json(r)
            let choice = try #require((j["choices"] as? [[String: Any]])?.first)
            #expect(choice["text"] as? String == (try Self.loaded.decode(expected)))
            let usage = try #require(j["usage"] as? [String: Int])
            #expect(usage["prompt_tokens"] == prompt.count && usage["completion_tokens"] == expected.count)
            #expect(choice["finish_reason"] as? String == (expected.count == 12 ? "length" : "stop"))
            #expect(j["object"] as? String == "text_completion" && (j["id"] as? String)?.hasPrefix("cmpl-") == true)
        }
    }

    @Test func streamingSendsChunksUsageAndDone() async throws {
        try await Self.withServer { client, _ in
            let whole = try Self.json(try await Self.post(client, "/v1/chat/completions",
                                                          ["messages": [["role": "user", "content": "hi"]], "max_tokens": 10, "temperature": 0]))
            let message = try #require(((whole["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String)
            let r = try await Self.post(client, "/v1/chat/completions", ["messages": [["role": "user", "content": "hi"]], "max_tokens": 10,
                                                                         "temperature": 0, "stream": true, "stream_options": ["include_usage": true]])
            #expect(r.status == .ok && r.headers[.contentType] == "text/event-stream")
            let events = Self.events(r)
            #expect(events.last == "[DONE]")
            let chunks = try events.dropLast().map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            var text = "", finishes: [String] = []
            for c in chunks.dropLast() {
                #expect(c["object"] as? String == "chat.completion.chunk")
                let choice = try #require((c["choices"] as? [[String: Any]])?.first)
                let delta = try #require(choice["delta"] as? [String: Any])
                text += delta["content"] as? String ?? ""
                if let f = choice["finish_reason"] as? String { finishes.append(f) }
            }
            #expect(text == message, "streamed text equals the whole answer")
            #expect(finishes.count == 1)
            let usage = try #require(chunks.last?["usage"] as? [String: Int])
            #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true && usage["total_tokens"] == usage["prompt_tokens"]! + usage["completion_tokens"]!)
        }
    }

    @Test func stopStringsCutTheText() async throws {
        try await Self.withServer { client, _ in
            let prompt = try Self.loaded.encode("Count to five: 1 2")
            let text = try Self.loaded.decode(try Self.greedy(prompt, 16))
            // Stop at an ASCII character in the middle of what greedy decoding writes (the tiny
            // model writes noise): the answer is what comes before its first appearance.
            let chars = Array(text)
            let at = try #require((2..<chars.count).first { chars[$0].isASCII && chars[$0].isLetter }, "no ASCII letter in \(text.debugDescription)")
            let stop = String(chars[at])
            let expected = String(text[..<text.range(of: stop)!.lowerBound])
            for stream in [false, true] {
                let r = try await Self.post(client, "/v1/completions", ["prompt": prompt.map(Int.init), "max_tokens": 16, "temperature": 0,
                                                                        "stop": [stop, "never appears"], "stream": stream])
                var got = "", finish = ""
                if stream {
                    for e in Self.events(r).dropLast() {
                        let c = try #require((try JSONSerialization.jsonObject(with: Data(e.utf8)) as? [String: Any])?["choices"] as? [[String: Any]])
                        got += c[0]["text"] as? String ?? ""
                        if let f = c[0]["finish_reason"] as? String { finish = f }
                    }
                } else {
                    let c = try #require(try Self.json(r)["choices"] as? [[String: Any]])
                    got = c[0]["text"] as? String ?? ""; finish = c[0]["finish_reason"] as? String ?? ""
                }
                #expect(got == expected && finish == "stop", "stream \(stream): \(got.debugDescription) vs \(expected.debugDescription)")
            }
        }
    }

    @Test func logprobsSeedsAndChoices() async throws {
        try await Self.withServer { client, _ in
            let body: [String: Any] = ["messages": [["role": "user", "content": "hello"]], "max_tokens": 6, "temperature": 1, "seed": 42, "n": 2,
                                       "logprobs": true, "top_logprobs": 3]
            let a = try Self.json(try await Self.post(client, "/v1/chat/completions", body))
            let b = try Self.json(try await Self.post(client, "/v1/chat/completions", body))
            let ca = try #require(a["choices"] as? [[String: Any]]), cb = try #require(b["choices"] as? [[String: Any]])
            #expect(ca.count == 2 && ca.map { $0["index"] as? Int } == [0, 1])
            let texts = { (c: [[String: Any]]) in c.map { ($0["message"] as? [String: Any])?["content"] as? String ?? "?" } }
            #expect(texts(ca) == texts(cb), "the same seed gives the same answers")
            let content = try #require((ca[0]["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            #expect(content.count == (a["usage"] as? [String: Int])?["completion_tokens"].map { $0 / 2 } ?? -1 || content.count > 0)
            for entry in content {
                let lp = try #require(entry["logprob"] as? Double)
                let top = try #require(entry["top_logprobs"] as? [[String: Any]])
                #expect(lp <= 0 && top.count == 3 && entry["bytes"] is [Int])
                let values = top.compactMap { $0["logprob"] as? Double }
                #expect(values == values.sorted(by: >) && values.map(Foundation.exp).reduce(0, +) <= 1.0001)
            }
        }
    }

    @Test func apiKeyIsRequiredWhereSet() async throws {
        try await Self.withServer(apiKey: "sekret") { client, _ in
            let body: [String: Any] = ["prompt": "Hi", "max_tokens": 2]
            let none = try await Self.post(client, "/v1/completions", body)
            let code = try Self.error(none)["code"] as? String
            #expect(none.status == .unauthorized && code == "invalid_api_key")
            let wrong = try await Self.post(client, "/v1/completions", body, headers: [.authorization: "Bearer nope"])
            #expect(wrong.status == .unauthorized)
            let right = try await Self.post(client, "/v1/completions", body, headers: [.authorization: "Bearer sekret"])
            #expect(right.status == .ok)
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/models", method: .get) { #expect($0.status == .unauthorized) }
        }
    }

    @Test func aFullQueueAnswers503AndRecovers() async throws {
        try await Self.withServer(parallel: 1, maxQueue: 2) { client, _ in
            let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        let r = try await Self.post(client, "/v1/completions", ["prompt": "Hello there", "max_tokens": 20, "temperature": 0])
                        return (Int(r.status.code), r.headers[.retryAfter])
                    }
                }
                var out: [(Int, String?)] = []
                for try await s in group { out.append(s) }
                return out
            }
            #expect(statuses.allSatisfy { $0.0 == 200 || ($0.0 == 503 && $0.1 == "1") }, "\(statuses)")
            #expect(statuses.contains { $0.0 == 503 } && statuses.contains { $0.0 == 200 })
            let after = try await Self.post(client, "/v1/completions", ["prompt": "Hello", "max_tokens": 2])
            #expect(after.status == .ok)
        }
    }

    @Test func tokenizeAndDetokenizeWithPieces() async throws {
        try await Self.withServer { client, _ in
            let t = try Self.json(try await Self.post(client, "/tokenize", ["content": "Hello world", "with_pieces": true]))
            let tokens = try #require(t["tokens"] as? [[String: Any]])
            let ids = tokens.compactMap { $0["id"] as? Int }
            #expect(ids.map(Int32.init) == (try Self.loaded.encode("Hello world")))
            #expect(tokens.compactMap { $0["piece"] as? String }.joined() == "Hello world")
            let d = try Self.json(try await Self.post(client, "/detokenize", ["tokens": ids]))
            #expect(d["content"] as? String == "Hello world" && (d["pieces"] as? [String])?.count == ids.count)
            let bad = try await Self.post(client, "/detokenize", ["tokens": [1, -4]])
            let param = try Self.error(bad)["param"] as? String
            #expect(bad.status == .badRequest && param == "tokens")
        }
    }
}
