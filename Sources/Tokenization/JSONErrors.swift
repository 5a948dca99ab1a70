import Foundation

/// A JSON reading error as one short line that says where: the line and column for text that is
/// not JSON, the field's path (`rope_scaling.factor`, `merges[3]`) for a value of the wrong kind.
/// `data` is what was read (Foundation's decoder gives no position for a syntax error; its
/// serializer does, as a character offset, turned here into a line and column).
public func describeJSONError(_ error: Error, in data: Data) -> String {
    func path(_ keys: [CodingKey]) -> String {
        keys.reduce("") { s, k in k.intValue.map { s + "[\($0)]" } ?? (s.isEmpty ? k.stringValue : s + "." + k.stringValue) }
    }
    switch error as? DecodingError {
    case let .typeMismatch(type, c)?: return "field \(path(c.codingPath)): expected \(type) (\(c.debugDescription))"
    case let .valueNotFound(type, c)?: return "field \(path(c.codingPath)): expected \(type), found null"
    case let .keyNotFound(key, c)?: return "field \(path(c.codingPath + [key])) is missing"
    case let .dataCorrupted(c)? where !c.codingPath.isEmpty: return "field \(path(c.codingPath)): \(c.debugDescription)"
    default: return jsonSyntaxError(data) ?? "\(error)"
    }
}

/// "not JSON at line 2, column 7 (…)" from the serializer's message, or nil when it parses.
public func jsonSyntaxError(_ data: Data) -> String? {
    do { _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]); return nil } catch {
        let message = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
        guard let r = message.range(of: #"character (\d+)"#, options: .regularExpression),
              let offset = Int(message[r].dropFirst("character ".count)) else { return "not JSON (\(message))" }
        // The serializer counts bytes of UTF-8 (after a BOM, if any); lines and columns from them.
        let prefix = data.prefix(offset)
        let line = prefix.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        let column = offset - (prefix.lastIndex(of: 0x0A).map { $0 - data.startIndex + 1 } ?? 0) + 1
        return "not JSON at line \(line), column \(column), byte \(offset) (\(message))"
    }
}
