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
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        self.count = count
        owner = nil
    }

    /// Fresh memory, left uninitialized: for kernels that write every element.
    public init(uninitializedCount count: Int) {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
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
        if owner == nil { UnsafeMutableRawPointer(pointer).deallocate() }
    }
}
