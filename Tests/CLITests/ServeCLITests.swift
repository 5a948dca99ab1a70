import Foundation
import Testing

/// `llm serve` as a user runs it: on the tiny Llama with an API key, OpenAI's own Python client
/// (scripts/e2e/openai_client.py: chat and completions, streaming or not, stop, seed, logprobs,
/// include_usage, the key, greedy output equal to `llm generate --temperature 0`, then malformed
/// and hostile requests over sockets, a client that disconnects mid-stream, 200 requests on a
/// full queue), then SIGTERM: the server stops cleanly.
@Suite(.serialized) struct ServeCommand {
    static let model = LlamaCommandLine.repo.appendingPathComponent("Tests/Fixtures/llama-tiny").path

    /// A running `llm serve`: its URL and everything it printed.
    final class Server {
        let process = Process()
        let output = Pipe()
        private(set) var lines: [String] = []
        private let lock = NSLock()
        let url: String

        init(_ args: [String]) throws {
            process.executableURL = URL(fileURLWithPath: CommandLine.llm)
            process.arguments = ["serve"] + args
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let reader = output.fileHandleForReading
            var buffer = Data(), found: String?
            let deadline = Date().addingTimeInterval(60)
            while found == nil && Date() < deadline {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                buffer += chunk
                let text = String(decoding: buffer, as: UTF8.self)
                if let r = text.range(of: #"listening on (http://[0-9.]+:[0-9]+)"#, options: .regularExpression) {
                    found = String(text[r].dropFirst("listening on ".count))
                }
            }
            lines = String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init)
            guard let found else {
                process.terminate()
                throw ServeError("the server printed no address: \(lines.joined(separator: "\n"))")
            }
            url = found
        }

        /// SIGTERM, then everything it printed and its exit status.
        func stop() -> (status: Int32, output: String) {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(30)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            let rest = output.fileHandleForReading.readDataToEndOfFile()
            return (process.terminationStatus, lines.joined(separator: "\n") + "\n" + String(decoding: rest, as: UTF8.self))
        }
    }

    struct ServeError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    @Test func openAIClientAndHostileRequests() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llm-serve-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prompt = "Once upon a time"
        let greedy = try CommandLine.run(["generate", "--model", Self.model, "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "12"])
        try #require(greedy.status == 0, "\(greedy.err)")
        try greedy.out.write(to: URL(fileURLWithPath: dir + "/greedy.txt"))

        // Every token written as it comes (--stream-interval-ms 0): the test model writes its 200
        // tokens in about one default interval, and a stream sent in one piece at its end may never
        // find out that its client left, so the access log's "client gone" would be luck.
        let server = try Server(["--model", Self.model, "--port", "0", "--parallel", "2", "--max-queue", "4", "--api-key", "sekret",
                                 "--stream-interval-ms", "0"])
        let script = LlamaCommandLine.repo.appendingPathComponent("scripts/e2e/openai_client.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, "--url", server.url, "--key", "sekret", "--greedy-prompt", prompt, "--greedy-text", dir + "/greedy.txt"]
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let stopped = server.stop()
        #expect(p.terminationStatus == 0, "the openai client checks failed (make test installs the openai package):\n\(text)")
        #expect(text.contains("all checks passed"))
        #expect(stopped.status == 0 && stopped.output.contains("stopped"), "after SIGTERM: \(stopped.status)\n\(stopped.output.suffix(2000))")
        // The access log: a line per request, and the stream whose client went away.
        #expect(stopped.output.contains("POST /v1/chat/completions 200"))
        #expect(stopped.output.contains("client gone"), "no stream was seen cancelled by its client")
    }

    /// The chat page in headless Chromium (Debian's, through chromedriver): a message typed and
    /// sent, the reply streamed in with each token shaded by its probability, a click on a token
    /// shows the alternatives; the stop button ends a long reply. Screenshots in .build/serve/.
    @Test func chatPageInTheBrowser() throws {
        let shots = LlamaCommandLine.repo.appendingPathComponent(".build/serve").path
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let server = try Server(["--model", Self.model, "--port", "0", "--parallel", "2"])
        defer { _ = server.stop() }
        let driver = try WebDriver()
        defer { driver.quit() }
        try driver.open(URL(string: server.url + "/")!)
        func wait(_ script: String, _ what: String) throws -> Any? {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if let v = try driver.run(script), !(v is NSNull) { return v }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw ServeError("the page never showed \(what)")
        }
        _ = try wait("return document.getElementById('status').textContent.includes('llama-tiny') ? 1 : null", "the server's health")
        _ = try driver.run("document.getElementById('system').value = 'You are terse.'; document.getElementById('max_tokens').value = '24'; document.getElementById('input').value = 'Hello there'; return 0")
        try driver.click("#send")
        _ = try wait("const m = document.querySelector('.msg.assistant'); return m && m.dataset.done === '1' ? 1 : null", "a finished reply")
        let user = try driver.run("return document.querySelector('.msg.user').textContent") as? String
        #expect(user == "Hello there")
        let tokens = try driver.run("return document.querySelectorAll('.msg.assistant .tok').length") as? Int ?? 0
        #expect(tokens > 0, "no generated token was drawn")
        let meta = try driver.run("return document.querySelector('.msg.assistant .meta').textContent") as? String ?? ""
        #expect(meta.contains("tokens") && meta.contains("finish:"), "meta: \(meta)")
        // Every token has a box to click, whatever the model sampled: characters that draw nothing
        // (a form feed, a zero-width space, a line break) show as visible marks.
        let shown = try driver.run(#"return visibleText("a\f\r\n\u200b\t\u007f") + visibleText("\u0301e")"#) as? String
        #expect(shown == "a\u{240C}\u{240D}\u{21B5}\n\u{27E8}U+200B\u{27E9}\t\u{2421}\u{25CC}\u{301}e")
        let sizeless = #"return [...document.querySelectorAll('.tok')].filter((s) => ![...s.getClientRects()].some((r) => r.width > 0 && r.height > 0)).map((s) => JSON.stringify(s.textContent))"#
        #expect(try driver.run(sizeless) as? [String] == [], "tokens without a box to click")
        try driver.click(".msg.assistant .tok")
        let alternatives = try driver.run("return document.querySelectorAll('#detail tr').length") as? Int ?? 0
        #expect(alternatives == 5, "the token view lists the top 5 alternatives")
        try driver.screenshot(to: shots + "/chat.png")

        // A long reply, stopped from the page.
        _ = try driver.run("document.getElementById('max_tokens').value = '200'; document.getElementById('temperature').value = '1'; document.getElementById('input').value = 'Tell me a long story'; return 0")
        try driver.click("#send")
        _ = try wait("return document.querySelectorAll('.msg.assistant')[1].querySelectorAll('.tok').length > 0 ? 1 : null", "the second reply starting")
        // The tiny model writes ~600 tokens/s: its reply may end by itself (the context is full, or
        // an end token) before the click lands, so any of the three endings is accepted.
        if try driver.run("return document.getElementById('stop').disabled") as? Bool == false { try driver.click("#stop") }
        _ = try wait("const m = document.querySelectorAll('.msg.assistant')[1]; return m.dataset.done === '1' ? 1 : null", "the stopped reply")
        let stoppedMeta = try driver.run("return document.querySelectorAll('.msg.assistant')[1].querySelector('.meta').textContent") as? String ?? ""
        #expect(["finish: stopped", "finish: length", "finish: stop"].contains { stoppedMeta.contains($0) }, "meta: \(stoppedMeta)")
        #expect(try driver.run(sizeless) as? [String] == [], "tokens without a box to click")
        try driver.screenshot(to: shots + "/chat-stopped.png")
    }
}
