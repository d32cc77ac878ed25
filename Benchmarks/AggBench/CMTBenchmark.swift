import SCTPEngine
import SCTPSimulation

/// The CMT table: goodput of one bulk transfer over two simulated paths as a share of the sum of the path rates
/// and of the sum of what one single-path association gets on each path alone (measured in the same run), for the
/// cases of the CMT issue, then the same cases with each mechanism switched off in turn.
enum CMTBenchmark: Benchmark {
    static let name = "cmt"
    static let summary = "CMT goodput over two simulated paths vs the paths' rates and single-path SCTP, with ablation"

    struct Case {
        var name: String
        var paths: [PathSpec]
        /// Target share of the sum of the link rates (nil: judged against the single-path sum instead).
        var target: Double
        var failure: (index: Int, at: SCTPDuration)? = nil
        /// The receive buffer of both endpoints; nil for the default (4 MiB).
        var receiveBuffer: Int? = nil
        /// False for a case outside the issue's list, shown for what buffer splitting does with a small buffer.
        var checksTargets = true
    }

    static let cases: [Case] = [
        Case(name: "symmetric 50+50 Mbit/s, 20 ms", paths: [.init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20)),
            .init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20))], target: 0.95),
        Case(name: "asymmetric rate 20+30, 30 ms", paths: [.init(rateBitsPerSecond: 20_000_000, rtt: .milliseconds(30)),
            .init(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(30))], target: 0.95),
        Case(name: "asymmetric delay 30+30, 10/80 ms", paths: [.init(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(10)),
            .init(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(80))], target: 0.90),
        Case(name: "asymmetric loss 30+30, 20 ms, 0/2%", paths: [.init(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20)),
            .init(rateBitsPerSecond: 30_000_000, rtt: .milliseconds(20), loss: 0.02)], target: 0.90),
        Case(name: "path 2 fails mid-transfer 50+50, 20 ms", paths: [.init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20)),
            .init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20))], target: 0, failure: (1, .seconds(3))),
        Case(name: "path 1 (primary) fails mid-transfer 50+50, 20 ms", paths: [.init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20)),
            .init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(20))], target: 0, failure: (0, .seconds(3))),
        Case(name: "extra, no target: 50+10, 10/200 ms, 0/0.2%, 256 KiB receive buffer",
            paths: [.init(rateBitsPerSecond: 50_000_000, rtt: .milliseconds(10)),
                .init(rateBitsPerSecond: 10_000_000, rtt: .milliseconds(200), loss: 0.002)],
            target: 0, receiveBuffer: 256 * 1024, checksTargets: false),
    ]

    static let ablations: [(String, @Sendable (inout SCTPMultipathConfiguration) -> Void)] = [
        ("all on (default)", { _ in }),
        ("CMT off (primary only)", { $0 = .singlePath }),
        ("SFR off", { $0.splitFastRetransmit = false }),
        ("CUC off", { $0.cwndUpdateForCMT = false }),
        ("DAC off", { $0.delayedAckForCMT = false }),
        ("sender splitting off", { $0.senderBufferSplitting = false }),
        ("receiver splitting on", { $0.receiverBufferSplitting = true }),
        ("RTX-CWND", { $0.retransmissionPolicy = .cwnd }),
        ("RTX-SAME", { $0.retransmissionPolicy = .samePath }),
        ("lowest-RTT scheduler", { $0.scheduler = .lowestRTTFirst }),
        ("recovery allowance off", { $0.recoveryPacketConservation = false }),
        ("coupled CC (LIA) on", { $0.coupledCongestionControl = true }),
    ]

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(arguments, known: ["seconds", "seed", "quick", "verbose", "trace", "case", "ablation"])
        if options.wantsHelp {
            print(
                """
                usage: agg-bench cmt [--seconds S] [--seed N] [--quick 1]
                  --seconds  simulated transfer length at the sum of the path rates (default 20)
                  --seed     simulation seed (default 1)
                  --quick    1: only the default configuration, no ablation
                  --verbose  1: per-path state after the default configuration's run
                  --trace    N: only case N (1-6), default configuration, per-path state every 100 ms
                  --case     N: only case N (1-6) of the table
                  --ablation N: with --trace, the Nth configuration of the ablation (1 = default)
                """)
            return
        }
        let seconds = try options.double("seconds", default: 20)
        let seed = UInt64(try options.int("seed", default: 1))
        let quick = try options.int("quick", default: 0) == 1
        let verbose = try options.int("verbose", default: 0) == 1
        let trace = try options.int("trace", default: 0)
        let only = try options.int("case", default: 0)
        guard (0...cases.count).contains(trace), (0...cases.count).contains(only) else {
            throw UsageError(description: "--trace and --case take a case number from 1 to \(cases.count)")
        }
        let ablation = try options.int("ablation", default: 1)
        guard (1...ablations.count).contains(ablation) else {
            throw UsageError(description: "--ablation takes a number from 1 to \(ablations.count)")
        }
        do {
            if trace > 0 {
                try self.trace(cases[trace - 1], tweak: ablations[ablation - 1].1, seconds: seconds, seed: seed)
                return
            }
            try report(
                cases: only > 0 ? [cases[only - 1]] : cases, seconds: seconds, seed: seed, quick: quick,
                verbose: verbose)
        } catch {
            printError("simulation failed: \(error)")
        }
    }

    static func bytes(for paths: [PathSpec], seconds: Double) -> Int {
        Int(Double(paths.map(\.rateBitsPerSecond).reduce(0, +)) / 8 * seconds)
    }

    static func report(cases: [Case], seconds: Double, seed: UInt64, quick: Bool, verbose: Bool) throws {
        print("agg-bench cmt: simulated bulk transfer, 64 KiB messages, seed \(seed), \(seconds) s at the summed rate")
        print("goodput in Mbit/s; 'of rates' = share of the summed link rates (IP bytes, 1500-byte MTU: at most 96.3%);")
        print("'of single' = share of the sum of single-path SCTP goodputs on each path alone, same run\n")
        var failures: [String] = []
        for c in cases {
            var base = SCTPConfiguration()
            if let buffer = c.receiveBuffer { base.receiveBufferSize = buffer }
            let singles = try c.paths.enumerated().map { i, spec in
                try MultipathScenario.singlePathGoodput(
                    seed: seed &+ UInt64(i), spec: spec, bytes: bytes(for: [spec], seconds: seconds),
                    configuration: base)
            }
            let rates = Double(c.paths.map(\.rateBitsPerSecond).reduce(0, +))
            let singleSum = singles.reduce(0, +)
            print("== \(c.name): single-path goodputs \(singles.map { fmt($0 / 1e6) }.joined(separator: " + ")) = \(fmt(singleSum / 1e6))")
            print("   " + "configuration".padded(to: 26) + "goodput".leftPadded(to: 9) + "of rates".leftPadded(to: 10)
                + "of single".leftPadded(to: 11) + "  per-path MB" + (c.failure == nil ? "" : "   recovery"))
            for (label, tweak) in quick ? Array(ablations.prefix(1)) : ablations {
                var configuration = base
                tweak(&configuration.multipath)
                let scenario = MultipathScenario(seed: seed, paths: c.paths, configuration: configuration)
                let result: MultipathScenario.Result
                do {
                    result = try scenario.run(bytes: bytes(for: c.paths, seconds: seconds), failure: c.failure)
                } catch {
                    print("   " + label.padded(to: 26) + "  did not finish: \(error)")
                    if label.hasPrefix("all on"), c.checksTargets { failures.append("\(c.name): did not finish") }
                    continue
                }
                var line = "   " + label.padded(to: 26) + fmt(result.goodput / 1e6).leftPadded(to: 9)
                    + pct(result.goodput / rates).leftPadded(to: 10) + pct(result.goodput / singleSum).leftPadded(to: 11)
                    + "  " + result.bytesPerPath.map { fmt(Double($0) / 1e6) }.joined(separator: "/")
                if !result.intact { line += "  DATA LOST" }
                if let failure = c.failure {
                    let recovery = recoveryTime(result, failure: failure, survivorRate: singles[1 - failure.index])
                    line += "   " + (recovery.map { "\($0.milliseconds) ms" } ?? "never")
                    if label.hasPrefix("all on"), (recovery ?? .seconds(99)) > .seconds(1) {
                        failures.append("\(c.name): recovery above 1 s")
                    }
                }
                print(line)
                if verbose, label.hasPrefix("all on") {
                    for id in scenario.client.endpoint.associationIDs {
                        for p in scenario.client.endpoint.paths(of: id) {
                            print("      \(p.remote) srtt \(p.srtt.map { "\($0)" } ?? "-") cwnd \(p.cwnd) ssthresh \(p.ssthresh) "
                                + "rtx \(p.retransmissions) fast \(p.fastRetransmissions) t3 \(p.timeouts)")
                        }
                    }
                    print("      timeline (Mbit/s per 100 ms): \(result.timeline.map { Int($0 / 1e6) })")
                    for link in scenario.dataLinks { print("      \(link.name) queue drops \(link.counters.droppedByQueue) loss \(link.counters.droppedByLoss)") }
                }
                if label.hasPrefix("all on"), c.checksTargets {
                    if c.failure == nil, result.goodput < singles.max()! {
                        failures.append("\(c.name): worse than the best single path")
                    }
                    if c.target > 0 {
                        let share = c.paths.contains(where: { $0.loss > 0 }) ? result.goodput / singleSum : result.goodput / rates
                        if share < c.target { failures.append("\(c.name): \(pct(share)) below target \(pct(c.target))") }
                    }
                    if !result.intact { failures.append("\(c.name): data lost") }
                }
            }
            print()
        }
        print(failures.isEmpty ? "all targets met" : "targets missed:\n  " + failures.joined(separator: "\n  "))
    }

    /// One case with the default configuration, printing every 100 ms: per path cwnd, ssthresh, flight, srtt,
    /// retransmissions and the data link's queue and drops.
    static func trace(
        _ c: Case, tweak: (inout SCTPMultipathConfiguration) -> Void, seconds: Double, seed: UInt64
    ) throws {
        var configuration = SCTPConfiguration()
        tweak(&configuration.multipath)
        if let buffer = c.receiveBuffer { configuration.receiveBufferSize = buffer }
        let scenario = MultipathScenario(seed: seed, paths: c.paths, configuration: configuration)
        print("trace of \(c.name): t(ms) | per path: cwnd ssthresh flight srtt(ms) +rtx +fast +t3 queue +drops")
        var last: [(Int, Int, Int, Int)] = []
        let result = try scenario.run(
            bytes: bytes(for: c.paths, seconds: seconds), failure: c.failure,
            probe: (.milliseconds(100), { now in
                guard let id = scenario.client.endpoint.associationIDs.first else { return }
                let paths = scenario.client.endpoint.paths(of: id)
                if last.count < paths.count { last = Array(repeating: (0, 0, 0, 0), count: paths.count) }
                var line = String(now.nanoseconds / 1_000_000).leftPadded(to: 6)
                for (i, p) in paths.enumerated() {
                    let link = scenario.dataLinks[i]
                    let drops = link.counters.droppedByQueue + link.counters.droppedByLoss
                    line += " | \(p.cwnd / 1000)k \(min(p.ssthresh, 9_999_999) / 1000)k \(p.flightSize / 1000)k "
                        + "\(p.srtt.map { String($0.nanoseconds / 1_000_000) } ?? "-") "
                        + "+\(p.retransmissions - last[i].0) +\(p.fastRetransmissions - last[i].1) "
                        + "+\(p.timeouts - last[i].2) q\(link.queuedBytes(at: now) / 1000)k +\(drops - last[i].3)d"
                    last[i] = (p.retransmissions, p.fastRetransmissions, p.timeouts, drops)
                }
                print(line)
            }))
        print("goodput \(fmt(result.goodput / 1e6)) Mbit/s, per-path MB "
            + result.bytesPerPath.map { fmt(Double($0) / 1e6) }.joined(separator: "/"))
    }

    /// Time from the failure until a 100 ms bin reaches 90% of the surviving path's single-path goodput.
    static func recoveryTime(
        _ result: MultipathScenario.Result, failure: (index: Int, at: SCTPDuration), survivorRate: Double
    ) -> SCTPDuration? {
        let first = Int(failure.at.nanoseconds / result.binWidth.nanoseconds)
        guard first < result.timeline.count else { return nil }
        for bin in first..<result.timeline.count where result.timeline[bin] >= 0.9 * survivorRate {
            return result.binWidth * Int64(bin + 1) - failure.at
        }
        return nil
    }

    static func fmt(_ x: Double) -> String {
        let r = (x * 10).rounded() / 10
        return String(r)
    }

    static func pct(_ x: Double) -> String { fmt(x * 100) + "%" }
}
