import AggProtocol
import NIOCore
import NIOEmbedded
import SCTPEngine
import Synchronization
import Testing

@testable import AggIngress

/// Issue 12's ingress defences on the state machines and handlers: SOCKS4 refused while credentials are required,
/// several users, every refusal counted, and an HTTP request body held within its bound while the upstream opens.
@Suite("Ingress policy")
struct IngressPolicyTests {
    static let users = [
        ProxyIngressConfiguration.Credentials(username: "alice", password: "correct horse"),
        ProxyIngressConfiguration.Credentials(username: "bob", password: "pa:ss"),
    ]

    /// A configuration requiring `users` whose refusals land in `refusals`.
    static func configuration(_ refusals: Refusals) -> ProxyIngressConfiguration {
        var configuration = ProxyIngressConfiguration(users: users)
        configuration.onRefusal = { refusals.record($0) }
        return configuration
    }

    /// The refusals the ingress reported, in order.
    final class Refusals: Sendable {
        private let list = Mutex<[Refusal]>([])
        func record(_ refusal: Refusal) { list.withLock { $0.append(refusal) } }
        var all: [Refusal] { list.withLock { $0 } }
    }

    // MARK: - SOCKS

    /// SOCKS4 has no password: with credentials required, a request is rejected (0x5B) and closed, even when its
    /// user id is a configured username (the old behaviour let that through).
    @Test(
        arguments: [
            [4, 1, 0, 80, 93, 184, 216, 34] + Array("alice".utf8) + [0],
            [4, 1, 0, 80, 0, 0, 0, 1] + Array("bob".utf8) + [0] + Array("example.org".utf8) + [0],
            [4, 1, 0, 80, 93, 184, 216, 34, 0],
        ] as [[UInt8]])
    func socks4IsRefusedWhenCredentialsAreRequired(_ request: [UInt8]) throws {
        let refusals = Refusals()
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(configuration: Self.configuration(refusals), connector: connector)
        try channel.send(request)
        #expect(try channel.written() == [0, 0x5B, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
        #expect(connector.calls.isEmpty)
        #expect(refusals.all == [.socks4WithoutPassword])
    }

    @Test func socks5AcceptsEveryConfiguredUserAndRefusesTheRest() throws {
        for (user, password, accepted) in [
            ("alice", "correct horse", true), ("bob", "pa:ss", true), ("alice", "pa:ss", false),
            ("bob", "correct horse", false), ("carol", "x", false), ("alic", "correct horse", false),
        ] {
            let refusals = Refusals()
            let connector = FakeConnector()
            let channel = try EmbeddedChannel.ingress(configuration: Self.configuration(refusals), connector: connector)
            try channel.send([5, 1, 2])
            #expect(try channel.written() == [5, 2])
            let (name, secret) = (Array(user.utf8), Array(password.utf8))
            try channel.send([1, UInt8(name.count)] + name + [UInt8(secret.count)] + secret)
            if accepted {
                #expect(try channel.written() == [1, 0], "\(user)")
                try channel.send([5, 1, 0, 1, 93, 184, 216, 34, 0, 80])
                #expect(try channel.written() == SOCKSIngressTests.granted5)
                #expect(refusals.all.isEmpty)
            } else {
                // RFC 1929 §2: a non-zero status, then the server closes.
                #expect(try channel.written() == [1, 1], "\(user)")
                #expect(!channel.isActive)
                #expect(connector.calls.isEmpty)
                #expect(refusals.all == [.proxyAuthentication])
            }
        }
    }

    @Test func socks5WithoutTheUsernameMethodIsRefusedAndCounted() throws {
        let refusals = Refusals()
        let channel = try EmbeddedChannel.ingress(
            configuration: Self.configuration(refusals), connector: FakeConnector())
        try channel.send([5, 1, 0])
        #expect(try channel.written() == [5, 0xFF])
        #expect(!channel.isActive)
        #expect(refusals.all == [.proxyAuthentication])
    }

    @Test func withoutCredentialsNothingIsAskedOrCounted() throws {
        let refusals = Refusals()
        var configuration = ProxyIngressConfiguration()
        configuration.onRefusal = { refusals.record($0) }
        let socks4 = try EmbeddedChannel.ingress(configuration: configuration, connector: FakeConnector())
        try socks4.send([4, 1, 0, 80, 93, 184, 216, 34, 0])
        #expect(try socks4.written() == [0, 0x5A, 0, 0, 0, 0, 0, 0])
        let socks5 = try EmbeddedChannel.ingress(configuration: configuration, connector: FakeConnector())
        try socks5.send([5, 1, 0])
        #expect(try socks5.written() == [5, 0])
        #expect(refusals.all.isEmpty)
    }

    @Test func credentialsNeverPrintTheirPassword() {
        #expect("\(Self.users[0])" == "alice:<hidden>")
        #expect(!"\(Self.users)".contains("horse"))
    }

    // MARK: - HTTP

    @Test func httpAcceptsEveryConfiguredUserAndCountsA407() throws {
        for (user, password, accepted) in [
            ("alice", "correct horse", true), ("bob", "pa:ss", true), ("bob", "pa", false), ("", "", false),
        ] {
            let refusals = Refusals()
            let connector = FakeConnector()
            let channel = try EmbeddedChannel.ingress(configuration: Self.configuration(refusals), connector: connector)
            let token = HTTPProxyMessages.base64("\(user):\(password)")
            try channel.send("CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic \(token)\r\n\r\n")
            let reply = try channel.writtenText()
            if accepted {
                #expect(reply == "HTTP/1.1 200 Connection Established\r\n\r\n", "\(user)")
                #expect(refusals.all.isEmpty)
            } else {
                #expect(reply.hasPrefix("HTTP/1.1 407 "), "\(user)")
                #expect(reply.contains("Proxy-Authenticate: Basic realm=\"agg\"\r\n"))
                #expect(!channel.isActive)
                #expect(connector.calls.isEmpty)
                #expect(refusals.all == [.proxyAuthentication])
            }
        }
    }

    /// Counts the reads the pipeline asks of the socket, as NIO would turn them into read(2) calls: the test feeds
    /// one chunk of the client's body per read asked for, as a real socket with autoRead would.
    final class ReadGate: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var requested = 0

        func read(context: ChannelHandlerContext) {
            requested += 1
            context.read()
        }
    }

    /// A client uploads 8 MiB to an upstream that does not open: the proxy stops reading once the body it holds
    /// reaches its bound, then forwards all of it, in order, when the upstream opens. (It used to read and hold the
    /// whole body.)
    @Test func aLargeBodyToASlowUpstreamStaysWithinItsBound() throws {
        let connector = FakeConnector(.hold)
        var configuration = ProxyIngressConfiguration()
        configuration.maxPendingBody = 64 * 1024
        let channel = try EmbeddedChannel.ingress(configuration: configuration, connector: connector)
        let gate = ReadGate()
        try channel.pipeline.syncOperations.addHandler(gate, position: .first)
        let chunk = 16 * 1024
        let total = 8 * 1024 * 1024
        try channel.send("POST http://example.com/up HTTP/1.1\r\nContent-Length: \(total)\r\n\r\n")
        var fed = 0
        var served = 0
        var peak = 0
        func pump() throws {
            // One chunk per read the pipeline asked for since the last one; stop when it asks for none.
            while fed < total {
                channel.read()
                guard gate.requested > served else { return }
                served = gate.requested
                try channel.writeInbound(ByteBuffer(repeating: UInt8(fed / chunk % 251), count: chunk))
                fed += chunk
                let handler = try channel.pipeline.syncOperations.handler(type: HTTPProxyHandler.self)
                peak = max(peak, handler.pendingBodyBytes)
            }
        }
        try pump()
        #expect(fed < 4 * configuration.maxPendingBody, "the proxy kept reading: \(fed) bytes taken")
        #expect(peak <= configuration.maxPendingBody + chunk)
        #expect(connector.calls.count == 1)

        connector.complete()
        try pump()
        #expect(fed == total)
        let head = "POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: \(total)\r\nConnection: close\r\n\r\n"
        #expect(connector.calls.first?.initialData == ByteBuffer(string: head))
        let relay = try #require(channel.relay)
        #expect(relay.received.readableBytes == total)
        let body = Array(relay.received.readableBytesView)
        #expect(body.enumerated().allSatisfy { $0.element == UInt8($0.offset / chunk % 251) }, "the body was reordered")
    }
}
