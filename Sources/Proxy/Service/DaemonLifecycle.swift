import AggOperations
import AggTransport
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The signals a daemon handles: SIGHUP reloads, SIGINT and SIGTERM stop. They are blocked in every thread and taken
/// with sigwait(2) on the main thread, so no handler runs at an arbitrary point.
enum DaemonSignal {
    case reload
    case terminate(Int32)

    private static func set() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        return set
    }

    /// Blocks the signals in this thread and every thread started after it; call before the event loops exist.
    static func block() {
        var set = set()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for the next signal.
    static func wait() -> DaemonSignal {
        var set = set()
        var signal: Int32 = 0
        sigwait(&set, &signal)
        return signal == SIGHUP ? .reload : .terminate(signal)
    }
}

/// Keeps systemd's one-line status (`systemctl status`) current: active paths, streams and throughput, refreshed
/// when the daemon reports a change and every few seconds. Confined to the service's event loop.
final class StatusReporter: @unchecked Sendable {
    let notifier: SystemdNotifier
    let eventLoop: any EventLoop
    /// The part of the line before the throughput, e.g. "2 clients, 3 active paths, 5 streams".
    private let describe: () -> String
    private let statistics: () -> SCTPDriver.Statistics
    private var lastSample: (sent: Int, received: Int, at: NIODeadline)?
    private var bitsPerSecond = (up: 0, down: 0)

    init(
        notifier: SystemdNotifier, eventLoop: any EventLoop, describe: @escaping () -> String,
        statistics: @escaping () -> SCTPDriver.Statistics
    ) {
        self.notifier = notifier
        self.eventLoop = eventLoop
        self.describe = describe
        self.statistics = statistics
    }

    /// The status line with the throughput of the last sampling interval. On the event loop.
    func line() -> String {
        eventLoop.preconditionInEventLoop()
        return describe() + ", up " + Self.rate(bitsPerSecond.up) + ", down "
            + Self.rate(bitsPerSecond.down)
    }

    /// Measures the throughput since the previous sample. On the event loop.
    func sample(now: NIODeadline = .now()) {
        eventLoop.preconditionInEventLoop()
        let stats = statistics()
        if let last = lastSample {
            let seconds = Double(max((now - last.at).nanoseconds, 1)) / 1e9
            bitsPerSecond.up = Self.bitsPerSecond(bytes: stats.bytesSent - last.sent, seconds: seconds)
            bitsPerSecond.down = Self.bitsPerSecond(bytes: stats.bytesReceived - last.received, seconds: seconds)
        }
        lastSample = (stats.bytesSent, stats.bytesReceived, now)
    }

    /// The rate of `bytes` over `seconds`, in floating point: bytes × 8 × 10⁹ overflows Int64 above about
    /// 1.15 GB per sample. A counter that went back (a new driver) gives 0; the result is clamped to Int.
    static func bitsPerSecond(bytes: Int, seconds: Double) -> Int {
        let rate = Double(max(bytes, 0)) * 8 / seconds
        return rate < Double(Int.max) ? Int(rate) : Int.max
    }

    /// Sends the current line as `STATUS=`. On the event loop.
    func report() {
        notifier.status(line())
    }

    /// Samples and reports every `interval` until the task is cancelled.
    func startPeriodic(interval: TimeAmount) -> RepeatedTask {
        eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { _ in
            self.sample()
            self.report()
        }
    }

    /// "840 kbit/s", "12.3 Mbit/s".
    static func rate(_ bitsPerSecond: Int) -> String {
        if bitsPerSecond < 1_000_000 { return "\(bitsPerSecond / 1000) kbit/s" }
        let tenths = bitsPerSecond / 100_000
        return "\(tenths / 10).\(tenths % 10) Mbit/s"
    }
}
