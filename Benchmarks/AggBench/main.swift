import AggOperations
import Glibc

// agg-bench: micro and macro benchmarks for agg, one subcommand each.
//
//     swift run -c release --scratch-path .build-release agg-bench <name> [options]
//
// Plain argument parsing on purpose: the benchmarks are few and their options are simple.

let benchmarks: [any Benchmark.Type] = [
    CRC32cBenchmark.self,
    CMTBenchmark.self,
    SimulatorBenchmark.self,
    SealBenchmark.self,
    LatencyBenchmark.self,
    TrackerBenchmark.self,
    ScaleBenchmark.self,
]

let arguments = Array(CommandLine.arguments.dropFirst())

@MainActor func printUsage() {
    print("usage: agg-bench <benchmark> [options]\n\nbenchmarks:")
    for benchmark in benchmarks {
        print("  \(benchmark.name.padded(to: 12)) \(benchmark.summary)")
    }
    print("\nagg-bench <benchmark> --help shows a benchmark's options.")
}

if arguments.first == "--version" {
    print(BuildInfo.version)
    exit(0)
}

guard let name = arguments.first, name != "-h", name != "--help" else {
    printUsage()
    exit(arguments.isEmpty ? 2 : 0)
}

guard let benchmark = benchmarks.first(where: { $0.name == name }) else {
    printError("agg-bench: unknown benchmark '\(name)'")
    printUsage()
    exit(2)
}

do {
    try benchmark.run(arguments: Array(arguments.dropFirst()))
} catch {
    printError("agg-bench \(name): \(error)")
    exit(2)
}
