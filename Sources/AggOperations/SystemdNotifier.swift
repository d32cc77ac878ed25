import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Tells the service manager how the daemon is doing (sd_notify(3)): ready, reloading, stopping, a status line and
/// watchdog pings. Every call is a no-op when the daemon was not started by systemd with `Type=notify`.
///
/// Life cycle under `Type=notify` (systemd.service(5)): send `ready(status:)` once every listener is bound and the
/// first association is being set up; on SIGHUP send `reloading()`, reload, then `ready(status:)` again; on SIGTERM
/// send `stopping()` before closing listeners. `startWatchdog(on:)` pings at half of `WatchdogSec=`.
public struct SystemdNotifier: Sendable {
    /// Where notifications go.
    enum Destination: Sendable, Equatable {
        /// Not started by systemd (no `NOTIFY_SOCKET`): every call does nothing.
        case none
        /// An explicit AF_UNIX datagram socket: a path, or `@name` for the abstract namespace.
        case socket(path: String)
    }

    let destination: Destination
    /// How often systemd expects `WATCHDOG=1` (`WatchdogSec=`); nil when the watchdog is off or meant for another
    /// process. Ping at half of it; `startWatchdog(on:)` does.
    public let watchdogInterval: Duration?
    private let logger: Logger?

    /// The notifier for this process: reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` as sd_notify(3) and
    /// sd_watchdog_enabled(3) do. The environment is left as it is.
    public init(logger: Logger? = nil) {
        func read(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        if let socket = read("NOTIFY_SOCKET"), !socket.isEmpty {
            self.destination = .socket(path: socket)
        } else {
            self.destination = .none
        }
        self.watchdogInterval = Self.watchdogInterval(
            microseconds: read("WATCHDOG_USEC"), pid: read("WATCHDOG_PID"), ownPID: getpid())
        self.logger = logger
    }

    /// The watchdog period the environment asks of process `ownPID`, as sd_watchdog_enabled(3) reads it: none without
    /// a positive `WATCHDOG_USEC`, or when `WATCHDOG_PID` names another process.
    static func watchdogInterval(microseconds: String?, pid: String?, ownPID: pid_t) -> Duration? {
        guard let microseconds, let value = UInt64(microseconds), value > 0 else { return nil }
        if let pid {
            guard let named = pid_t(pid), named == ownPID else { return nil }
        }
        return .microseconds(Int64(clamping: value))
    }

    /// A notifier that sends to `socketPath` (as `NOTIFY_SOCKET` spells it) without touching the environment; nil
    /// makes every call a no-op. Tests use it with their own socket.
    public init(socketPath: String?, watchdogInterval: Duration? = nil, logger: Logger? = nil) {
        if let socketPath, !socketPath.isEmpty {
            self.destination = .socket(path: socketPath)
        } else {
            self.destination = .none
        }
        self.watchdogInterval = watchdogInterval
        self.logger = logger
    }

    /// True when notifications go somewhere.
    public var isEnabled: Bool { destination != .none }

    // MARK: - Notifications

    /// `READY=1`: start-up is complete (or a reload finished); systemd starts units ordered after this one.
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        send([("READY", "1")] + Self.statusField(status))
    }

    /// `STATUS=…`: a one-line status shown by `systemctl status`.
    @discardableResult
    public func status(_ text: String) -> Bool {
        send(Self.statusField(text))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (which `Type=notify-reload` in systemd ≥ 253 requires to match the reload
    /// to this message). Send `ready(status:)` when the reload is done.
    @discardableResult
    public func reloading(status: String? = nil) -> Bool {
        send(
            [("RELOADING", "1"), ("MONOTONIC_USEC", String(Self.monotonicMicroseconds()))]
                + Self.statusField(status))
    }

    /// `STOPPING=1`: the daemon is shutting down.
    @discardableResult
    public func stopping(status: String? = nil) -> Bool {
        send([("STOPPING", "1")] + Self.statusField(status))
    }

    /// `WATCHDOG=1`: the daemon is alive.
    @discardableResult
    public func watchdogPing() -> Bool {
        send([("WATCHDOG", "1")])
    }

    // MARK: - Sending

    /// Sends `fields` as one notification; true when it was delivered or there is nowhere to send it.
    @discardableResult
    public func send(_ fields: [(name: String, value: String)]) -> Bool {
        let state = Self.encode(fields)
        let result: CInt
        switch destination {
        case .none:
            return true
        case .socket(let path):
            result = state.withCString { csystemd_notify_to(path, $0, strlen($0)) }
        }
        guard result >= 0 else {
            logger?.warning(
                "systemd notification failed",
                metadata: ["state": "\(state)", "error": "\(String(cString: strerror(-result)))"])
            return false
        }
        return true
    }

    /// The datagram text: one `NAME=value` line per field. A value loses its line breaks (a newline would start a
    /// new assignment) and NUL bytes (the protocol is text).
    static func encode(_ fields: [(name: String, value: String)]) -> String {
        fields.map { field in
            let value = String(
                field.value.map { $0 == "\n" || $0 == "\r\n" || $0 == "\r" || $0 == "\0" ? " " : $0 })
            return "\(field.name)=\(value)"
        }.joined(separator: "\n")
    }

    private static func statusField(_ status: String?) -> [(name: String, value: String)] {
        guard let status else { return [] }
        return [("STATUS", status)]
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC=` against.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }
}
