import Cluster
import Foundation
import Models
import NN
import Tensors
import Tokenization

/// A training run's checkpoint: RUN/checkpoint/ holds
///   config.json + model.safetensors   the model, as a Hugging Face folder of its architecture (also `--model RUN`)
///   optimizer.safetensors             AdamW's moments, named `m.<param>` / `v.<param>`
///   state.json                        step, tokens seen, options, batch order, generators, tokenizer
/// It is written whole into RUN/checkpoint.tmp/ and then swapped in by renaming folders, so a kill
/// at any moment leaves the previous checkpoint (RUN/checkpoint or RUN/checkpoint.old) intact.
public enum Checkpoint {
    public struct State: Codable {
        public var step: Int
        public var tokensSeen: Int
        public var options: TrainingOptions
        public var data: String
        public var tokenizer: String
        public var batches: [String: [UInt64]]
        public var modelRNG: [UInt64]
        public var adamSteps: Int
        /// "gpt" or "llama" (older checkpoints, without it, are GPT's).
        public var architecture: String?

        enum CodingKeys: String, CodingKey {
            case step, options, data, tokenizer, batches, architecture
            case tokensSeen = "tokens_seen", modelRNG = "model_rng", adamSteps = "adam_steps"
        }
    }

    public static func folder(_ run: String) -> String { run + "/checkpoint" }

    /// Under mpirun every rank calls it (a sharded optimizer's moments are gathered) and rank 0 writes.
    public static func save(_ trainer: Trainer, run: String, tokenizer: String, tokenizerFiles: String? = nil) throws {
        let moments: (m: [Tensor], v: [Tensor])?
        if let parallel = trainer.parallel { moments = parallel.gatherMoments(trainer.optimizer) } else { moments = (trainer.optimizer.m, trainer.optimizer.v) }
        guard Distributed.isMain, let moments else { return }
        let tmp = run + "/checkpoint.tmp", final = folder(run)
        let fm = FileManager.default
        try? fm.removeItem(atPath: tmp)
        try trainer.model.save(to: tmp)
        try writeMoments(moments.m, moments.v, of: trainer.optimizer, in: trainer.model, to: tmp + "/optimizer.safetensors")
        let state = State(step: trainer.step, tokensSeen: trainer.tokensSeen, options: trainer.options, data: trainer.data.path,
                          tokenizer: tokenizer, batches: trainer.train.state, modelRNG: trainer.model.rng.snapshot,
                          adamSteps: trainer.optimizer.stepCount, architecture: trainer.model.architecture)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(try encoder.encode(state), to: tmp + "/state.json")
        if let tokenizerFiles {
            for f in try fm.contentsOfDirectory(atPath: tokenizerFiles) { try fm.copyItem(atPath: tokenizerFiles + "/" + f, toPath: tmp + "/" + f) }
        }
        try swapIn(tmp, as: final)
    }

    /// Puts the finished folder `tmp` in place of `final`: the old one is renamed to
    /// `final.old` first and removed last, so a kill at any moment leaves one whole checkpoint.
    static func swapIn(_ tmp: String, as final: String) throws {
        let fm = FileManager.default, old = final + ".old"
        try? fm.removeItem(atPath: old)
        if fm.fileExists(atPath: final) { try fm.moveItem(atPath: final, toPath: old) }
        try fm.moveItem(atPath: tmp, toPath: final)
        try? fm.removeItem(atPath: old)
    }

    /// The optimizer's parameters under their names in `module`, in the optimizer's order.
    static func parameterNames(_ optimizer: AdamW, in module: Module) -> [String] {
        var names: [ObjectIdentifier: String] = [:]
        for (name, t) in module.namedParameters() where names[ObjectIdentifier(t)] == nil { names[ObjectIdentifier(t)] = name }
        return optimizer.groups.flatMap(\.parameters).map { names[ObjectIdentifier($0)]! }
    }

    /// AdamW's moments as `m.<param>` / `v.<param>` tensors.
    static func writeMoments(_ optimizer: AdamW, of module: Module, to path: String) throws {
        try writeMoments(optimizer.m, optimizer.v, of: optimizer, in: module, to: path)
    }

    /// Whole moments `m`, `v` (one per parameter of `optimizer`, in its order).
    static func writeMoments(_ m: [Tensor], _ v: [Tensor], of optimizer: AdamW, in module: Module, to path: String) throws {
        var moments: [String: Tensor] = [:]
        for (i, name) in parameterNames(optimizer, in: module).enumerated() {
            moments["m." + name] = m[i]
            moments["v." + name] = v[i]
        }
        try Safetensors.write(moments, to: path)
    }

    /// The moments `writeMoments` wrote, back into the optimizer at step `step`.
    static func readMoments(into optimizer: AdamW, of module: Module, step: Int, from path: String) throws {
        let file = try Safetensors.read(path)
        let names = parameterNames(optimizer, in: module)
        optimizer.restore(step: step, m: try names.map { try file.tensor("m." + $0) }, v: try names.map { try file.tensor("v." + $0) })
    }

    /// The folder to resume from: the checkpoint, or the previous one if a swap was interrupted.
    public static func latest(_ run: String) -> String? {
        for f in [folder(run), run + "/checkpoint.old"] where FileManager.default.fileExists(atPath: f + "/state.json") { return f }
        return nil
    }

    public static func readState(_ folder: String) throws -> State {
        guard let data = FileManager.default.contents(atPath: folder + "/state.json") else { throw TrainingError.file(folder + "/state.json", "cannot read") }
        do { return try JSONDecoder().decode(State.self, from: data) } catch { throw TrainingError.file(folder + "/state.json", describeJSONError(error, in: data)) }
    }

    /// Restores optimizer moments, the data order, the dropout generator and the step counters.
    public static func restore(_ trainer: Trainer, from folder: String, state: State) throws {
        try readMoments(into: trainer.optimizer, of: trainer.model, step: state.adamSteps, from: folder + "/optimizer.safetensors")
        try trainer.train.restore(state.batches)
        trainer.model.rng.restore(from: RandomGenerator(snapshot: state.modelRNG))
        trainer.restore(step: state.step, tokensSeen: state.tokensSeen)
    }
}
