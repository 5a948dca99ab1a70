import ArgumentParser
import Foundation
import Inference
import Models
import Quantization
import Tensors
import Training

/// `llm quantize`: a model to a GGUF file with quantized weights, which we and llama.cpp run.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a GGUF file with quantized weights (ggml's round-to-nearest quantizers, GPTQ or AWQ).",
        discussion: """
        Types: \(QuantizationScheme.names.joined(separator: " ")). A single type applies to every weight \
        matrix (llama-quantize --pure); q4_k_m and q5_k_m are llama.cpp's mixes (Q6_K for the output head and \
        for half of the value and MLP-down projections). Norms, biases and the position table stay as they are.
        Our GPT models are written as llama.cpp's gpt2 architecture, Llama models as llama; a GGUF file is \
        requantized from its dequantized weights, metadata kept. --method gptq rounds the projections layer by \
        layer against the model's activations on --calibration text; --method awq rescales their input channels \
        by those activations (folded into the norms and projections before them), then rounds to nearest.
        """)

    @Option(help: "A GGUF file, a Hugging Face GPT-2 or Llama folder, or one of our training runs.") var model: String
    @Option(help: ArgumentHelp("The weight type or mix.", valueName: "type")) var type: String
    @Option(help: ArgumentHelp("The GGUF file to write.", valueName: "file.gguf")) var output: String
    @Option(help: ArgumentHelp("How values are rounded: rtn (round to nearest, as ggml's reference quantizers), gptq (error-compensating) or awq (activation-aware scales, then round to nearest); gptq and awq calibrate on --calibration text.", valueName: "rtn|gptq|awq"))
    var method: String = "rtn"
    @Option(help: ArgumentHelp("Calibration text (UTF-8) for --method gptq or awq.", valueName: "file")) var calibration: String?
    @Option(help: ArgumentHelp("Calibration tokens to use at most.", valueName: "n")) var calibrationTokens: Int = 65536
    @Option(help: ArgumentHelp("Tokens per calibration sequence (default: 512, or the model's context if smaller).", valueName: "n"))
    var calibrationLength: Int?
    @Option(help: ArgumentHelp("Type of the output head (and of the token table when it is tied to it), default: by --type.", valueName: "type"))
    var outputType: String?
    @Option(help: "Tokenizer (default: the model's own).") var tokenizer: String?
    @OptionGroup var loading: ModelLoading
    @OptionGroup var global: GlobalOptions

    /// Every option checked before any work.
    func validate() throws {
        try checkModel(model)
        guard QuantizationScheme(name: type) != nil else {
            throw CLIError("--type \(type) is not a type we write; choose one of: \(QuantizationScheme.names.joined(separator: ", "))")
        }
        if let outputType, QuantizationScheme.weightType(named: outputType) == nil {
            throw CLIError("--output-type \(outputType) is not a type we write; choose one of: \(QuantizationScheme.names.filter { !$0.hasSuffix("_m") }.joined(separator: ", "))")
        }
        guard ["rtn", "gptq", "awq"].contains(method) else { throw CLIError("--method \(method) is not available; choose rtn (round to nearest), gptq or awq") }
        if method != "rtn" {
            guard let calibration else { throw CLIError("--method \(method) needs --calibration FILE (a text to run the model on)") }
            try existing(calibration, "--calibration", .file)
        } else if calibration != nil {
            throw CLIError("--calibration is only used by --method gptq and awq")
        }
        try positive(calibrationTokens, "--calibration-tokens", max: 1 << 30)
        try atLeast(2, calibrationLength, "--calibration-length", max: 1 << 20)
        try checkTokenizer(tokenizer)
        try outputFile(output, "--output")
        guard output.lowercased().hasSuffix(".gguf") else { throw CLIError("--output \(output): the file name must end in .gguf") }
        if (model as NSString).standardizingPath == (output as NSString).standardizingPath {
            throw CLIError("--output \(output) is the --model file itself; write to another file")
        }
    }

    func run() throws {
        global.apply()
        let scheme = QuantizationScheme(name: type)!
        let outputType = self.outputType.flatMap(QuantizationScheme.weightType(named:))
        let source: GGUFSource
        var isDir: ObjCBool = false
        let isGGUF = model.lowercased().hasSuffix(".gguf") && FileManager.default.fileExists(atPath: model, isDirectory: &isDir) && !isDir.boolValue
        if method != "rtn" {
            source = try calibratedSource(scheme: scheme, outputType: outputType, isGGUF: isGGUF)
        } else if isGGUF {
            guard loading.adapter == nil else { throw CLIError("--adapter: merge the adapter first (llm merge), then quantize the merged model") }
            source = try GGUFSource(file: GGUFFile(path: model))
        } else {
            source = try loadDecoder(isGGUF: false).export()
        }
        print("quantizing \(model) (\(source.architecture), \(source.tensors.count) tensors) to \(scheme) → \(output)")
        let summary = try GGUFQuantizer.write(source, scheme: scheme, outputType: outputType, to: output) { r in
            let shape = r.shape.map(String.init).joined(separator: "×")
            let change = r.quantized ? "\(r.from.name) → \(r.to.name)" + (r.fellBackFrom.map { " (rows of \(r.shape.last!) do not fit \($0.name)'s blocks)" } ?? "") : "\(r.to.name), kept"
            print(String(format: "[%3d/%3d] %-28@ %-14@ %@, %.2f MiB, %.0f ms", r.index + 1, r.total, r.name as NSString, shape as NSString,
                         change as NSString, Double(r.bytes) / 1_048_576, r.seconds * 1000))
        }
        let types = summary.types.map { "\($0.type.name) \($0.count)" }.joined(separator: ", ")
        print(String(format: "wrote %@: %.2f MiB of tensors (%.2f bits per weight over %d parameters), %d tensors (%@), %.2f s",
                     output as NSString, Double(summary.bytes) / 1_048_576, summary.bitsPerWeight, summary.parameters, summary.tensors,
                     types as NSString, summary.seconds))
    }

    /// GPTQ or AWQ: the model loaded with float weights, its projections rounded layer by layer on
    /// the calibration text to the types the plan gives their tensors, then exported (those blocks kept).
    func calibratedSource(scheme: QuantizationScheme, outputType: GGMLType?, isGGUF: Bool) throws -> GGUFSource {
        let (loaded, decoder, export) = try loadDecoder(isGGUF: isGGUF)
        let before = try export()
        var types: [String: GGMLType] = [:]
        for e in TensorTypePlan(before, scheme: scheme, outputType: outputType).entries where e.quantized && e.type.blockSize > 1 {
            types[e.tensor.name] = e.type
        }
        let file = calibration!
        let ids = try loaded.encodePlain(try utf8Text(readFile(file), source: file))
        if let calibrationLength, calibrationLength > decoder.contextLength {
            throw CLIError("--calibration-length \(calibrationLength) exceeds the model's context of \(decoder.contextLength)")
        }
        let length = min(calibrationLength ?? 512, decoder.contextLength)
        let sequences = calibrationSequences(ids, length: length, tokens: calibrationTokens, bos: loaded.bos)
        guard !sequences.isEmpty else { throw CLIError("--calibration \(file): \(ids.count) tokens is less than one sequence of \(length)") }
        let typeOf = { (layer: Int, role: DecoderWeight) in before.tensorName(layer: layer, role: role).flatMap { types[$0] } }
        print("\(method.uppercased()) on \(sequences.count) sequences of \(length) tokens from \(file)")
        if method == "gptq" {
            try ModelGPTQ.quantize(decoder, calibration: sequences, typeOf: typeOf) { r in
                print(String(format: "[GPTQ layer %d/%d] %.1f s", r.layer + 1, r.layers, r.seconds))
            }
        } else {
            try ModelAWQ.quantize(decoder, calibration: sequences, typeOf: typeOf) { r in
                // Per group: the α chosen and the calibration error relative to round-to-nearest's.
                let groups = r.groups.map { g in
                    g.alpha.map { String(format: "%@ α %.2f (error %.3f of RTN's)", g.group, $0, g.roundToNearestError > 0 ? g.error / g.roundToNearestError : 1) }
                        ?? "\(g.group) not rescaled (RTN was best)"
                }
                print(String(format: "[AWQ layer %d/%d] %.1f s: ", r.layer + 1, r.layers, r.seconds) + groups.joined(separator: ", "))
            }
        }
        return try export()
    }

    /// --model as a decoder with Float32 arithmetic (adapters merged), and its export as it stands
    /// when called (with its tokenizer, and the chat template of its GGUF file or folder).
    func loadDecoder(isGGUF: Bool) throws -> (LoadedModel, DecoderModel, export: () throws -> GGUFSource) {
        let loaded = try loading.load(model, tokenizer: tokenizer, arithmetic: .float32)
        guard let decoder = loaded.model as? DecoderModel else { throw CLIError("--model \(model): \(loaded.summary) cannot be written as GGUF") }
        if loading.adapter != nil { decoder.mergeAdapters() }
        let name = ((model as NSString).standardizingPath as NSString).lastPathComponent
        let template = isGGUF ? try GGUFFile(path: model)["tokenizer.chat_template"]?.string : chatTemplate(model)
        return (loaded, decoder, {
            try GGUFSource(model: decoder, name: name, tokenizer: loaded.tokenizer, bos: loaded.bos, eos: loaded.eos, chatTemplate: template)
        })
    }

    /// The Jinja chat template of a Hugging Face folder (tokenizer_config.json), if it has one.
    func chatTemplate(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path + "/tokenizer_config.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return json["chat_template"] as? String
    }
}
