@testable import Server
import Testing

/// How the engine's events reach a request's stream: the first token and endings at once, later
/// tokens gathered until `interval` has passed, every event exactly once and in order, the stream
/// finished after its last events.
@Suite struct EventOutboxTests {
    typealias Event = ServingEngine.Event

    static func token(_ id: Int32) -> Event {
        .token(choice: 0, ServingEngine.Token(id: id, text: "t\(id)", logprob: nil, top: []))
    }

    /// The ids (token events) and -1 (an ending) of each element the stream received.
    static func received(_ stream: AsyncStream<[Event]>) async -> [[Int32]] {
        var got: [[Int32]] = []
        for await bunch in stream {
            got.append(bunch.map { if case let .token(_, t) = $0 { return t.id } else { return -1 } })
        }
        return got
    }

    @Test func laterTokensWaitForTheIntervalFirstTokenAndEndingGoAtOnce() async {
        let outbox = EventOutbox(interval: 3600)
        let (stream, continuation) = AsyncStream<[Event]>.makeStream(bufferingPolicy: .unbounded)
        outbox.open(7, continuation)
        outbox.post(7, Self.token(1))
        outbox.flush()                                   // the first token: at once
        outbox.post(7, Self.token(2))
        outbox.post(7, Self.token(3))
        outbox.flush()                                   // not due: they wait
        outbox.post(7, Self.token(4))
        outbox.post(7, .done(choice: 0, reason: .length, tail: "", promptTokens: 1, completionTokens: 4))
        outbox.flush()                                   // an ending: everything waiting goes
        outbox.close(7)
        outbox.flush()                                   // then the stream ends
        #expect(await Self.received(stream) == [[1], [2, 3, 4, -1]])
    }

    @Test func zeroIntervalHandsOverAtEveryFlush() async {
        let outbox = EventOutbox(interval: 0)
        let (stream, continuation) = AsyncStream<[Event]>.makeStream(bufferingPolicy: .unbounded)
        outbox.open(1, continuation)
        for id in Int32(1)...3 {
            outbox.post(1, Self.token(id))
            outbox.flush()
        }
        outbox.post(1, .failed(choice: 0, message: "x"))
        outbox.close(1)
        outbox.flush()
        #expect(await Self.received(stream) == [[1], [2], [3], [-1]])
    }

    @Test func requestsAreKeptApartAndClosingHandsOverWhatWaits() async {
        let outbox = EventOutbox(interval: 3600)
        let (a, ca) = AsyncStream<[Event]>.makeStream(bufferingPolicy: .unbounded)
        let (b, cb) = AsyncStream<[Event]>.makeStream(bufferingPolicy: .unbounded)
        outbox.open(1, ca)
        outbox.open(2, cb)
        outbox.post(1, Self.token(10)); outbox.post(2, Self.token(20))
        outbox.flush()
        outbox.post(1, Self.token(11)); outbox.post(2, Self.token(21)); outbox.post(2, Self.token(22))
        outbox.close(1)                                  // a closed request's waiting tokens still arrive
        outbox.flush()
        outbox.post(1, Self.token(12))                   // after its end: dropped
        outbox.close(2)                                  // its waiting tokens go with the end
        outbox.flush()
        #expect(await Self.received(a) == [[10], [11]])
        #expect(await Self.received(b) == [[20], [21, 22]])
    }
}
