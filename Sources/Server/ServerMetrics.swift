import Foundation

/// Counters for `GET /metrics`, written in Prometheus' text exposition format by hand (a few
/// counters and gauges need no library): requests by route and status, prompt and generated
/// tokens, queue depth, running sequences, generation speed and time to first token.
public final class ServerMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [String: Int] = [:]          // "route|status" → count
    private var promptTokens = 0, generatedTokens = 0
    private var waiting = 0, active = 0
    private var stepSeconds = 0.0
    /// Tokens per second over the last few seconds of stepping.
    private var recent: [(at: Date, tokens: Int)] = []
    private var firstTokenSeconds = 0.0, firstTokenCount = 0
    private let started = Date()

    func queued(_ n: Int) { lock.withLock { waiting = n } }
    func running(_ n: Int) { lock.withLock { active = n } }
    func prompt(tokens: Int) { lock.withLock { promptTokens += tokens } }
    func firstToken(seconds: Double) { lock.withLock { firstTokenSeconds += seconds; firstTokenCount += 1 } }

    func generated(tokens: Int, seconds: Double) {
        lock.withLock {
            generatedTokens += tokens
            stepSeconds += seconds
            let now = Date()
            recent.append((now, tokens))
            recent.removeAll { now.timeIntervalSince($0.at) > 10 }
        }
    }

    /// One finished HTTP request.
    public func request(route: String, status: Int) {
        lock.withLock { requests["\(route)|\(status)", default: 0] += 1 }
    }

    /// Generated tokens per second over the last 10 seconds.
    public var tokensPerSecond: Double {
        lock.withLock {
            guard let first = recent.first else { return 0 }
            let span = max(Date().timeIntervalSince(first.at), 1)
            return Double(recent.reduce(0) { $0 + $1.tokens }) / span
        }
    }

    public func exposition() -> String {
        let tps = tokensPerSecond
        return lock.withLock {
            var out = ""
            func metric(_ name: String, _ type: String, _ help: String, _ lines: [String]) {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" + lines.map { $0 + "\n" }.joined()
            }
            metric("llm_requests_total", "counter", "HTTP requests by route and status.",
                   requests.keys.sorted().map { key in
                       let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
                       return "llm_requests_total{route=\"\(parts[0])\",status=\"\(parts[1])\"} \(requests[key]!)"
                   })
            metric("llm_prompt_tokens_total", "counter", "Prompt tokens read.", ["llm_prompt_tokens_total \(promptTokens)"])
            metric("llm_generated_tokens_total", "counter", "Tokens generated.", ["llm_generated_tokens_total \(generatedTokens)"])
            metric("llm_queue_depth", "gauge", "Requests waiting for a place in the batch.", ["llm_queue_depth \(waiting)"])
            metric("llm_running_sequences", "gauge", "Sequences in the batch.", ["llm_running_sequences \(active)"])
            metric("llm_tokens_per_second", "gauge", "Generated tokens per second over the last 10 seconds.",
                   ["llm_tokens_per_second \(String(format: "%.2f", tps))"])
            metric("llm_step_seconds_total", "counter", "Seconds spent in batched forward passes.",
                   ["llm_step_seconds_total \(String(format: "%.3f", stepSeconds))"])
            metric("llm_time_to_first_token_seconds", "summary", "From submission to the first generated token.",
                   ["llm_time_to_first_token_seconds_sum \(String(format: "%.3f", firstTokenSeconds))",
                    "llm_time_to_first_token_seconds_count \(firstTokenCount)"])
            metric("llm_uptime_seconds", "gauge", "Seconds since the server started.",
                   ["llm_uptime_seconds \(String(format: "%.0f", Date().timeIntervalSince(started)))"])
            return out
        }
    }
}
