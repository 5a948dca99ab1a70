import Foundation
import FuzzTargets

// Two builds of one tool (see `make fuzz` and README "Fuzzing"):
//
// - the normal build: `llm-fuzz seeds DIR` writes every target's seeds to DIR/<target>/, and
//   `llm-fuzz run TARGET FILE...` replays inputs (a finding, to see its error or its crash);
// - built with `-sanitize=fuzzer -DLIBFUZZER`, libFuzzer drives the target named by
//   $LLM_FUZZ_TARGET: `LLM_FUZZ_TARGET=gguf .build/fuzz/release/llm-fuzz -runs=1000000 corpus/`
//   (its options as libFuzzer documents them).

#if LIBFUZZER
nonisolated(unsafe) var fuzzTarget: FuzzTarget?
nonisolated(unsafe) var fuzzScratch: FuzzScratch?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    _ = try? fuzzTarget!.run(input, in: fuzzScratch!)
    return 0
}

/// libFuzzer's driver, called from our own main (SwiftPM links executables through the module's
/// entry point, so libFuzzer's main cannot be the program's).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
struct FuzzDriver {
    static func main() {
        let name = ProcessInfo.processInfo.environment["LLM_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("error: set LLM_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(name)')\n".utf8))
            exit(1)
        }
        fuzzTarget = target
        do { fuzzScratch = try FuzzScratch() } catch {
            FileHandle.standardError.write(Data("error: cannot make a scratch folder: \(error)\n".utf8))
            exit(1)
        }
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput))
    }
}
#else
@main
struct FuzzTool {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        do {
            switch args.first {
            case "seeds" where args.count == 2:
                for target in FuzzTarget.allCases {
                    let dir = args[1] + "/" + target.rawValue
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    let seeds = try FuzzSeeds.make(target)
                    for (i, seed) in seeds.enumerated() { try Data(seed).write(to: URL(fileURLWithPath: dir + "/seed-\(i)")) }
                    print("\(target.rawValue): \(seeds.count) seeds, \(seeds.map(\.count).max() ?? 0) bytes at most")
                }
            case "run" where args.count >= 3:
                guard let target = FuzzTarget(rawValue: args[1]) else { fail("unknown target '\(args[1])' (known: \(names))") }
                let scratch = try FuzzScratch()
                for path in args.dropFirst(2) {
                    let input = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
                    do { try target.run(input, in: scratch); print("\(path): read") } catch { print("\(path): refused: \(error)") }
                }
            case "targets" where args.count == 1:
                print(names)
            default:
                fail("usage: llm-fuzz seeds DIR | llm-fuzz run TARGET FILE... | llm-fuzz targets")
            }
        } catch {
            fail("\(error)")
        }
    }

    static var names: String { FuzzTarget.allCases.map(\.rawValue).joined(separator: " ") }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
}
#endif
