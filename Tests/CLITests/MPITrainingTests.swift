import Foundation
import Testing

/// `mpirun -np 2 llm train` on this machine (loopback, root allowed, oversubscription allowed):
/// two ranks with half the batch each train exactly as one process with the whole batch.
@Suite(.serialized) struct MPITraining {
    static let mpirun = "/usr/bin/mpirun"
    static let environment: [String: String] = ProcessInfo.processInfo.environment.merging([
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_btl": "self,vader",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
    ]) { $1 }

    struct Scratch {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("llm-mpi-\(UUID().uuidString)").path
        init() throws {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let words = ["the", "model", "reads", "a", "window", "of", "tokens", "and", "learns", "what", "comes", "next", "in", "text"]
            let text = (0..<6000).map { words[($0 * 5 + $0 / 3 + $0 / 11) % words.count] }.joined(separator: " ")
            try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/text.txt"))
        }
        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    static func train(_ s: Scratch, ranks: Int, batch: Int, out: String, extra: [String] = []) throws -> (status: Int32, err: String) {
        let args = ["train", "--data", s.root + "/text.txt", "--tokenizer", "char", "--config", "mini", "--context", "32",
                    "--batch", String(batch), "--steps", "20", "--eval-every", "10", "--lr", "3e-3", "--warmup", "5", "--seed", "7",
                    "--out", s.root + "/" + out] + extra
        let p = Process()
        if ranks == 1 {
            p.executableURL = URL(fileURLWithPath: CommandLine.llm)
            p.arguments = args + ["--threads", "2"]
        } else {
            p.executableURL = URL(fileURLWithPath: mpirun)
            p.arguments = ["-np", String(ranks), CommandLine.llm] + args + ["--threads", "1"]
        }
        p.environment = environment
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }

    static func losses(_ run: String) throws -> [Double] {
        try String(contentsOfFile: run + "/log.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (o["loss"] as! NSNumber).doubleValue
        }
    }

    /// Safetensors' float32 tensors by name (header JSON, then data).
    static func tensors(_ path: String) throws -> [String: [Float]] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(d.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: [Float]] = [:]
        for (name, v) in header where name != "__metadata__" {
            let info = v as! [String: Any], offsets = info["data_offsets"] as! [Int]
            out[name] = d.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1])).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return out
    }

    static func expectSame(_ a: String, _ b: String, file: String, tolerance: Float) throws {
        let x = try tensors(a + "/checkpoint/" + file), y = try tensors(b + "/checkpoint/" + file)
        #expect(Set(x.keys) == Set(y.keys))
        for (name, u) in x {
            let w = try #require(y[name])
            // The key bias (the middle third of GPT-2's c_attn.bias) has a zero gradient in exact
            // arithmetic (it shifts every score of a row alike, and softmax ignores that), so its
            // gradient is rounding noise that AdamW scales up to steps of ~lr: it differs as much
            // between 1 and 2 threads of one process (4e-5) as between ranks. Left out; every
            // other weight must agree.
            let skip = name.hasSuffix("attn.c_attn.bias") ? (u.count / 3)..<(2 * u.count / 3) : 0..<0
            let worst = zip(u, w).enumerated().filter { !skip.contains($0.offset) }.map { abs($0.element.0 - $0.element.1) / max(1, abs($0.element.1)) }.max() ?? 0
            #expect(worst <= tolerance, "\(file) \(name): largest difference \(worst)")
        }
    }

    @Test func twoRanksTrainAsOneProcess() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.mpirun), "mpirun is missing: bash scripts/setup.sh installs openmpi-bin")
        let s = try Scratch()
        defer { s.remove() }
        let one = try Self.train(s, ranks: 1, batch: 8, out: "one")
        #expect(one.status == 0, "\(one.err)")
        for (name, extra) in [("two", [String]()), ("sharded", ["--shard-optimizer"])] {
            let two = try Self.train(s, ranks: 2, batch: 4, out: name, extra: extra)
            #expect(two.status == 0, "\(name): \(two.err)")
            let (a, b) = (try Self.losses(s.root + "/one"), try Self.losses(s.root + "/" + name))
            #expect(a.count == 20 && b.count == 20)
            for (i, (x, y)) in zip(a, b).enumerated() { #expect(abs(x - y) / abs(x) <= 1e-5, "\(name) step \(i + 1): loss \(y) vs \(x)") }
            try Self.expectSame(s.root + "/" + name, s.root + "/one", file: "model.safetensors", tolerance: 1e-5)
            try Self.expectSame(s.root + "/" + name, s.root + "/one", file: "optimizer.safetensors", tolerance: 1e-4)
        }
    }

    @Test func resumesWithAnotherNumberOfRanks() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.mpirun))
        let s = try Scratch()
        defer { s.remove() }
        let straight = try Self.train(s, ranks: 1, batch: 8, out: "straight")
        #expect(straight.status == 0, "\(straight.err)")
        let first = try Self.train(s, ranks: 2, batch: 4, out: "split", extra: ["--stop-after", "10"])
        #expect(first.status == 0, "\(first.err)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.llm)
        p.arguments = ["train", "--resume", s.root + "/split", "--threads", "2"]
        p.standardOutput = FileHandle.nullDevice
        try p.run(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let (a, b) = (try Self.losses(s.root + "/straight"), try Self.losses(s.root + "/split"))
        #expect(a.count == 20 && b.count == 20)
        for (i, (x, y)) in zip(a, b).enumerated() { #expect(abs(x - y) / abs(x) <= 1e-5, "step \(i + 1): loss \(y) vs \(x)") }
        try Self.expectSame(s.root + "/split", s.root + "/straight", file: "model.safetensors", tolerance: 1e-5)
    }

    /// A rank killed mid-run ends the whole job with an error, in bounded time.
    @Test func aKilledRankEndsTheJob() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.mpirun))
        let s = try Scratch()
        defer { s.remove() }
        let out = s.root + "/killed"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.mpirun)
        p.arguments = ["-np", "2", CommandLine.llm, "train", "--data", s.root + "/text.txt", "--tokenizer", "char", "--config", "mini",
                       "--context", "32", "--batch", "4", "--steps", "100000", "--eval-every", "0", "--threads", "1", "--out", out]
        p.environment = Self.environment
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        // Wait for training to run (a log line), then kill rank 1.
        var deadline = Date().addingTimeInterval(60)
        while (try? String(contentsOfFile: out + "/log.jsonl", encoding: .utf8))?.isEmpty ?? true {
            try #require(Date() < deadline, "the job did not start training within 60 s")
            Thread.sleep(forTimeInterval: 0.2)
        }
        let victim = try #require(Self.rank(1, of: out), "rank 1's process not found")
        kill(victim, SIGKILL)
        deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        let ended = !p.isRunning
        if !ended { p.terminate() }
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(ended, "the job still ran 30 s after rank 1 was killed")
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(!e.isEmpty, "no error message")
    }

    /// The pid of the llm process of `rank` whose command line names `out` (from /proc).
    /// `llm finetune` (SFT and classification) and `llm dpo` on the tiny Llama: 2 ranks × 2
    /// examples and 1 process × 4 log the same losses and end on the same adapter, with AdamW's
    /// moments sharded across the ranks too (and then gathered whole into the checkpoint). 21 training
    /// items make a last batch of one, where rank 1 has nothing and adds zeros; SFT batches'
    /// ranks hold different numbers of trained tokens, which the weighting evens out.
    @Test(arguments: ["sft", "classify", "dpo"]) func fineTuningOnTwoRanksAsOneProcess(task: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.mpirun))
        let dir = try FineTuneCommands.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var args: [String]
        switch task {
        case "classify":
            var csv = "id,text,label\n"
            for i in 0..<24 { csv += "\(i),\"\(i % 2 == 0 ? "good, great" : "bad awful") thing \(String(repeating: "x", count: i % 7))\",\(i % 2 == 0 ? "pos" : "neg")\n" }
            try FineTuneCommands.write(csv, dir + "/train.csv")
            args = ["finetune", "--task", "classify", "--data", dir + "/train.csv"]
        case "dpo": args = ["dpo", "--data", try DPOCommands.pairs(dir)]
        default: args = ["finetune", "--data", try FineTuneCommands.sftData(dir)]
        }
        args += ["--model", FineTuneCommands.base, "--steps", "8", "--eval-every", "4", "--lr", "3e-3", "--seed", "4", "--lora-dropout", "0",
                 "--val-fraction", "0.125"]
        func run(ranks: Int, out: String) throws {
            let p = Process()
            if ranks == 1 {
                p.executableURL = URL(fileURLWithPath: CommandLine.llm)
                p.arguments = args + ["--batch", "4", "--threads", "2", "--out", out]
            } else {
                p.executableURL = URL(fileURLWithPath: Self.mpirun)
                p.arguments = ["-np", "2", CommandLine.llm] + args + ["--batch", "2", "--threads", "1", "--out", out]
            }
            p.environment = Self.environment
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice; p.standardError = err
            try p.run()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(task) on \(ranks) ranks: \(String(decoding: e, as: UTF8.self))")
        }
        try run(ranks: 1, out: dir + "/one")
        try run(ranks: 2, out: dir + "/two")
        args += ["--shard-optimizer"]
        try run(ranks: 2, out: dir + "/sharded")
        func log(_ run: String) throws -> [[String: Any]] {
            try String(contentsOfFile: run + "/log.jsonl", encoding: .utf8).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
        }
        let a = try log(dir + "/one")
        for name in ["two", "sharded"] {
            let b = try log(dir + "/" + name)
            #expect(a.count == 8 && b.count == 8)
            for (i, (x, y)) in zip(a, b).enumerated() {
                // Every loss, reward and the gradient norm; not DPO's reward accuracy, a count of
                // pairs whose margin is above 0: at step 1 the policy is the reference, every margin
                // is 0 up to rounding, and the count is noise.
                for key in x.keys where key.contains("loss") || key.contains("grad_norm") || (key.contains("rewards") && !key.contains("accuracies")) {
                    let (u, v) = ((x[key] as! NSNumber).doubleValue, (y[key] as? NSNumber)?.doubleValue ?? .nan)
                    #expect(abs(u - v) <= 1e-5 * max(1, abs(u)), "\(task) \(name) step \(i + 1) \(key): \(v) on 2 ranks, \(u) in one process")
                }
                #expect(x["tokens"] as? Int == y["tokens"] as? Int, "\(task) step \(i + 1): tokens seen")
            }
            // The gradients agree to 1e-7 (the norms above); AdamW divides each element by its own
            // running scale, so an element whose gradient is near the rounding of a batch summed in
            // two parts moves by a noisy fraction of the learning rate. That reaches 4e-5 in the
            // classifier's first layer (1 and 2 threads of one process agree exactly: each sum
            // there is made in one place), so classification is held to 1e-4.
            try Self.expectSame(dir + "/" + name, dir + "/one", file: "trainable.safetensors", tolerance: task == "classify" ? 1e-4 : 1e-5)
            try Self.expectSame(dir + "/" + name, dir + "/one", file: "optimizer.safetensors", tolerance: 1e-4)
        }
    }

    static func rank(_ rank: Int, of out: String) -> pid_t? {
        let fm = FileManager.default
        for entry in (try? fm.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry),
                  let cmd = fm.contents(atPath: "/proc/\(entry)/cmdline"), String(decoding: cmd, as: UTF8.self).contains(out),
                  let env = fm.contents(atPath: "/proc/\(entry)/environ") else { continue }
            let vars = env.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }
}
