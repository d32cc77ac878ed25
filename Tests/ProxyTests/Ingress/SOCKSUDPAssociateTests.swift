import AggIngress
import AggProtocol
import NIOCore
import NIOEmbedded
import SCTPEngine
import Synchronization
import Testing

@testable import Proxy

/// A connector that offers UDP ASSOCIATE and answers with a fixed relay address.
final class FakeUDPConnector: ProxyConnector {
    let relay: SocketAddress
    private let sources = Mutex<[ProxyTarget]>([])

    init(relay: SocketAddress) {
        self.relay = relay
    }

    var associations: [ProxyTarget] { sources.withLock { $0 } }

    func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void> {
        inbound.eventLoop.makeFailedFuture(ProxyFailure.generalFailure)
    }

    var supportsUDPAssociate: Bool { true }

    func associateUDP(expectedSource: ProxyTarget, control: any Channel) -> EventLoopFuture<SocketAddress> {
        sources.withLock { $0.append(expectedSource) }
        return control.eventLoop.makeSucceededFuture(relay)
    }
}

@Suite("Ingress SOCKS5 UDP ASSOCIATE")
struct SOCKSUDPAssociateTests {
    static func channel(
        _ connector: FakeUDPConnector, configuration: ProxyIngressConfiguration = .init()
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try ProxyIngress.configure(
            channel: channel, protocols: .all, configuration: configuration, connector: connector)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func replyCarriesTheRelayAddressRFC1928Section7() throws {
        let connector = FakeUDPConnector(relay: try SocketAddress(ipAddress: "127.0.0.1", port: 0x1234))
        let channel = try Self.channel(connector)
        try channel.send([5, 1, 0] + [5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(try channel.written() == [5, 0] + [5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34])
        #expect(connector.associations == [.address(.anyV4, port: 0)])
        // The control connection stays open and carries nothing more: bytes on it are ignored.
        try channel.send([1, 2, 3])
        #expect(channel.isActive)
        #expect(try channel.written() == [])
    }

    @Test func ipv6RelayAndTheClientsAnnouncedSource() throws {
        let connector = FakeUDPConnector(relay: try SocketAddress(ipAddress: "::1", port: 4000))
        let channel = try Self.channel(connector)
        try channel.send([5, 1, 0] + [5, 3, 0, 1, 127, 0, 0, 1, 0x13, 0x88])
        let reply: [UInt8] = [5, 0, 0, 4] + [UInt8](repeating: 0, count: 15) + [1] + [0x0F, 0xA0]
        #expect(try channel.written() == [5, 0] + reply)
        #expect(connector.associations == [.address(SCTPIPAddress(v4: 127, 0, 0, 1), port: 5000)])
    }

    @Test func credentialsAreRequiredAsForConnect() throws {
        var configuration = ProxyIngressConfiguration()
        configuration.credentials = .init(username: "user", password: "pw")
        let connector = FakeUDPConnector(relay: try SocketAddress(ipAddress: "127.0.0.1", port: 9))
        // Without the username/password method: refused before any request.
        let refused = try Self.channel(connector, configuration: configuration)
        try refused.send([5, 1, 0])
        #expect(try refused.written() == [5, 0xFF])
        #expect(!refused.isActive)
        // A wrong password: refused.
        let wrong = try Self.channel(connector, configuration: configuration)
        try wrong.send([5, 1, 2] + [1, 4] + Array("user".utf8) + [2] + Array("px".utf8))
        #expect(try wrong.written() == [5, 2, 1, 1])
        #expect(!wrong.isActive)
        #expect(connector.associations.isEmpty)
        // The right one: associated.
        let good = try Self.channel(connector, configuration: configuration)
        try good.send([5, 1, 2] + [1, 4] + Array("user".utf8) + [2] + Array("pw".utf8))
        try good.send([5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(try good.written() == [5, 2, 1, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 9])
        #expect(connector.associations.count == 1)
    }
}
