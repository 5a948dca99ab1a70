/// A block of Float32 memory that tensors point into.
///
/// A storage either owns its memory (allocated 64-byte aligned, freed on deinit) or is a window into
/// another storage's memory, which it keeps alive through `owner`. Windows let many parameters or
/// gradients live in one flat buffer (for an all-reduce, say) while each keeps its own tensor.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let owner: AnyObject?

    /// Fresh memory, zero-filled.
    public init(count: Int) {
        precondition(count >= 0, "Storage: negative size \(count)")
        pointer = BufferCache.shared.take(count)
        pointer.update(repeating: 0, count: max(count, 1))
        self.count = count
        owner = nil
    }

    /// Fresh memory, left uninitialized: for kernels that write every element.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "Storage: negative size \(count)")
        pointer = BufferCache.shared.take(count)
        self.count = count
        owner = nil
    }

    /// A window of `count` floats starting at `offset` inside `parent`.
    public init(window parent: Storage, offset: Int, count: Int) {
        precondition(offset >= 0 && offset + count <= parent.count,
                     "Storage: window \(offset)..<\(offset + count) outside \(parent.count) floats")
        pointer = parent.pointer + offset
        self.count = count
        owner = parent
    }

    /// Memory that someone else owns (e.g. a memory-mapped file) and keeps alive through `owner`.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
    }

    deinit {
        if owner == nil { BufferCache.shared.give(pointer, count) }
    }
}

/// Keeps freed buffers by exact size for the next request of that size. A training step allocates
/// the same sizes every time; reusing them skips the page faults and zeroing that fresh pages cost.
/// Small buffers go straight to malloc; the cache holds at most `limit` bytes.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()
    private let lock = Mutex<Void>(())
    private nonisolated(unsafe) var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private nonisolated(unsafe) var cachedBytes = 0
    let limit = 2 << 30
    static let minimumCount = 1 << 14          // 64 KiB and up

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count >= Self.minimumCount {
            let hit: UnsafeMutablePointer<Float>? = lock.withLock { _ in
                guard let p = free[count]?.popLast() else { return nil }
                cachedBytes -= count * 4
                return p
            }
            if let hit { return hit }
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    func give(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= Self.minimumCount {
            let kept = lock.withLock { _ -> Bool in
                guard cachedBytes + count * 4 <= limit else { return false }
                free[count, default: []].append(p)
                cachedBytes += count * 4
                return true
            }
            if kept { return }
        }
        UnsafeMutableRawPointer(p).deallocate()
    }
}

import Synchronization
