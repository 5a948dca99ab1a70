import Foundation

/// Loads the tokenizer a file or folder holds, whatever its kind: a SentencePiece `.model` file
/// (a serialized ModelProto), or a folder with a `tokenizer.model` (Llama 2, Gemma, Mistral
/// checkpoints), otherwise whatever `Tokenizer.load(path:)` reads (our folder, a Hugging Face
/// `tokenizer.json`, tiktoken ranks). GGUF files are read in Models, with their model.
public func loadTextTokenizer(path: String) throws(TokenizerError) -> any TextTokenizer {
    if path.hasSuffix(".model") { return try SentencePieceTokenizer(path: path) }
    var isDirectory: ObjCBool = false
    let inside = (path as NSString).appendingPathComponent("tokenizer.model")
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
       FileManager.default.fileExists(atPath: inside) {
        return try SentencePieceTokenizer(path: inside)
    }
    return try Tokenizer.load(path: path)
}
