import Tokenization

/// Generated ids → text as it becomes final, for streaming to a terminal or a client:
/// incomplete UTF-8 characters wait for their last byte (`StreamingDecoder`), and a tail that
/// could still grow into one of the stop strings is held back. When a stop string appears, the
/// text before it is the last piece and `stopped` becomes true.
public struct TextStream {
    private var decoder: StreamingDecoder?
    private let chars: CharTokenizer?
    public let stops: [String]
    private let holdBack: Int
    private var pending = ""
    public private(set) var stopped = false
    /// The stop string that ended the text, if one did.
    public private(set) var stoppedBy: String?

    public init(tokenizer: any TextTokenizer, stops: [String] = []) {
        decoder = StreamingDecoder(tokenizer)
        chars = nil
        self.stops = stops.filter { !$0.isEmpty }
        holdBack = max(0, (self.stops.map(\.count).max() ?? 0) - 1)
    }

    public init(chars: CharTokenizer, stops: [String] = []) {
        decoder = nil
        self.chars = chars
        self.stops = stops.filter { !$0.isEmpty }
        holdBack = max(0, (self.stops.map(\.count).max() ?? 0) - 1)
    }

    /// The text that can be shown now that `id` has been generated ("" while it waits).
    public mutating func push(_ id: Int32) -> String {
        guard !stopped else { return "" }
        if let chars { pending += (try? chars.decode([UInt32(bitPattern: id)])) ?? "" } else { pending += (try? decoder!.push(UInt32(bitPattern: id))) ?? "" }
        return release()
    }

    /// Whatever is still held back (nothing after a stop string).
    public mutating func finish() -> String {
        guard !stopped else { return "" }
        if decoder != nil { pending += decoder!.finish() }
        if let hit = stops.compactMap({ s in pending.range(of: s).map { (s, $0) } }).min(by: { $0.1.lowerBound < $1.1.lowerBound }) {
            stopped = true
            stoppedBy = hit.0
            return String(pending[..<hit.1.lowerBound])
        }
        defer { pending = "" }
        return pending
    }

    private mutating func release() -> String {
        if let hit = stops.compactMap({ s in pending.range(of: s).map { (s, $0) } }).min(by: { $0.1.lowerBound < $1.1.lowerBound }) {
            stopped = true
            stoppedBy = hit.0
            let out = String(pending[..<hit.1.lowerBound])
            pending = ""
            return out
        }
        guard pending.count > holdBack else { return "" }
        let cut = pending.index(pending.endIndex, offsetBy: -holdBack)
        defer { pending = String(pending[cut...]) }
        return String(pending[..<cut])
    }
}
