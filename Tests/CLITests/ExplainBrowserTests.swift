import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `llm explain`'s report in a real browser: Debian's headless Chromium, driven through
/// chromedriver's WebDriver protocol (both installed by scripts/setup.sh). The test picks a layer
/// and a head from the selectors and a map from the grid, as a person would, and checks that the
/// heatmap, the grid, the logit lens and the norms are drawn; screenshots land in .build/explain/.
@Suite(.serialized) struct ExplainInTheBrowser {
    static let repo = LlamaCommandLine.repo
    static let shots = repo.appendingPathComponent(".build/explain").path

    @Test func smolLM2Report() throws {
        try LlamaCommandLine.requireModel()
        try check(model: LlamaCommandLine.smol, prompt: "The capital of Australia is", continuation: 3, name: "smollm2")
    }

    @Test func gptRunReport() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llm-explain-run-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "its", "home", "while", "birds", "sang"]
        let text = (0..<3000).map { words[($0 * 7 + $0 / 5) % words.count] }.joined(separator: " ")
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/text.txt"))
        let train = try CommandLine.run(["train", "--data", dir + "/text.txt", "--tokenizer", "train", "--vocab-size", "300", "--config", "mini",
                                         "--context", "32", "--batch", "4", "--steps", "20", "--eval-every", "0", "--sample-every", "0", "--out", dir + "/run"])
        #expect(train.status == 0, "\(train.err)")
        try check(model: dir + "/run", prompt: "the cat sat on", continuation: 4, name: "gpt-run")
    }

    func check(model: String, prompt: String, continuation: Int, name: String) throws {
        try FileManager.default.createDirectory(atPath: Self.shots, withIntermediateDirectories: true)
        let report = Self.shots + "/\(name).html"
        let made = try CommandLine.run(["explain", "--model", model, "--prompt", prompt, "--continue", String(continuation), "--output", report])
        try #require(made.status == 0, "\(made.err)")
        let driver = try WebDriver()
        defer { driver.quit() }
        try driver.open(URL(fileURLWithPath: report))
        let ready = try driver.run("return document.body.dataset.ready") as? String
        try #require(ready == "yes", "the page did not finish drawing")
        let first = try driver.check()
        let (layers, heads) = (first["layers"] as! Int, first["heads"] as! Int)
        #expect(layers > 0 && heads > 0)
        #expect(first["gridMaps"] as? Int == layers * heads)
        #expect(first["lensRows"] as? Int == layers && first["normRows"] as? Int == layers + 1 && first["acrossRows"] as? Int == layers)
        let tokens = first["tokens"] as! Int
        #expect(first["lensCells"] as? Int == layers * tokens)
        #expect(first["drawn"] as? String == "0,0" && (first["coloredPixels"] as? Int ?? 0) > 0)

        // Pick the last layer and head from the selectors (clicking their options).
        try driver.click("#layer option[value='\(layers - 1)']")
        try driver.click("#head option[value='\(heads - 1)']")
        let picked = try driver.check()
        #expect(picked["drawn"] as? String == "\(layers - 1),\(heads - 1)")
        #expect((picked["coloredPixels"] as? Int ?? 0) > 0, "the heatmap is blank after switching")
        try driver.screenshot(to: Self.shots + "/\(name)-layer\(layers - 1)-head\(heads - 1).png")

        // A map from the grid of small multiples.
        let l = layers / 2, h = heads / 2
        try driver.click("#grid canvas[data-layer='\(l)'][data-head='\(h)']")
        let fromGrid = try driver.check()
        #expect(fromGrid["drawn"] as? String == "\(l),\(h)")
        #expect((fromGrid["coloredPixels"] as? Int ?? 0) > 0)
        // The first token as the chosen one: the across-layers table shrinks to one key column.
        try driver.click("#tokens .tok")
        let across = try driver.run("return document.querySelectorAll('#across tr:nth-child(2) td').length") as? Int
        #expect(across == 1)
        try driver.screenshot(to: Self.shots + "/\(name).png")
    }
}

/// Just enough of the W3C WebDriver protocol, over HTTP to a chromedriver it starts, to open a
/// page in headless Chromium, click, run scripts and take screenshots.
final class WebDriver {
    let process = Process()
    let port: Int
    var session = ""
    var browser: pid_t?

    init() throws {
        let driver = "/usr/bin/chromedriver", chromium = "/usr/bin/chromium"
        for path in [driver, chromium] where !FileManager.default.isExecutableFile(atPath: path) {
            throw WebDriverError("\(path) is missing: bash scripts/setup.sh installs chromium and chromium-driver")
        }
        port = try Self.freePort()             // each driver its own: two browser suites may run at once
        process.executableURL = URL(fileURLWithPath: driver)
        process.arguments = ["--port=\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while (try? request("GET", "status", nil)) == nil {      // until it listens
            guard Date() < deadline else { quit(); throw WebDriverError("chromedriver did not answer on port \(port) within 30 s") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100",
                    "--allow-file-access-from-files"]
        let caps: [String: Any] = ["capabilities": ["alwaysMatch": ["browserName": "chrome",
                                                                    "goog:chromeOptions": ["binary": chromium, "args": args]]]]
        let value: [String: Any]?
        do { value = try request("POST", "session", caps) as? [String: Any] } catch { quit(); throw error }
        guard let id = value?["sessionId"] as? String else { quit(); throw WebDriverError("no session: \(String(describing: value))") }
        session = id
        browser = ((value?["capabilities"] as? [String: Any])?["goog:processID"] as? Int).map { pid_t($0) }
    }

    /// A port nothing listens on now (the system picks it for a socket bound to port 0).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WebDriverError("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) == 0 && getsockname(fd, $0, &size) == 0 }
        }
        guard bound else { throw WebDriverError("no free port for chromedriver") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func open(_ url: URL) throws { _ = try request("POST", "session/\(session)/url", ["url": url.absoluteString]) }

    func run(_ script: String) throws -> Any? {
        try request("POST", "session/\(session)/execute/sync", ["script": script, "args": []])
    }

    /// What the page says it has drawn (its `explainCheck()`).
    func check() throws -> [String: Any] {
        guard let r = try run("return window.explainCheck()") as? [String: Any] else { throw WebDriverError("explainCheck() returned nothing") }
        return r
    }

    func click(_ css: String) throws {
        let found = try request("POST", "session/\(session)/element", ["using": "css selector", "value": css]) as? [String: Any]
        guard let id = found?.first(where: { $0.key.hasPrefix("element-") })?.value as? String else { throw WebDriverError("no element \(css)") }
        _ = try request("POST", "session/\(session)/element/\(id)/click", [:])
    }

    func screenshot(to path: String) throws {
        guard let b64 = try request("GET", "session/\(session)/screenshot", nil) as? String, let png = Data(base64Encoded: b64) else {
            throw WebDriverError("no screenshot")
        }
        try png.write(to: URL(fileURLWithPath: path))
    }

    /// Closes the browser (and, should chromedriver not answer within 10 s, kills it) and the driver.
    func quit() {
        if !session.isEmpty { _ = try? request("DELETE", "session/\(session)", nil, timeout: 10) }
        if let browser { kill(browser, SIGKILL) }
        // SIGKILL: a child of the test process may start with SIGTERM blocked (seen here).
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// One WebDriver call: JSON in, the reply's `value` out; a WebDriver error becomes a thrown one.
    func request(_ method: String, _ path: String, _ body: [String: Any]?, timeout: Int = 120) throws -> Any? {
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        let reply = try HTTP.exchange(port: port, method: method, path: "/" + path, body: payload, timeout: timeout)
        let object = try JSONSerialization.jsonObject(with: reply, options: [.fragmentsAllowed]) as? [String: Any]
        let value = object?["value"]
        if let v = value as? [String: Any], let error = v["error"] as? String {
            throw WebDriverError("\(method) \(path): \(error): \(v["message"] as? String ?? "")")
        }
        return value is NSNull ? nil : value
    }
}

/// HTTP/1.1 on a loopback socket, one request per connection (`Connection: close`), enough for
/// chromedriver: Foundation's URLSession on Linux fails on its replies ("Failed writing header").
enum HTTP {
    static func exchange(port: Int, method: String, path: String, body: Data, timeout seconds: Int) throws -> Data {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WebDriverError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw WebDriverError("connect to port \(port): \(String(cString: strerror(errno)))") }
        var request = Data("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n".utf8)
        request += Data("Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        try request.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw WebDriverError("send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        // Read until the reply is whole: its Content-Length, the last chunk, or the server closing.
        var reply = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        func complete() -> Bool {
            guard let split = reply.range(of: Data("\r\n\r\n".utf8)) else { return false }
            let headers = String(decoding: reply[..<split.lowerBound], as: UTF8.self).lowercased()
            if let line = headers.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
               let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
                return reply.count - split.upperBound >= length
            }
            return headers.contains("transfer-encoding: chunked") && reply.suffix(5) == Data("0\r\n\r\n".utf8)
        }
        while !complete() {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            guard n > 0 else { throw WebDriverError("\(method) \(path): no answer (\(String(cString: strerror(errno))))") }
            reply.append(contentsOf: buffer[0..<n])
        }
        guard let split = reply.range(of: Data("\r\n\r\n".utf8)) else { throw WebDriverError("\(method) \(path): a reply without headers") }
        let headers = String(decoding: reply[..<split.lowerBound], as: UTF8.self).lowercased()
        var content = Data(reply[split.upperBound...])
        if headers.contains("transfer-encoding: chunked") {                 // size line, bytes, CRLF, … 0
            var out = Data(), rest = content[...]
            while let line = rest.range(of: Data("\r\n".utf8)),
                  let size = Int(String(decoding: rest[..<line.lowerBound], as: UTF8.self).trimmingCharacters(in: .whitespaces), radix: 16), size > 0 {
                let start = line.upperBound
                out += rest[start..<(start + size)]
                rest = rest[(start + size + 2)...]
            }
            content = out
        }
        return content
    }
}

struct WebDriverError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
