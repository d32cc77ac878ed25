import NIOCore
import NIOEmbedded
import Testing

@testable import AggOperations

extension OperationsTests {
    /// The notifier against a fake NOTIFY_SOCKET passed by path: no process environment is touched, so these run in
    /// parallel with everything else.
    @Suite struct SystemdNotifierTests {
        @Test func readyStatusReloadingStoppingAndWatchdogArriveAsAssignments() throws {
            let socket = try FakeNotifySocket()
            let notifier = SystemdNotifier(socketPath: socket.address)
            #expect(notifier.isEnabled)

            #expect(notifier.ready(status: "2 paths up"))
            #expect(socket.receive() == "READY=1\nSTATUS=2 paths up")
            #expect(notifier.ready())
            #expect(socket.receive() == "READY=1")
            #expect(notifier.status("association 1 established"))
            #expect(socket.receive() == "STATUS=association 1 established")
            #expect(notifier.watchdogPing())
            #expect(socket.receive() == "WATCHDOG=1")
            #expect(notifier.stopping())
            #expect(socket.receive() == "STOPPING=1")
        }

        @Test func reloadingCarriesTheCurrentMonotonicTime() throws {
            let socket = try FakeNotifySocket()
            let notifier = SystemdNotifier(socketPath: socket.address)
            let before = SystemdNotifier.monotonicMicroseconds()
            #expect(notifier.reloading(status: "reloading keys"))
            let after = SystemdNotifier.monotonicMicroseconds()

            let lines = try #require(socket.receive()).split(separator: "\n").map(String.init)
            #expect(lines.count == 3)
            #expect(lines.first == "RELOADING=1")
            #expect(lines.last == "STATUS=reloading keys")
            let stamp = try #require(
                lines[1].split(separator: "=", maxSplits: 1).last.flatMap { UInt64($0) })
            #expect(lines[1].hasPrefix("MONOTONIC_USEC="))
            #expect((before...after).contains(stamp))
        }

        @Test func abstractNamespaceAddressesAreReached() throws {
            let socket = try FakeNotifySocket(abstract: true)
            #expect(socket.address.hasPrefix("@"))
            #expect(SystemdNotifier(socketPath: socket.address).ready())
            #expect(socket.receive() == "READY=1")
        }

        @Test func statusTextCannotInjectAnotherAssignment() throws {
            let socket = try FakeNotifySocket()
            #expect(
                SystemdNotifier(socketPath: socket.address).status("line one\nREADY=1\r\nthree\0four"))
            #expect(socket.receive() == "STATUS=line one READY=1 three four")
        }

        @Test func withoutASocketEveryCallIsANoOp() {
            let notifier = SystemdNotifier(socketPath: nil, watchdogInterval: .seconds(30))
            #expect(!notifier.isEnabled)
            #expect(notifier.ready(status: "x"))
            #expect(notifier.reloading())
            #expect(notifier.stopping())
            #expect(notifier.watchdogPing())
            #expect(notifier.watchdogPingPeriod == nil)
            #expect(notifier.startWatchdog(on: EmbeddedEventLoop()) == nil)
            #expect(!SystemdNotifier(socketPath: "").isEnabled)
        }

        @Test func watchdogEnvironmentIsReadAsSdWatchdogEnabledReadsIt() {
            #expect(SystemdNotifier.watchdogInterval(microseconds: "30000000", pid: nil, ownPID: 7) == .seconds(30))
            #expect(SystemdNotifier.watchdogInterval(microseconds: "30000000", pid: "7", ownPID: 7) == .seconds(30))
            #expect(SystemdNotifier.watchdogInterval(microseconds: "30000000", pid: "8", ownPID: 7) == nil)
            #expect(SystemdNotifier.watchdogInterval(microseconds: "30000000", pid: "x", ownPID: 7) == nil)
            #expect(SystemdNotifier.watchdogInterval(microseconds: "0", pid: nil, ownPID: 7) == nil)
            #expect(SystemdNotifier.watchdogInterval(microseconds: "-5", pid: nil, ownPID: 7) == nil)
            #expect(SystemdNotifier.watchdogInterval(microseconds: nil, pid: "7", ownPID: 7) == nil)
        }

        @Test func aMissingSocketReportsFailureInsteadOfCrashing() {
            let notifier = SystemdNotifier(socketPath: "/nonexistent/agg/notify")
            #expect(notifier.isEnabled)
            #expect(!notifier.ready())
            #expect(!SystemdNotifier(socketPath: "relative/path").ready())
        }

        @Test func watchdogPingsAtHalfTheIntervalOnTheEventLoop() throws {
            let socket = try FakeNotifySocket()
            let notifier = SystemdNotifier(socketPath: socket.address, watchdogInterval: .seconds(30))
            #expect(notifier.watchdogPingPeriod == .seconds(15))

            let loop = EmbeddedEventLoop()
            let task = try #require(notifier.startWatchdog(on: loop))
            loop.run()
            #expect(socket.receive() == "WATCHDOG=1")  // At once, then every 15 s.
            loop.advanceTime(by: .seconds(14))
            #expect(socket.receiveIfReady() == nil)
            loop.advanceTime(by: .seconds(1))
            #expect(socket.receive() == "WATCHDOG=1")
            loop.advanceTime(by: .seconds(15))
            #expect(socket.receive() == "WATCHDOG=1")

            task.cancel()
            loop.advanceTime(by: .seconds(60))
            #expect(socket.receiveIfReady() == nil)
        }

        @Test func noWatchdogIntervalMeansNoPings() throws {
            let socket = try FakeNotifySocket()
            let notifier = SystemdNotifier(socketPath: socket.address, watchdogInterval: nil)
            #expect(notifier.startWatchdog(on: EmbeddedEventLoop()) == nil)
        }

        @Test func encodingJoinsAssignmentsWithNewlines() {
            #expect(SystemdNotifier.encode([("READY", "1"), ("STATUS", "ok")]) == "READY=1\nSTATUS=ok")
            #expect(SystemdNotifier.encode([]) == "")
        }
    }
}
