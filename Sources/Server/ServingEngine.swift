import Foundation
import Inference
import Models
import Tensors
import Tokenization

/// The one loop that owns the model. HTTP handlers only `submit` jobs and read the events of
/// their stream; the loop, on its own thread, admits waiting jobs into the batch (up to
/// `parallel` sequences), runs one batched forward pass per step for every active sequence
/// (`BatchGenerator`: prompt chunks for new ones, one token for the others), turns each new token
/// into text (`TextStream`: stop strings held back, then cut) and posts it to its stream, which
/// receives a request's events in bunches (`EventOutbox`: at most every `streamInterval` seconds,
/// first tokens and endings at once).
/// A job whose reader goes away (the client disconnected) is cancelled before the next step
/// and its cache freed.
public final class ServingEngine: @unchecked Sendable {
    public let loaded: LoadedModel
    /// Sequences generated together, at most.
    public let parallel: Int
    /// Jobs waiting for a place in the batch, at most; more are refused (`EngineError.queueFull`).
    public let maxQueue: Int
    /// Tokens (prompt + generated) one sequence may hold.
    public let context: Int
    public let metrics = ServerMetrics()
    private let generator: BatchGenerator
    private let outbox: EventOutbox

    /// What one sequence is asked for.
    public struct Job: @unchecked Sendable {   // the sampler's generator is used by the engine's thread only
        public var prompt: [Int32]
        public var maxTokens: Int
        public var sampler: Sampler
        public var stops: [String]
        /// nil: no log-probabilities; k: the chosen token's and the k most likely.
        public var logprobs: Int?
        public init(prompt: [Int32], maxTokens: Int, sampler: Sampler, stops: [String], logprobs: Int?) {
            self.prompt = prompt; self.maxTokens = maxTokens; self.sampler = sampler; self.stops = stops; self.logprobs = logprobs
        }
    }

    /// A generated token: its id, the text that became final with it (often all of its text;
    /// "" while a possible stop string or an incomplete character waits), and with `logprobs`
    /// its log-probability and the most likely alternatives.
    public struct Token: Sendable {
        public let id: Int32
        public let text: String
        public let logprob: Float?
        public let top: [BatchGenerator.TokenLogprob]
    }

    public enum Finish: String, Sendable { case stop, length, cancelled }

    public enum Event: Sendable {
        /// A token of choice `choice`.
        case token(choice: Int, Token)
        /// Choice `choice` ended: `tail` is text released at the end (held back until then).
        case done(choice: Int, reason: Finish, tail: String, promptTokens: Int, completionTokens: Int)
        /// Choice `choice` could not run (the model refused its input).
        case failed(choice: Int, message: String)
    }

    public enum EngineError: Error, Equatable {
        case queueFull(waiting: Int)
        case stopped
    }

    /// A submitted job on its way through the engine.
    final class Entry {
        let group: UInt64
        let choice: Int
        let job: Job
        var stream: TextStream
        var generated = 0
        var sequence: Int?
        let submitted = Date()
        var firstToken: Date?
        init(group: UInt64, choice: Int, job: Job, stream: TextStream) {
            self.group = group; self.choice = choice; self.job = job; self.stream = stream
        }
    }

    private let lock = NSCondition()
    private var waiting: [Entry] = []                // guarded by lock
    private var cancelledGroups: Set<UInt64> = []    // guarded by lock
    private var openChoices: [UInt64: Int] = [:]     // guarded by lock: choices of a group not yet done
    private var stopping = false                     // guarded by lock
    private var nextGroup: UInt64 = 0                // guarded by lock
    private var running: [Int: Entry] = [:]          // the loop's own: sequence id → entry
    private var thread: Thread?

    /// `streamInterval`: the longest a generated token waits to be handed to its request's stream
    /// together with the next ones (seconds, 0…3600; 0 hands over every token on its own).
    public init(loaded: LoadedModel, parallel: Int, maxQueue: Int, context: Int? = nil, prefillChunk: Int = 256,
                streamInterval: Double = ServingEngine.defaultStreamInterval) {
        self.loaded = loaded
        self.parallel = parallel
        self.maxQueue = maxQueue
        self.context = min(context ?? loaded.model.contextLength, loaded.model.contextLength)
        generator = BatchGenerator(model: loaded.model, prefillChunk: prefillChunk, cacheCapacity: self.context)
        outbox = EventOutbox(interval: streamInterval)
    }

    /// Seconds a streamed token may wait for the next ones (`llm serve --stream-interval-ms`).
    public static let defaultStreamInterval = 0.05

    /// Starts the loop's thread.
    public func start() {
        lock.lock(); defer { lock.unlock() }
        guard thread == nil else { return }
        let t = Thread { self.loop() }                 // the thread keeps the engine until its loop ends (after shutdown)
        t.name = "llm-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Stops taking jobs: waiting ones are cancelled, running ones finish; the loop then ends.
    public func shutdown() {
        lock.lock()
        stopping = true
        let dropped = waiting
        waiting = []
        lock.broadcast()
        lock.unlock()
        for e in dropped { finishEntry(e, reason: .cancelled) }
        outbox.flush()
    }

    /// Submits the choices of one request (n choices, or several prompts): one stream carries the
    /// events of all of them, in bunches (each element: the events handed over together, in order),
    /// and ends when the last is done. Refused when the queue cannot take them all. Ending the
    /// stream early (the reader is gone) cancels every choice.
    public func submit(_ jobs: [Job]) throws -> (group: UInt64, events: AsyncStream<[Event]>) {
        let (stream, continuation) = AsyncStream<[Event]>.makeStream(bufferingPolicy: .unbounded)
        let texts = try jobs.map { try loaded.textStream(stops: $0.stops) }
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { throw EngineError.stopped }
        guard waiting.count + jobs.count <= maxQueue else { throw EngineError.queueFull(waiting: waiting.count) }
        let group = nextGroup
        nextGroup += 1
        openChoices[group] = jobs.count
        outbox.open(group, continuation)
        for (i, (job, text)) in zip(jobs, texts).enumerated() {
            waiting.append(Entry(group: group, choice: i, job: job, stream: text))
        }
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel(group: group) }
        }
        metrics.queued(waiting.count)
        lock.signal()
        return (group, stream)
    }

    /// Cancels a request's choices: waiting ones at once, running ones before the next step.
    public func cancel(group: UInt64) {
        lock.lock()
        guard openChoices[group] != nil else { lock.unlock(); return }
        let dropped = waiting.filter { $0.group == group }
        waiting.removeAll { $0.group == group }
        cancelledGroups.insert(group)
        metrics.queued(waiting.count)
        lock.signal()
        lock.unlock()
        for e in dropped { finishEntry(e, reason: .cancelled) }
        outbox.flush()
    }

    /// Jobs waiting and sequences running (for /health and /metrics).
    public var load: (waiting: Int, running: Int) {
        lock.lock(); defer { lock.unlock() }
        return (waiting.count, runningCount)
    }
    private var runningCount = 0                     // guarded by lock: running.count, for other threads

    private func loop() {
        while true {
            outbox.flush()                             // this step's events (and any failure's), before waiting
            lock.lock()
            while waiting.isEmpty && running.isEmpty && cancelledGroups.isEmpty && !stopping { lock.wait() }
            if stopping && running.isEmpty && waiting.isEmpty { lock.unlock(); return }
            let cancelled = cancelledGroups
            cancelledGroups = []
            var admitted: [Entry] = []
            while running.count + admitted.count < parallel, !waiting.isEmpty { admitted.append(waiting.removeFirst()) }
            metrics.queued(waiting.count)
            lock.unlock()

            for (sequence, e) in running where cancelled.contains(e.group) {
                generator.remove(sequence)
                running[sequence] = nil
                finishEntry(e, reason: .cancelled)
            }
            for e in admitted {
                do {
                    let request = BatchGenerator.Request(prompt: e.job.prompt, maxNewTokens: e.job.maxTokens, sampler: e.job.sampler,
                                                         stopIds: loaded.stopIds, logprobs: e.job.logprobs)
                    let id = try generator.add(request)
                    e.sequence = id
                    running[id] = e
                    metrics.prompt(tokens: e.job.prompt.count)
                } catch {
                    outbox.post(e.group, .failed(choice: e.choice, message: "\(error)"))
                    choiceDone(e)
                }
            }
            setRunning(running.count)
            guard !running.isEmpty else { continue }

            let started = Date()
            let events: [BatchGenerator.Event]
            do { events = try generator.step() } catch {
                // Inputs are checked before they join, so this is the model failing: every running
                // choice ends with the message, and the engine goes on with the next requests.
                for (sequence, e) in running {
                    generator.remove(sequence)
                    outbox.post(e.group, .failed(choice: e.choice, message: "\(error)"))
                    choiceDone(e)
                }
                running = [:]
                setRunning(0)
                continue
            }
            var produced = 0
            for event in events {
                guard let e = running[event.id] else { continue }
                if let id = event.token {
                    produced += 1
                    e.generated += 1
                    if e.firstToken == nil { e.firstToken = Date(); metrics.firstToken(seconds: e.firstToken!.timeIntervalSince(e.submitted)) }
                    let text = e.stream.push(id)
                    outbox.post(e.group, .token(choice: e.choice, Token(id: id, text: text, logprob: event.logprob, top: event.top)))
                    if e.stream.stopped {                          // a stop string: the text before it was the last
                        generator.remove(event.id)
                        running[event.id] = nil
                        finishEntry(e, reason: .stop)
                        continue
                    }
                }
                if let reason = event.finished {
                    running[event.id] = nil
                    finishEntry(e, reason: reason == .length ? .length : .stop)
                }
            }
            metrics.generated(tokens: produced, seconds: Date().timeIntervalSince(started))
            setRunning(running.count)
        }
    }

    private func setRunning(_ n: Int) {
        lock.lock(); runningCount = n; lock.unlock()
        metrics.running(n)
    }

    /// The last event of a choice (its held-back text, unless cut by a stop string or cancelled).
    private func finishEntry(_ e: Entry, reason: Finish) {
        let tail = reason == .cancelled ? "" : e.stream.finish()
        outbox.post(e.group, .done(choice: e.choice, reason: reason, tail: tail, promptTokens: e.job.prompt.count, completionTokens: e.generated))
        choiceDone(e)
    }

    /// Ends the group's stream when its last choice is done.
    private func choiceDone(_ e: Entry) {
        lock.lock()
        let left = (openChoices[e.group] ?? 1) - 1
        if left == 0 { openChoices[e.group] = nil } else { openChoices[e.group] = left }
        lock.unlock()
        if left == 0 { outbox.close(e.group) }
    }
}
