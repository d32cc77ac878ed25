import AggEgress
import AggIngress
import AggProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import AggObservability
@testable import Proxy
@testable import SCTPEngine

/// Issue 21: the stream limit is negotiated between a client and a server with different settings, both report the
/// smaller one, and a connection beyond it waits for a stream to free before it gets the proper refusal.
@Suite("Stream limit and waiting for a stream", .serialized, .timeLimit(.minutes(2)))
struct StreamWaitTests {
    /// A running pair: the server allows `serverStreams`, the client `clientStreams`, the client waits `wait` for a
    /// free stream with a queue of `queue`.
    struct Pair {
        let group: MultiThreadedEventLoopGroup
        let server: AggServerService
        let client: AggClientService
        let origin: any Channel
        let socksPort: Int

        var originPort: UInt16 { UInt16(origin.localAddress!.port!) }

        static func start(serverStreams: Int, clientStreams: Int, wait: Duration, queue: Int) throws -> Pair {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            let origin = try OriginServer.bind(on: group.next())
            let listen = [
                SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: try EndToEndHarness.freeUDPPort())
            ]
            var serverConfiguration = AggServerService.Configuration(
                listen: listen, keys: [EndToEndHarness.key],
                egress: EgressConnector(
                    policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]), connectTimeout: .seconds(5)))
            serverConfiguration.limits.streamsPerAssociation = serverStreams
            let server = try AggServerService.start(
                configuration: serverConfiguration, on: group.next(), logger: EndToEndHarness.logger("aggserver")
            ).wait()
            var clientConfiguration = AggClientService.Configuration(
                servers: listen, paths: [SCTPIPAddress(v4: 127, 0, 0, 1)], key: EndToEndHarness.key)
            clientConfiguration.limits.streamsPerAssociation = clientStreams
            clientConfiguration.limits.streamWait = wait
            clientConfiguration.limits.streamWaitQueue = queue
            let client = try AggClientService.start(
                configuration: clientConfiguration, on: group.next(), logger: EndToEndHarness.logger("aggclient")
            ).wait()
            let port = try client.listen(host: "127.0.0.1", port: 0, protocols: .all).wait().localAddress!.port!
            try client.whenReady().wait()
            return Pair(group: group, server: server, client: client, origin: origin, socksPort: port)
        }

        func stop() {
            _ = try? client.stop().wait()
            _ = try? server.stop().wait()
            try? origin.close().wait()
            try? group.syncShutdownGracefully()
        }

        /// A SOCKS5 CONNECT to the origin: the socket and the reply code (nil if the proxy closed).
        func connect() -> (AttackSocket, UInt8?)? {
            guard let socket = AttackSocket(port: socksPort) else { return nil }
            return (socket, socket.socks5Connect(port: originPort))
        }

        /// The stream limit each side uses for its association.
        func limits() throws -> (client: Int, server: Int) {
            let client = try client.eventLoop.submit { self.client.associationStates().first?.streamLimit ?? -1 }.wait()
            let server = try server.eventLoop.submit { self.server.associationStates().first?.streamLimit ?? -1 }.wait()
            return (client, server)
        }
    }

    @Test func bothSidesUseTheSmallerLimit() throws {
        let serverSmaller = try Pair.start(serverStreams: 3, clientStreams: 7, wait: .zero, queue: 0)
        defer { serverSmaller.stop() }
        #expect(try serverSmaller.limits() == (3, 3))
        let clientSmaller = try Pair.start(serverStreams: 9, clientStreams: 2, wait: .zero, queue: 0)
        defer { clientSmaller.stop() }
        #expect(try clientSmaller.limits().client == 2)
        #expect(try clientSmaller.limits().server == 9, "the server admits up to its own limit")

        // The client's limit holds: a third connection is refused with SOCKS reply 1 at once (no wait configured).
        let held = (0..<2).compactMap { _ in clientSmaller.connect() }
        #expect(held.map(\.1) == [0, 0])
        let third = clientSmaller.connect()
        #expect(third?.1 == 1)
    }

    /// More connections than the limit: one waits and gets its stream when another closes; one finds the queue
    /// full and is refused at once; one waits in vain and is refused when its wait ends. Each wait and refusal is
    /// counted, and the status says so.
    @Test func connectionsBeyondTheLimitWaitThenGetTheProperRefusal() throws {
        let pair = try Pair.start(serverStreams: 3, clientStreams: 100, wait: .seconds(2), queue: 1)
        defer { pair.stop() }
        var open = (0..<3).compactMap { _ in pair.connect() }
        #expect(open.map(\.1) == [0, 0, 0])

        // The fourth waits: its reply comes only once the first connection has gone.
        let waiting = try #require(AttackSocket(port: pair.socksPort))
        #expect(waiting.send([5, 1, 0]) && waiting.receive(2) == [5, 0])
        let port = pair.originPort
        #expect(waiting.send([5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF)]))
        Thread.sleep(forTimeInterval: 0.3)
        // The fifth finds the one-place queue taken: refused at once.
        let started = ContinuousClock.now
        let queueFull = pair.connect()
        #expect(queueFull?.1 == 1)
        #expect(ContinuousClock.now - started < .seconds(1), "a full queue refuses at once")

        open.removeFirst()  // Closes the first connection; its stream frees and goes to the waiting one.
        let reply = waiting.receive(10)
        #expect(reply?[1] == 0, "the waiting connection got the freed stream")

        // A sixth waits its two seconds in vain.
        let waitStarted = ContinuousClock.now
        let inVain = pair.connect()
        let waited = ContinuousClock.now - waitStarted
        #expect(inVain?.1 == 1)
        #expect(waited >= .milliseconds(1900) && waited < .seconds(5), "refused when its wait ended: \(waited)")

        let counters = try pair.client.eventLoop.submit { pair.client.metrics.values }.wait()
        let refusals = try pair.client.eventLoop.submit { pair.client.metrics.refusals }.wait()
        #expect(counters.streamWaits == 2)
        #expect(counters.connections[ConnectionOutcome.tooManyStreams.rawValue] == 2)
        #expect(counters.connections[ConnectionOutcome.generalFailure.rawValue] == nil)
        #expect(refusals[.streamsPerAssociation] == 2)
        let status = StatusTable.render(
            StatusSnapshot(role: "aggclient", version: "test", uptime: 1, associations: [], counters: counters))
        #expect(status.contains("every stream in use: 2 connections waited, 2 refused"), "\(status)")
        withExtendedLifetime((open, waiting)) {}
    }
}
