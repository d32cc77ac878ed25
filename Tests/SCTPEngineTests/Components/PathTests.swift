import Testing

@testable import SCTPEngine

extension Components {
    @Suite struct PathTests {
        func makePath(pfThreshold: Int = 1, maxRetransmissions: Int = 3) -> Path {
            var configuration = Path.Configuration()
            configuration.potentiallyFailedThreshold = pfThreshold
            configuration.maxRetransmissions = maxRetransmissions
            return Path(
                id: PathID(1), remoteAddress: SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 9899), mtu: 1200,
                configuration: configuration, isConfirmed: true)
        }

        @Test func errorsAbovePFMRMakePathPotentiallyFailedThenInactive() {
            var path = makePath()
            #expect(path.recordError() == nil)
            #expect(path.recordError() == .becamePotentiallyFailed)
            #expect(path.state == .potentiallyFailed)
            #expect(path.recordError() == nil)
            #expect(path.recordError() == .becameInactive)
            #expect(path.state == .inactive)
            #expect(path.recordError() == nil)
        }

        @Test func acknowledgementClearsErrorCountAndReactivates() {
            var path = makePath()
            _ = path.recordError()
            _ = path.recordError()
            #expect(path.recordReachable() == .becameActive)
            #expect(path.errorCount == 0)
            #expect(path.recordReachable() == nil)
        }

        @Test func unconfirmedPathStaysUnconfirmedUntilHeartbeatAck() {
            var path = Path(
                id: PathID(2), remoteAddress: SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 2), port: 9899), mtu: 1200)
            #expect(path.state == .unconfirmed)
            #expect(path.recordError() == nil)
            let now = SCTPTime(nanoseconds: 5_000_000)
            path.recordHeartbeatSent(nonce: 42, now: now)
            #expect(path.handleHeartbeatAck(nonce: 41, sentAt: now, now: now + .milliseconds(30)) == nil)
            #expect(path.handleHeartbeatAck(nonce: 42, sentAt: now, now: now + .milliseconds(30)) == .milliseconds(30))
            #expect(path.confirm() == .becameActive)
            #expect(path.isActive)
        }

        @Test func t3ExpiryBacksOffRTOAndCollapsesWindow() {
            var path = makePath(pfThreshold: 0)
            let change = path.handleRetransmissionTimeout()
            #expect(change == .becamePotentiallyFailed)
            #expect(path.rto.rto == .seconds(2))
            #expect(path.congestion.cwnd == 1200)
            #expect(path.counters.t3Expiries == 1)
        }

        @Test func idlePathWindowShrinksOnNextSend() {
            var path = makePath()
            var clock = FakeClock()
            path.congestion = .newReno(NewRenoController(mtu: 1200))
            if case .newReno(var c) = path.congestion {
                c.window.cwnd = 40 * 1200
                path.congestion = .newReno(c)
            }
            path.recordSent(bytes: 1200, dataBytes: 1100, now: clock.now)
            clock.advance(.seconds(3))  // three RTOs of 1 s
            path.recordSent(bytes: 1200, dataBytes: 1100, now: clock.now)
            #expect(path.congestion.cwnd == 5 * 1200)
        }
    }
}
