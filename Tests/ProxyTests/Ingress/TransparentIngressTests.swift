import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import SCTPEngine
import Synchronization
import Testing

@testable import AggIngress

#if canImport(Glibc)
    import Glibc
#endif

/// Router mode's ingress without root: the sockaddr SO_ORIGINAL_DST returns, the choice between it and the socket's
/// local address, the loop check, and the listener opening a connection at once to where it was going.
@Suite struct TransparentIngressTests {
    static let web = SCTPSocketAddress(ip: SCTPIPAddress("198.51.100.1")!, port: 8000)

    /// The bytes of a `sockaddr_in` as getsockopt fills it.
    static func sockaddrV4(_ ip: String, _ port: UInt16) -> [UInt8] {
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = port.bigEndian
        raw.sin_addr.s_addr = SCTPIPAddress(ip)!.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        return withUnsafeBytes(of: raw) { Array($0) }
    }

    /// The bytes of a `sockaddr_in6`, padded to a `sockaddr_storage` as `TransparentDestination` reads it.
    static func sockaddrV6(_ ip: String, _ port: UInt16) -> [UInt8] {
        var raw = sockaddr_in6()
        raw.sin6_family = sa_family_t(AF_INET6)
        raw.sin6_port = port.bigEndian
        raw.sin6_flowinfo = 0x1234_5678
        raw.sin6_scope_id = 7
        let bytes = SCTPIPAddress(ip)!.bytes
        withUnsafeMutableBytes(of: &raw.sin6_addr) { target in
            for (i, byte) in bytes.enumerated() { target[i] = byte }
        }
        var storage = [UInt8](repeating: 0, count: MemoryLayout<sockaddr_storage>.size)
        withUnsafeBytes(of: raw) { source in
            for (i, byte) in source.enumerated() { storage[i] = byte }
        }
        return storage
    }

    static func parse(_ bytes: [UInt8]) -> SCTPSocketAddress? {
        bytes.withUnsafeBytes { TransparentDestination.parse(sockaddr: $0) }
    }

    // MARK: - SO_ORIGINAL_DST's sockaddr

    @Test func anIPv4OriginalDestinationKeepsItsAddressAndPortInNetworkOrder() {
        let parsed = Self.parse(Self.sockaddrV4("198.51.100.1", 8000))
        #expect(parsed == Self.web)
        #expect(
            Self.parse(Self.sockaddrV4("10.0.0.1", 0x0150)) == SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 336))
    }

    @Test func anIPv6OriginalDestinationSkipsFlowInfoAndScope() {
        let parsed = Self.parse(Self.sockaddrV6("2001:db8::5", 443))
        #expect(parsed == SCTPSocketAddress(ip: SCTPIPAddress("2001:db8::5")!, port: 443))
    }

    @Test func anIPv4MappedIPv6DestinationBecomesIPv4() {
        #expect(Self.parse(Self.sockaddrV6("::ffff:198.51.100.1", 8000)) == Self.web)
    }

    @Test func otherFamiliesShortBuffersAndPortZeroAreRefused() {
        var unix = Self.sockaddrV4("198.51.100.1", 8000)
        unix.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(AF_UNIX), toByteOffset: 0, as: UInt16.self) }
        #expect(Self.parse(unix) == nil)
        #expect(Self.parse(Array(Self.sockaddrV4("198.51.100.1", 8000).prefix(6))) == nil)
        #expect(Self.parse(Array(Self.sockaddrV6("2001:db8::5", 443).prefix(20))) == nil)
        #expect(Self.parse(Self.sockaddrV4("198.51.100.1", 0)) == nil)
        #expect(Self.parse([]) == nil)
        #expect(Self.parse([UInt8](repeating: 0, count: 128)) == nil, "getsockopt's untouched, zeroed storage")
    }

    // MARK: - Which address

    @Test func theNATRecordWinsAndTheLocalAddressIsTheTProxyFallback() {
        let local = SCTPSocketAddress(ip: SCTPIPAddress("192.168.1.1")!, port: 12345)
        let redirected = TransparentDestination.resolve(
            originalDestination: Self.sockaddrV4("198.51.100.1", 8000), localAddress: local)
        #expect(redirected == Self.web)
        // tproxy, or no conntrack: getsockopt failed, and the accepted socket's own address is the destination.
        #expect(TransparentDestination.resolve(originalDestination: nil, localAddress: Self.web) == Self.web)
        let mapped = SCTPSocketAddress(ip: SCTPIPAddress("::ffff:198.51.100.1")!, port: 8000)
        #expect(TransparentDestination.resolve(originalDestination: nil, localAddress: mapped) == Self.web)
        #expect(TransparentDestination.resolve(originalDestination: [1, 2], localAddress: nil) == nil)
    }

    // MARK: - The loop check

    @Test func aDestinationThatIsOneOfOurListenersIsALoop() {
        let socks = SCTPSocketAddress(ip: .init(v4: 127, 0, 0, 1), port: 1080)
        let transparent = SCTPSocketAddress(ip: .anyV4, port: 12345)
        let lan = SCTPIPAddress("192.168.1.1")!
        let listeners = [socks, transparent]
        let isLocal: (SCTPIPAddress) -> Bool = { $0 == lan }
        // The same address and port.
        #expect(TransparentDestination.isLoop(socks, listeners: listeners, isLocal: isLocal))
        // A wildcard listener's port on an address of this host, or on loopback.
        #expect(TransparentDestination.isLoop(.init(ip: lan, port: 12345), listeners: listeners, isLocal: isLocal))
        #expect(
            TransparentDestination.isLoop(
                .init(ip: .init(v4: 127, 0, 0, 2), port: 12345), listeners: listeners, isLocal: isLocal))
        // The same port elsewhere, or another port here, is not.
        #expect(
            !TransparentDestination.isLoop(.init(ip: Self.web.ip, port: 12345), listeners: listeners, isLocal: isLocal))
        #expect(!TransparentDestination.isLoop(.init(ip: lan, port: 80), listeners: listeners, isLocal: isLocal))
        // SOCKS on loopback only: its port on the LAN address is someone else's.
        #expect(!TransparentDestination.isLoop(.init(ip: lan, port: 1080), listeners: listeners, isLocal: isLocal))
        // A dual-stack [::] listener takes IPv4 too; a 0.0.0.0 one does not take IPv6.
        let dual = [SCTPSocketAddress(ip: .anyV6, port: 12345)]
        #expect(TransparentDestination.isLoop(.init(ip: lan, port: 12345), listeners: dual, isLocal: isLocal))
        let v6 = SCTPIPAddress("fd00::1")!
        #expect(
            !TransparentDestination.isLoop(.init(ip: v6, port: 12345), listeners: listeners, isLocal: { _ in true }))
    }

    @Test func theLocalAddressesAreReadOnlyWhenAPortMatches() {
        let reads = Mutex(0)
        let listeners = [SCTPSocketAddress(ip: .anyV4, port: 12345)]
        _ = TransparentDestination.isLoop(Self.web, listeners: listeners) { _ in
            reads.withLock { $0 += 1 }
            return false
        }
        #expect(reads.withLock { $0 } == 0)
    }

    // MARK: - The listener's handler

    /// The refusals an ingress configuration reported.
    final class Refusals: Sendable {
        private let seen = Mutex<[Refusal]>([])
        var all: [Refusal] { seen.withLock { $0 } }

        var configuration: ProxyIngressConfiguration {
            var configuration = ProxyIngressConfiguration()
            configuration.onRefusal = { refusal in self.seen.withLock { $0.append(refusal) } }
            return configuration
        }
    }

    static func configure(
        _ channel: EmbeddedChannel, local: SCTPSocketAddress, connector: FakeConnector,
        ownListeners: [SCTPSocketAddress] = [], refusals: Refusals
    ) -> EventLoopFuture<Void> {
        channel.localAddress = SocketAddress(local)
        let configuration = refusals.configuration
        return TransparentListener.configure(
            channel: channel, configuration: configuration, connector: connector, ownListeners: ownListeners,
            refusals: RefusalLog(logger: Logger(label: "test")))
    }

    @Test func aTransparentConnectionOpensToItsDestinationBeforeAnyByteArrives() throws {
        let channel = EmbeddedChannel()
        let connector = FakeConnector()
        let refusals = Refusals()
        try Self.configure(channel, local: Self.web, connector: connector, refusals: refusals).wait()
        #expect(connector.calls.isEmpty)
        try channel.connect(to: SocketAddress(ipAddress: "192.168.1.20", port: 40000)).wait()
        // A server-speaks-first protocol (SMTP, SSH's banner) must not wait for the client.
        #expect(connector.calls.map(\.target) == [.address(Self.web.ip, port: 8000)])
        #expect(connector.calls.first?.initialData == nil)
        // Nothing is written back (no SOCKS reply); the client's bytes then reach the relay.
        try channel.send("GET / HTTP/1.1\r\n\r\n")
        #expect(try channel.written().isEmpty)
        let relay = try channel.pipeline.syncOperations.handler(type: FakeRelay.self)
        #expect(relay.receivedText == "GET / HTTP/1.1\r\n\r\n")
        #expect(refusals.all.isEmpty)
    }

    @Test func aFailedOpenClosesTheConnectionWithoutAReply() throws {
        let channel = EmbeddedChannel()
        let connector = FakeConnector(.fail(.refused))
        let refusals = Refusals()
        try Self.configure(channel, local: Self.web, connector: connector, refusals: refusals).wait()
        try channel.connect(to: SocketAddress(ipAddress: "192.168.1.20", port: 40000)).wait()
        #expect(connector.calls.count == 1)
        #expect(try channel.written().isEmpty)
        #expect(!channel.isActive)
    }

    @Test func aConnectionToOurOwnListenerIsRefusedAndCounted() throws {
        let channel = EmbeddedChannel()
        let connector = FakeConnector()
        let refusals = Refusals()
        let socks = SCTPSocketAddress(ip: .init(v4: 127, 0, 0, 1), port: 1080)
        let result = Self.configure(
            channel, local: socks, connector: connector, ownListeners: [socks], refusals: refusals)
        #expect(throws: TransparentDestination.Problem.loop(socks)) { try result.wait() }
        #expect(refusals.all == [.transparentLoop])
        #expect(connector.calls.isEmpty)
    }

    @Test func aConnectionWithoutAnAddressIsRefusedAndCounted() throws {
        let channel = EmbeddedChannel()
        let connector = FakeConnector()
        let refusals = Refusals()
        let configuration = refusals.configuration
        let result = TransparentListener.configure(
            channel: channel, configuration: configuration, connector: connector, ownListeners: [],
            refusals: RefusalLog(logger: Logger(label: "test")))
        #expect(throws: TransparentDestination.Problem.unreadable) { try result.wait() }
        #expect(refusals.all == [.transparentDestination])
    }

    // MARK: - A real socket

    /// Connecting straight to the transparent port (no redirect) is the loop every misconfiguration ends in: the
    /// destination is the listener itself. It must be closed and counted, never proxied into itself.
    @Test func aDirectConnectionToTheTransparentPortIsClosedAsALoop() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let connector = FakeConnector()
        let refusals = Refusals()
        let configuration = refusals.configuration
        let (listener, _) = try TransparentListener(
            host: "127.0.0.1", port: 0, configuration: configuration, connector: connector,
            logger: Logger(label: "test")
        ).bind(group: group).wait()
        defer { try? listener.close().wait() }
        let port = UInt16(listener.localAddress!.port!)
        let reply = try exchange(port: port, sending: Array("GET / HTTP/1.1\r\n\r\n".utf8), receiving: 1)
        #expect(reply.isEmpty, "the connection is closed without a byte")
        #expect(connector.calls.isEmpty)
        #expect(refusals.all == [.transparentLoop])
    }

    /// A socket systemd passed (a socket unit named `transparent`): adopted, its IP_TRANSPARENT read back into
    /// `Mode` (set here when this process may, as systemd's `Transparent=yes` does), and a direct connection to it
    /// refused as a loop like on a socket aggclient bound itself.
    @Test func anAdoptedSocketReportsWhetherItIsTransparent() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let (descriptor, port) = try makeListeningSocket()
        var on: CInt = 1
        let isTransparent =
            setsockopt(
                descriptor, CInt(TransparentDestination.solIP), TransparentDestination.ipTransparent, &on,
                socklen_t(MemoryLayout<CInt>.size)) == 0
        let connector = FakeConnector()
        let refusals = Refusals()
        let (listener, mode) = try TransparentListener(
            host: "", port: 0, configuration: refusals.configuration, connector: connector,
            logger: Logger(label: "test")
        ).bind(group: group, adopting: descriptor).wait()
        defer { try? listener.close().wait() }
        #expect(mode == (isTransparent ? .redirectAndTProxy : .redirectOnly))
        #expect(listener.localAddress?.port == Int(port))
        _ = try exchange(port: port, sending: Array("x".utf8), receiving: 1)
        #expect(connector.calls.isEmpty)
        #expect(refusals.all == [.transparentLoop])
    }
}
