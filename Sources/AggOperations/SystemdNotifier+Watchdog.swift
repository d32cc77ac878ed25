import NIOCore

extension SystemdNotifier {
    /// The ping period: half of `WatchdogSec=`, as sd_watchdog_enabled(3) advises; nil when there is no watchdog.
    public var watchdogPingPeriod: TimeAmount? {
        guard isEnabled, let interval = watchdogInterval, interval > .zero else { return nil }
        let (seconds, attoseconds) = interval.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        return .nanoseconds(max(nanoseconds / 2, 1))
    }

    /// Pings the watchdog now and then every `watchdogPingPeriod` on `eventLoop`; nil when no watchdog is asked for.
    /// A ping proves only that this loop turns, so pass the loop that runs the SCTP driver, not an idle one. Cancel
    /// the task when stopping.
    public func startWatchdog(on eventLoop: any EventLoop) -> RepeatedTask? {
        guard let period = watchdogPingPeriod else { return nil }
        return eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: period) { _ in
            self.watchdogPing()
        }
    }
}
