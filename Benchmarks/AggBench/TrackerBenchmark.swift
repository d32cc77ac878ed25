@_spi(Benchmarks) import SCTPEngine

/// Measures the receiver's TSN bookkeeping (`DataTracker`) under out-of-order arrival: what one DATA chunk and the
/// SACK after it cost when many ranges of TSNs are held above the cumulative TSN. The hostile order leaves every
/// other TSN missing, in random order, then fills the holes lowest first, so each fill moves the cumulative TSN
/// past one of the n ranges; the CMT-like order loses one TSN in ten and fills it a hundred TSNs later.
enum TrackerBenchmark: Benchmark {
    static let name = "tracker"
    static let summary = "receiver TSN tracking: ns per out-of-order chunk with n gaps held"

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(arguments, known: ["count", "trials"])
        if options.wantsHelp {
            print(
                """
                usage: agg-bench tracker [--count N] [--trials T]
                  --count   TSNs fed per case (default 100000)
                  --trials  runs per case; the best is reported (default 3)
                """
            )
            return
        }
        let count = try options.int("count", default: 100_000)
        let trials = try options.int("trials", default: 3)
        let cases: [(String, [UInt32])] = [
            ("in order", Array(1...UInt32(count))),
            ("cmt-like: 1 in 10 late", cmtLike(count)),
            ("hostile: \(count / 2) gaps", hostile(count)),
        ]
        print("tracker: \(count) TSNs per case, one SACK per TSN, best of \(trials)")
        print("case                          ns/TSN    total ms")
        var sink = 0
        for (label, order) in cases {
            var best = Duration.seconds(1_000_000)
            for _ in 0..<trials {
                var probe = SCTPDataTrackerProbe(initialTSN: 1, maxGapRanges: count)
                let clock = ContinuousClock()
                let start = clock.now
                for tsn in order { sink &+= probe.receivePacket(CollectionOfOne(tsn)) }
                best = min(best, start.duration(to: clock.now))
                precondition(probe.cumulativeTSN == UInt32(count), "every TSN must be acknowledged")
            }
            let nanoseconds = Double(best.components.seconds) * 1e9 + Double(best.components.attoseconds) * 1e-9
            let perTSN = Int((nanoseconds / Double(order.count)).rounded())
            print(
                "\(label.padded(to: 28)) \(String(perTSN).leftPadded(to: 8))  \(String(Int(nanoseconds / 1e6)).leftPadded(to: 10))"
            )
        }
        print("(sink \(sink))")
    }

    /// Every tenth TSN arrives 100 TSNs late, as a slow path's data does under CMT.
    static func cmtLike(_ count: Int) -> [UInt32] {
        var order: [UInt32] = []
        var late: [(due: Int, tsn: UInt32)] = []
        for tsn in 1...UInt32(count) {
            if tsn % 10 == 0 { late.append((Int(tsn) + 100, tsn)) } else { order.append(tsn) }
            while let first = late.first, first.due <= Int(tsn) {
                order.append(first.tsn)
                late.removeFirst()
            }
        }
        order += late.map(\.tsn)
        return order
    }

    /// The even TSNs in random order, then the odd ones from the lowest up.
    static func hostile(_ count: Int) -> [UInt32] {
        var random = SCTPRandom(seed: 7)
        var evens = stride(from: 2, through: UInt32(count), by: 2).map { $0 }
        evens.shuffle(using: &random)
        return evens + stride(from: 1, through: UInt32(count), by: 2).map { $0 }
    }
}
