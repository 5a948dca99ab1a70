// swift-tools-version:6.0
// One package; targets follow the path text takes through an LLM (see README.md):
// Tokenization → Tensors → Cluster → NN → Models → Quantization, Training → Inference → Server → llm.
// Targets are added as their issue lands; each imports only those to its left.
import Foundation
import PackageDescription

// Release speed: `make` adds `-Xswiftc -target-cpu -Xswiftc native` so SIMD FMA becomes vfmadd.
let speed: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

// The quantized kernels multiply 8-bit blocks with x86 integer SIMD (AVX2: pmaddubsw, pmaddwd)
// when the build machine has it. Tensors is then always compiled for this machine's CPU, since
// those instructions cannot be compiled for baseline x86-64. Elsewhere a portable path is used.
let hostHasAVX2: Bool = {
    #if arch(x86_64) && os(Linux)
    return (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" avx2") ?? false
    #else
    return false
    #endif
}()
let tensorsSettings: [SwiftSetting] = speed + (hostHasAVX2 ? [.define("LLM_AVX2"), .unsafeFlags(["-target-cpu", "native"])] : [])

let package = Package(
    name: "llm",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "llm", targets: ["llm"]),
        .library(name: "Tokenization", targets: ["Tokenization"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Cluster", targets: ["Cluster"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Quantization", targets: ["Quantization"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Inference", targets: ["Inference"]),
        .library(name: "Server", targets: ["Server"]),
        .executable(name: "llm-fuzz", targets: ["llm-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // llm serve: the HTTP server (SwiftNIO underneath) and its logger.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // OpenBLAS on Linux (Debian: libopenblas-dev). Only Tensors/BLAS.swift imports it;
        // on Apple systems that file uses Accelerate instead.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "Tokenization", swiftSettings: speed),
        // The compiler's x86 intrinsics header, for the integer dot products of quantized kernels.
        .systemLibrary(name: "CSIMD"),
        .target(
            name: "Tensors",
            dependencies: [.target(name: "CBLAS", condition: .when(platforms: [.linux])), "CSIMD"],
            swiftSettings: tensorsSettings
        ),
        // Open MPI (Debian: libopenmpi-dev, pkg-config ompi-c), for data-parallel training under
        // mpirun. Only Cluster (its `Distributed` wrapper; the target is not named Distributed
        // because Swift's toolchain has a module of that name) imports it. Where mpi.h is missing (Apple systems, machines
        // without Open MPI) its shim compiles stand-ins and the binary refuses to run under mpirun.
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .target(name: "Cluster", dependencies: ["CMPI"], swiftSettings: speed),
        .target(name: "NN", dependencies: ["Tensors"], swiftSettings: speed),
        .target(name: "Models", dependencies: ["Tokenization", "Tensors", "NN"], swiftSettings: speed),
        // Model → quantized GGUF (round to nearest; later GPTQ and AWQ, which run the model on calibration text).
        .target(name: "Quantization", dependencies: ["Tokenization", "Tensors", "NN", "Models"], swiftSettings: speed),
        .target(name: "Training", dependencies: ["Tokenization", "Tensors", "Cluster", "NN", "Models"], swiftSettings: speed),
        .target(name: "Inference", dependencies: ["Tokenization", "Tensors", "NN", "Models", "Training"], swiftSettings: speed),
        // The OpenAI-compatible HTTP API, its engine loop (continuous batching) and the chat page.
        .target(name: "Server", dependencies: ["Tokenization", "Tensors", "Models", "Inference",
                                               .product(name: "Hummingbird", package: "hummingbird"),
                                               .product(name: "Logging", package: "swift-log")],
                swiftSettings: speed),
        // Every reader of user files (and of HTTP request bodies) as a fuzz target, with seeds from our own writers (make fuzz).
        .target(name: "FuzzTargets", dependencies: ["Tokenization", "Tensors", "NN", "Models", "Quantization", "Training", "Inference", "Server"],
                swiftSettings: speed),
        .executableTarget(name: "llm-fuzz", dependencies: ["FuzzTargets"], swiftSettings: speed),
        .executableTarget(
            name: "llm",
            dependencies: [
                "Tokenization", "Tensors", "Cluster", "NN", "Models", "Quantization", "Training", "Inference", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: speed
        ),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization"], swiftSettings: speed),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"], swiftSettings: speed),
        // Runs the built `llm` binary as a user would (it is built with the tests).
        .testTarget(name: "CLITests", dependencies: ["llm"], swiftSettings: speed),
        .testTarget(name: "TrainingTests", dependencies: ["Tokenization", "Tensors", "NN", "Models", "Training"], swiftSettings: speed),
        .testTarget(name: "InferenceTests", dependencies: ["Tokenization", "Tensors", "NN", "Models", "Inference"], swiftSettings: speed),
        .testTarget(name: "ModelsTests", dependencies: ["Tensors", "NN", "Models"], swiftSettings: speed),
        .testTarget(name: "NNTests", dependencies: ["Tensors", "NN", "Models"], swiftSettings: speed),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets"], swiftSettings: speed),
        .testTarget(name: "ServerTests", dependencies: ["Inference", "Models", "Server", .product(name: "HummingbirdTesting", package: "hummingbird")],
                    swiftSettings: speed),
        .testTarget(name: "QuantizationTests", dependencies: ["Tokenization", "Tensors", "NN", "Models", "Quantization", "Inference"], swiftSettings: speed),
    ],
    swiftLanguageModes: [.v5]
)
