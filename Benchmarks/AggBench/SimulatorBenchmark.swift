import SCTPEngine
import SCTPSimulation

#if canImport(Glibc)
    import Glibc
#endif

/// How fast the simulator runs the engine: wall-clock seconds for a simulated minute of one bulk transfer at
/// 50 Mbit/s over one path (about 260,000 DATA packets and their SACKs through two full SCTP endpoints).
enum SimulatorBenchmark: Benchmark {
    static let name = "sim"
    static let summary = "wall time of a simulated minute of a 50 Mbit/s SCTP transfer in the simulator"

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(arguments, known: ["seconds", "rate"])
        if options.wantsHelp {
            print("usage: agg-bench sim [--seconds S (default 60)] [--rate MBIT (default 50)]")
            return
        }
        let seconds = try options.double("seconds", default: 60)
        let rate = Int64(try options.double("rate", default: 50) * 1_000_000)
        let spec = PathSpec(rateBitsPerSecond: rate, rtt: .milliseconds(40))
        let bytes = Int(Double(rate) / 8 * seconds * 0.96)
        var single = SCTPConfiguration()
        single.multipath = .singlePath
        let scenario = MultipathScenario(seed: 1, paths: [spec], configuration: single)
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        do {
            let result = try scenario.run(bytes: bytes)
            var end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &end)
            let wall = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
            let simulated = scenario.network.now.nanoseconds
            print("simulated \(Double(simulated) / 1e9) s of a \(rate / 1_000_000) Mbit/s transfer "
                + "(\(bytes / 1_000_000) MB, goodput \(Int(result.goodput / 1e6)) Mbit/s) in \(String(format: "%.3f", wall)) s of wall time")
            print("ratio: \(String(format: "%.1f", Double(simulated) / 1e9 / wall))x faster than real time")
        } catch {
            printError("simulation failed: \(error)")
        }
    }
}
