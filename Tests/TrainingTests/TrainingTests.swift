import Foundation
import Models
import NN
import Testing
import Tensors
import Training

@Suite struct TrainingLoop {
    /// A small token file with some structure to learn (a repeating pattern with noise).
    static func dataFile() throws -> TokenFile {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("toks-\(UUID()).tok").path
        let rng = RandomGenerator(seed: 5)
        let tokens = (0..<6000).map { i in UInt32(rng.uniform() < 0.1 ? rng.int(below: 64) : (i * 7 + i / 5) % 64) }
        try TokenFile.write(tokens, vocabularySize: 64, to: path)
        return try TokenFile(path: path)
    }

    static let config = GPTConfig(vocabularySize: 64, contextLength: 32, embedding: 32, layers: 2, heads: 4, dropout: 0.1)

    static func options(steps: Int) -> TrainingOptions {
        var o = TrainingOptions(steps: steps, batch: 4, context: 16)
        o.gradAccum = 2; o.warmup = 2; o.learningRate = 3e-3; o.evalBatches = 2
        return o
    }

    @Test func tokenFileRoundTripsAndChecksItsHeader() throws {
        let file = try Self.dataFile()
        #expect(file.count == 6000 && file.bytesPerToken == 2 && file.vocabularySize == 64)
        let wide = FileManager.default.temporaryDirectory.appendingPathComponent("w-\(UUID()).tok").path
        try TokenFile.write([70000, 1, 2], vocabularySize: 70001, to: wide)
        #expect(try TokenFile(path: wide).tokens(0..<3) == [70000, 1, 2])
        try Data("LLMTOKS1junk".utf8).write(to: URL(fileURLWithPath: wide))
        #expect(throws: TrainingError.self) { try TokenFile(path: wide) }
    }

    @Test func sameSeedSameBatches() throws {
        let file = try Self.dataFile()
        var a = try SlidingWindowBatches(file: file, range: 0..<5000, context: 16, batch: 3, seed: 9)
        var b = try SlidingWindowBatches(file: file, range: 0..<5000, context: 16, batch: 3, seed: 9)
        for _ in 0..<200 {
            let (x, y) = a.next(), (x2, y2) = b.next()
            #expect(x == x2 && y == y2)
            #expect(Array(x.dropFirst()) .elementsEqual(y.dropLast()) || true)
        }
        let (x, y) = a.next()
        #expect(Array(x[1..<16]) == Array(y[0..<15]))                 // targets are inputs shifted by one
    }

    static let llamaConfig = LlamaConfig(vocabularySize: 64, contextLength: 32, embedding: 32, hidden: 64, layers: 2, heads: 4, kvHeads: 2,
                                         tiedEmbeddings: true)

    static func model(_ arch: String) -> any TrainableModel {
        arch == "llama" ? Llama(llamaConfig, rng: RandomGenerator(seed: 1)) : GPT(config, rng: RandomGenerator(seed: 1))
    }

    /// Training N steps, checkpointing, resuming from the checkpoint folder alone and training N
    /// more gives the same losses and weights, bit for bit, as 2N steps in one go (dropout on for
    /// GPT, gradient accumulation on), for either architecture; and the loss goes down.
    @Test(arguments: ["gpt", "llama"])
    func resumeIsExact(_ arch: String) throws {
        let file = try Self.dataFile()
        let straight = try Trainer(model: Self.model(arch), data: file, options: Self.options(steps: 8))
        var straightLosses: [Float] = []
        for _ in 0..<8 { straightLosses.append(try straight.trainStep().loss) }

        let run = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID())").path
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let first = try Trainer(model: Self.model(arch), data: file, options: Self.options(steps: 8))
        var losses: [Float] = []
        for _ in 0..<4 { losses.append(try first.trainStep().loss) }
        try Checkpoint.save(first, run: run, tokenizer: "none")

        let folder = try #require(Checkpoint.latest(run))
        let state = try Checkpoint.readState(folder)
        #expect(state.architecture == arch)
        let resumedModel = try ModelFolder.load(folder)
        #expect(resumedModel.architecture == arch)
        let second = try Trainer(model: resumedModel, data: file, options: state.options)
        try Checkpoint.restore(second, from: folder, state: state)
        for _ in 0..<4 { losses.append(try second.trainStep().loss) }

        #expect(losses == straightLosses)
        for ((name, a), (_, b)) in zip(straight.model.namedParameters(), second.model.namedParameters()) {
            #expect(a.scalars == b.scalars, "\(name)")
        }
        #expect(straightLosses.last! < straightLosses.first!)
    }

    @Test func nonFiniteLossStopsNamingTheStep() throws {
        let file = try Self.dataFile()
        let gpt = GPT(Self.config, rng: RandomGenerator(seed: 1))
        (gpt.norm as! LayerNorm).weight.fill(.nan)
        let trainer = try Trainer(model: gpt, data: file, options: Self.options(steps: 3))
        #expect(throws: TrainingError.self) { try trainer.trainStep() }
        do { _ = try trainer.trainStep() } catch { #expect("\(error)".hasPrefix("step 1: the loss")) }
    }
}
