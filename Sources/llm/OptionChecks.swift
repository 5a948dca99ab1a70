import Foundation

// Checks for option values. Every command checks its options in `validate()`, which the argument
// parser runs before `run()`, so no work starts (and no file is written) on a bad value. A failure
// is one line naming the option, the value given and what is allowed:
//
//     error: --top-p must be in (0, 1], got 2
//
// Sizes also have an upper limit where a huge value would only end in an allocation the machine
// cannot make (a context of 10¹² tokens): the limit is in the message.

/// The largest size any count option takes (tokens, rows, steps of a loop that allocates per step).
let largestCount = 1 << 40

/// `n` > 0 (and ≤ `max`).
func positive(_ n: Int?, _ option: String, max: Int = largestCount) throws {
    guard let n else { return }
    guard n > 0 else { throw CLIError("\(option) must be positive, got \(n)") }
    guard n <= max else { throw CLIError("\(option) must be at most \(grouped(max)), got \(grouped(n))") }
}

/// `n` ≥ `min` (and ≤ `max`); `zero` says what 0 means when it is allowed ("never").
func atLeast(_ min: Int, _ n: Int?, _ option: String, max: Int = largestCount, zero: String? = nil) throws {
    guard let n else { return }
    guard n >= min else {
        throw CLIError("\(option) must be \(min == 0 ? "0 (\(zero ?? "none")) or more" : "at least \(min)"), got \(n)")
    }
    guard n <= max else { throw CLIError("\(option) must be at most \(grouped(max)), got \(grouped(n))") }
}

/// A finite number > 0 (and ≤ `max`).
func positive<F: BinaryFloatingPoint>(_ x: F?, _ option: String, max: F? = nil) throws where F: LosslessStringConvertible {
    guard let x else { return }
    guard x.isFinite, x > 0 else { throw CLIError("\(option) must be a positive number, got \(shown(x))") }
    if let max, x > max { throw CLIError("\(option) must be at most \(shown(max)), got \(shown(x))") }
}

/// A finite number ≥ 0 (and ≤ `max`).
func nonNegative<F: BinaryFloatingPoint>(_ x: F?, _ option: String, max: F? = nil) throws where F: LosslessStringConvertible {
    guard let x else { return }
    guard x.isFinite, x >= 0 else { throw CLIError("\(option) must be a number ≥ 0, got \(shown(x))") }
    if let max, x > max { throw CLIError("\(option) must be at most \(shown(max)), got \(shown(x))") }
}

/// A number in an interval of [0, 1]: `[0, 1)`, `(0, 1]`, … as the brackets say.
func fraction<F: BinaryFloatingPoint>(_ x: F?, _ option: String, openBelow: Bool, openAbove: Bool) throws where F: LosslessStringConvertible {
    guard let x else { return }
    let inside = x.isFinite && (openBelow ? x > 0 : x >= 0) && (openAbove ? x < 1 : x <= 1)
    guard inside else { throw CLIError("\(option) must be in \(openBelow ? "(" : "[")0, 1\(openAbove ? ")" : "]"), got \(shown(x))") }
}

/// A number as the user would write it: 2 rather than 2.0, 0.9, nan, inf.
func shown<F: BinaryFloatingPoint>(_ x: F) -> String where F: LosslessStringConvertible {
    x.isFinite && x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
}

/// One of the words `allowed`.
func oneOf(_ value: String?, _ option: String, _ allowed: [String]) throws {
    guard let value else { return }
    guard allowed.contains(value) else {
        let choices = allowed.count == 1 ? allowed[0] : allowed.dropLast().joined(separator: ", ") + " or " + allowed.last!
        throw CLIError("\(option) must be \(choices), got \(value.isEmpty ? "''" : value)")
    }
}

/// Text that may not be empty.
func nonEmpty(_ value: String?, _ option: String) throws {
    guard let value else { return }
    guard !value.isEmpty else { throw CLIError("\(option) must not be empty") }
}

/// What a path option expects to find.
enum PathKind: String { case file = "a file", folder = "a folder", fileOrFolder = "a file or a folder" }

/// A path that exists and is of the right kind.
func existing(_ path: String?, _ option: String, _ kind: PathKind) throws {
    guard let path else { return }
    guard !path.isEmpty else { throw CLIError("\(option) must not be empty (expected \(kind.rawValue))") }
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw CLIError("\(option) \(path): no such \(kind == .folder ? "folder" : kind == .file ? "file" : "file or folder")")
    }
    if kind == .file && isDir.boolValue { throw CLIError("\(option) \(path) is a folder; expected a file") }
    if kind == .folder && !isDir.boolValue { throw CLIError("\(option) \(path) is a file; expected a folder") }
}

/// A file to write: not empty, not a folder, in a folder that exists.
func outputFile(_ path: String?, _ option: String) throws {
    guard let path else { return }
    guard !path.isEmpty else { throw CLIError("\(option) must not be empty (expected a file to write)") }
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        throw CLIError("\(option) \(path) is a folder; expected a file to write")
    }
    try parentExists(path, option)
}

/// A folder to write into (made if missing): not empty, not a file, and its parent folder exists
/// (`makingParents`: the nearest existing ancestor is a folder, as `mkdir -p` needs).
func outputFolder(_ path: String?, _ option: String, makingParents: Bool = false) throws {
    guard let path else { return }
    guard !path.isEmpty else { throw CLIError("\(option) must not be empty (expected a folder to write into)") }
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
        throw CLIError("\(option) \(path) is a file; expected a folder to write into")
    }
    guard makingParents else { return try parentExists(path, option) }
    var ancestor = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDir) { ancestor.deleteLastPathComponent() }
    guard isDir.boolValue else { throw CLIError("\(option) \(path): \(ancestor.path) is a file, not a folder") }
}

private func parentExists(_ path: String, _ option: String) throws {
    let parent = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
        throw CLIError("\(option) \(path): the folder \(parent) does not exist")
    }
}

/// The largest thread count we accept (a typo such as 10000 would only start that many threads).
let largestThreadCount = 1024

/// The largest vocabulary we build or accept (Gemma's has 262,144 tokens).
let largestVocabulary = 1 << 22

/// The sampling options `generate` and `chat` share: --temperature ≥ 0, --top-k > 0, --top-p in (0, 1].
func checkSampling(temperature: Float, topK: Int?, topP: Float?) throws {
    try nonNegative(temperature, "--temperature")
    try positive(topK, "--top-k", max: largestVocabulary)
    try fraction(topP, "--top-p", openBelow: true, openAbove: false)
}

/// The input of a forward pass: --prompt text or --ids, exactly one of them, not empty.
func checkPrompt(_ prompt: String?, ids: String?) throws {
    guard (prompt == nil) != (ids == nil) else { throw CLIError("give --prompt or --ids (one of them)") }
    try nonEmpty(prompt, "--prompt")
    if let ids, try parseIds(ids, source: "--ids").isEmpty { throw CLIError("--ids must hold at least one token id") }
}

/// A model to load: a GGUF file, a model folder or a run.
func checkModel(_ path: String?, _ option: String = "--model") throws { try existing(path, option, .fileOrFolder) }

/// --tokenizer for commands that load a model: gpt2 or a tokenizer file or folder.
func checkTokenizer(_ path: String?) throws {
    if let path, path != "gpt2" { try existing(path, "--tokenizer", .fileOrFolder) }
}
