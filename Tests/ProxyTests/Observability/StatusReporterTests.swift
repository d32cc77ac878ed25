import AggOperations
import AggTransport
import NIOCore
import NIOEmbedded
import Testing

@testable import Proxy

/// The systemd status line's throughput: the rate of the last interval, whatever the volume (a sample above
/// about 1.15 GB used to trap on an Int64 overflow in bytes × 8 × 10⁹).
@Suite struct StatusReporterTests {
    /// The driver's counters as the test sets them.
    final class Counters: @unchecked Sendable {
        var statistics = SCTPDriver.Statistics()
    }

    static func reporter(_ counters: Counters, loop: EmbeddedEventLoop) -> StatusReporter {
        StatusReporter(
            notifier: SystemdNotifier(socketPath: nil), eventLoop: loop, describe: { "test" },
            statistics: { counters.statistics })
    }

    @Test func rateIsTheGrowthOverTheInterval() {
        let loop = EmbeddedEventLoop()
        let counters = Counters()
        let reporter = Self.reporter(counters, loop: loop)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        reporter.sample(now: start)
        counters.statistics.bytesSent = 1_250_000
        counters.statistics.bytesReceived = 125_000
        reporter.sample(now: start + .seconds(1))
        #expect(reporter.line() == "test, up 10.0 Mbit/s, down 1.0 Mbit/s")
    }

    @Test(arguments: [1_200_000_000, 50_000_000_000, Int.max / 2])
    func hugeSamplesDoNotTrap(_ bytes: Int) {
        let loop = EmbeddedEventLoop()
        let counters = Counters()
        let reporter = Self.reporter(counters, loop: loop)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        reporter.sample(now: start)
        counters.statistics.bytesSent = bytes
        counters.statistics.bytesReceived = bytes
        reporter.sample(now: start + .seconds(5))
        let expected = Double(bytes) * 8 / 5
        let line = reporter.line()
        let upMbit = Double(line.split(separator: " ")[2]) ?? -1
        #expect(abs(upMbit * 1e6 - expected) <= expected * 0.001, "\(line)")
    }

    @Test func aCounterThatWentBackIsNotANegativeRate() {
        let loop = EmbeddedEventLoop()
        let counters = Counters()
        let reporter = Self.reporter(counters, loop: loop)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        counters.statistics.bytesSent = 5_000_000
        reporter.sample(now: start)
        counters.statistics.bytesSent = 0
        reporter.sample(now: start + .seconds(1))
        #expect(reporter.line() == "test, up 0 kbit/s, down 0 kbit/s")
    }
}
