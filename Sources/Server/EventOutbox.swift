import Dispatch
import Foundation

/// Where the engine's events wait on their way to each request's stream, so that they are handed
/// over in bunches rather than one by one.
///
/// Every hand-off wakes the request's handler task and then an HTTP thread to write it: with 8
/// streams that is 16 wake-ups per decoding step, and on a machine whose cores all compute, each
/// one preempts a compute thread while the others wait for it at the next barrier. So a request's
/// tokens are gathered and handed over together at most every `interval` seconds (one element of
/// its stream, one write), while the events that someone waits for go at once: the first token
/// of a request (time to first token is unchanged), the end of a choice and a failure.
///
/// Thread-safe: the engine's loop posts and flushes; `cancel` and `shutdown` post from any thread.
final class EventOutbox: @unchecked Sendable {
    typealias Event = ServingEngine.Event

    /// Longest a generated token waits before it is handed over (seconds; 0: every token at once).
    let interval: Double

    private struct Box {
        let continuation: AsyncStream<[Event]>.Continuation
        var events: [Event] = []
        var lastHandedOver: UInt64?      // uptime in ns; nil before the first hand-off
        var urgent = false               // hand over at the next flush, due or not
        var closing = false              // finish the stream after its events
    }

    private let lock = NSLock()
    private var boxes: [UInt64: Box] = [:]       // guarded by lock: request group → its waiting events

    init(interval: Double) {
        precondition(interval >= 0 && interval <= 3600, "EventOutbox: the interval must be 0…3600 seconds, got \(interval)")
        self.interval = interval
    }

    /// A new request's stream.
    func open(_ group: UInt64, _ continuation: AsyncStream<[Event]>.Continuation) {
        lock.lock(); defer { lock.unlock() }
        boxes[group] = Box(continuation: continuation)
    }

    /// Queues an event of the request. Tokens wait for the next due flush, except the request's
    /// first; `.done` and `.failed` make the whole box go at the next flush.
    func post(_ group: UInt64, _ event: Event) {
        lock.lock(); defer { lock.unlock() }
        guard var box = boxes[group] else { return }
        box.events.append(event)
        if case .token = event { if box.lastHandedOver == nil { box.urgent = true } } else { box.urgent = true }
        boxes[group] = box
    }

    /// Ends the request's stream once its queued events are handed over (at the next flush).
    func close(_ group: UInt64) {
        lock.lock(); defer { lock.unlock() }
        boxes[group]?.closing = true
        boxes[group]?.urgent = true
    }

    /// Hands over every box that is urgent or whose oldest waiting token has waited `interval`
    /// (counted from the box's last hand-off, which is at most that long ago).
    func flush() {
        let now = DispatchTime.now().uptimeNanoseconds
        let due = UInt64(interval * 1e9)
        lock.lock(); defer { lock.unlock() }
        for (group, var box) in boxes where !box.events.isEmpty || box.closing {
            let waited = box.lastHandedOver.map { now &- $0 } ?? .max
            guard box.urgent || waited >= due else { continue }
            if !box.events.isEmpty { box.continuation.yield(box.events) }
            if box.closing {
                box.continuation.finish()
                boxes[group] = nil
                continue
            }
            box.events.removeAll(keepingCapacity: true)
            box.urgent = false
            box.lastHandedOver = now
            boxes[group] = box
        }
    }
}
