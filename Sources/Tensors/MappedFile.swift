#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file memory-mapped read-only. Model weights point into it and stay on disk until used:
/// the operating system pages them in on first touch and may drop them under memory pressure, so
/// a 100 MB model costs no copy and no load time. Unmapped when the last owner goes away.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawPointer
    public let count: Int

    public enum Failure: Error, CustomStringConvertible {
        case cannotOpen(String, String)
        public var description: String {
            switch self { case let .cannotOpen(path, why): return "\(path): cannot open: \(why)" }
        }
    }

    public init(path: String) throws(Failure) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path, String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(path, "not a regular file") }
        count = Int(st.st_size)
        if count == 0 {
            bytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            return
        }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .cannotOpen(path, "mmap failed: " + String(cString: strerror(errno)))
        }
        bytes = UnsafeRawPointer(p)
    }

    deinit {
        if count == 0 { UnsafeMutableRawPointer(mutating: bytes).deallocate() } else { munmap(UnsafeMutableRawPointer(mutating: bytes), count) }
    }
}
