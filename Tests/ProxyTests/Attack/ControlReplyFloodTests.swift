import AggEgress
import AggProtocol
import AggTransport
import Foundation
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggObservability
@testable import Proxy

/// A key holder's association sends PINGs as fast as it can. Each PONG would be queued on the server's association
/// (without end while the peer keeps its receive window shut); the server answers a bounded number and counts the
/// rest.
@Suite struct ControlReplyFloodTests {
    /// A bare SCTP association that authenticates with the real key, then does what the test asks: the attacker.
    final class RogueClient: @unchecked Sendable {
        let driver: SCTPDriver
        var authenticator: ClientAuthenticator
        var association: SCTPAssociationID?
        var pongs = 0

        init(driver: SCTPDriver, key: PreSharedKey) {
            self.driver = driver
            authenticator = ClientAuthenticator(key: key, nonce: Array(repeating: 7, count: AggLimits.authFieldLength))
        }

        var isAuthenticated: Bool { authenticator.isAuthenticated }

        func handle(_ event: SCTPEvent) {
            guard case .message(let id, let message) = event,
                case .control(let control)? = try? AggMessage.decode(message)
            else { return }
            if case .pong = control {
                pongs += 1
                return
            }
            if let reply = try? authenticator.receive(control) { driver.send(reply, on: id) }
        }
    }

    /// 200 PINGs at once: the server answers the burst of 8 (and what refills while the test waits, 4 a second),
    /// counts every other one in `agg_refusals_total{reason="control_replies"}`, and the association stays up.
    /// On main all 200 were answered.
    @Test func pingFloodGetsABoundedNumberOfPongs() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let serverLoop = group.next()
        let clientLoop = group.next()
        let listen = [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: try EndToEndHarness.freeUDPPort())]
        var configuration = AggServerService.Configuration(
            listen: listen, keys: [EndToEndHarness.key],
            egress: EgressConnector(policy: EgressPolicy(allowed: []), connectTimeout: .seconds(5)))
        configuration.allowPlaintext = true
        let server = try AggServerService.start(
            configuration: configuration, on: serverLoop, logger: EndToEndHarness.logger("aggserver")
        ).wait()
        var sctp = SCTPConfiguration()
        sctp.localPort = 50_001
        let driver = try SCTPDriver.bind(
            localAddresses: [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)], configuration: sctp,
            seed: 3, on: clientLoop
        ).wait()
        let rogue = RogueClient(driver: driver, key: EndToEndHarness.key)
        try clientLoop.submit {
            driver.onEvent = rogue.handle
            rogue.association = driver.connect(to: listen[0], peerPort: AggServerService.sctpPort)
        }.wait()
        let authenticated = try AttackHarness.wait(seconds: 10) {
            try clientLoop.submit { rogue.isAuthenticated }.wait()
        }
        #expect(authenticated)

        let start = ContinuousClock.now
        try clientLoop.submit {
            for value in 0..<200 { driver.send(ControlMessage.ping(UInt64(value)), on: rogue.association!) }
        }.wait()
        // Every PING is either answered or refused.
        let settled = try AttackHarness.wait(seconds: 10) {
            let pongs = try clientLoop.submit { rogue.pongs }.wait()
            let refused = try serverLoop.submit { server.metrics.refusals[.controlReplies] ?? 0 }.wait()
            return pongs + refused == 200
        }
        #expect(settled)
        let elapsed = Double((ContinuousClock.now - start).components.seconds) + 1
        let pongs = try clientLoop.submit { rogue.pongs }.wait()
        let refused = try serverLoop.submit { server.metrics.refusals[.controlReplies] ?? 0 }.wait()
        #expect(pongs >= 8)
        #expect(Double(pongs) <= 8 + 4 * elapsed, "\(pongs) PONGs in \(elapsed) s")
        #expect(pongs + refused == 200)
        let text = try serverLoop.submit { server.metrics.registry.emitToString() }.wait()
        #expect(text.contains("agg_refusals_total{reason=\"control_replies\"} \(refused)"))
        let associations = try serverLoop.submit { server.driver.endpoint.associationIDs.count }.wait()
        #expect(associations == 1)

        try server.stop().wait()
        try driver.close().wait()
        try group.syncShutdownGracefully()
    }
}
