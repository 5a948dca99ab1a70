import Foundation

/// One text and its label, as read.
public struct LabeledText: Sendable, Equatable {
    public var text: String
    public var label: String
    public var source: String
    public init(text: String, label: String, source: String) { self.text = text; self.label = label; self.source = source }
}

/// Reads classification data:
///   .csv / .tsv  a header naming `text` and `label` columns (others ignored); fields may be
///                quoted ("…", "" for a quote, newlines inside quotes) as RFC 4180 writes them.
///                A headerless file (the UCI SMS collection: label TAB text) with `columns`,
///                e.g. ["label", "text"].
///   .jsonl       {"text", "label"} per line (label a string or a number).
/// Errors name the file, the line and what is missing.
public enum ClassificationData {
    public static func read(_ path: String, columns: [String]? = nil) throws -> [LabeledText] {
        let text = try utf8Text(try readFile(path), source: path)
        var out: [LabeledText] = []
        if path.lowercased().hasSuffix(".jsonl") || path.lowercased().hasSuffix(".json") {
            for (source, r) in try InstructionData.records(path) {
                guard let t = r["text"] as? String else { throw TrainingError.file(source, "missing string field \"text\"") }
                guard let l = r["label"] else { throw TrainingError.file(source, "missing field \"label\"") }
                let label: String
                if let s = l as? String { label = s } else if let n = l as? NSNumber { label = n.stringValue } else {
                    throw TrainingError.file(source, "field \"label\" must be a string or a number")
                }
                guard !t.isEmpty else { throw TrainingError.file(source, "field \"text\" is empty") }
                out.append(LabeledText(text: t, label: label, source: source))
            }
        } else {
            let separator: Character = path.lowercased().hasSuffix(".csv") ? "," : "\t"
            var rows = try parseDelimited(text, separator: separator, path: path)
            let header: [String]
            if let columns {
                header = columns
            } else {
                guard let first = rows.first else { throw TrainingError.file(path, "is empty") }
                header = first.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                rows.removeFirst()
            }
            guard let ti = header.firstIndex(of: "text") else {
                throw TrainingError.file("\(path):1", "no \"text\" column (columns: \(header.joined(separator: ", "))); a headerless file needs --columns, e.g. label,text")
            }
            guard let li = header.firstIndex(of: "label") else {
                throw TrainingError.file("\(path):1", "no \"label\" column (columns: \(header.joined(separator: ", "))); a headerless file needs --columns, e.g. label,text")
            }
            for row in rows {
                if row.fields.count == 1 && row.fields[0].isEmpty { continue }     // blank line
                let source = "\(path):\(row.line)"
                guard row.fields.count > max(ti, li) else {
                    throw TrainingError.file(source, "\(row.fields.count) field(s), expected at least \(max(ti, li) + 1) (text in column \(ti + 1), label in column \(li + 1))")
                }
                let label = row.fields[li].trimmingCharacters(in: .whitespaces)
                guard !label.isEmpty else { throw TrainingError.file(source, "empty label") }
                guard !row.fields[ti].isEmpty else { throw TrainingError.file(source, "empty text") }
                out.append(LabeledText(text: row.fields[ti], label: label, source: source))
            }
        }
        guard !out.isEmpty else { throw TrainingError.file(path, "holds no examples") }
        return out
    }

    /// Rows of fields, each with the line it starts on. Quoted fields may hold separators,
    /// doubled quotes and newlines; a quote inside an unquoted field is an ordinary character.
    static func parseDelimited(_ text: String, separator: Character, path: String) throws -> [(line: Int, fields: [String])] {
        var rows: [(Int, [String])] = []
        var fields: [String] = [], field = "", line = 1, rowLine = 1
        var quoted = false, atFieldStart = true, closedQuote = false
        var it = text.makeIterator()
        var pending: Character? = nil
        func endRow() { fields.append(field); rows.append((rowLine, fields)); fields = []; field = ""; atFieldStart = true; closedQuote = false }
        while let c = pending ?? it.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = it.next() {
                        if n == "\"" { field.append("\"") } else { quoted = false; closedQuote = true; pending = n }
                    } else { quoted = false; closedQuote = true }
                } else {
                    if c == "\n" || c == "\r\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            if c == separator { fields.append(field); field = ""; atFieldStart = true; closedQuote = false; continue }
            if c == "\n" || c == "\r\n" { endRow(); line += 1; rowLine = line; continue }
            if c == "\r" { continue }
            if c == "\"" && atFieldStart { quoted = true; atFieldStart = false; continue }
            if closedQuote { throw TrainingError.file("\(path):\(line)", "text after a closing quote (a quote inside a quoted field is written \"\")") }
            atFieldStart = false
            field.append(c)
        }
        if quoted { throw TrainingError.file("\(path):\(rowLine)", "a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRow() }
        return rows
    }
}
