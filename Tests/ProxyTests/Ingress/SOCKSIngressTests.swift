import AggProtocol
import NIOCore
import NIOEmbedded
import SCTPEngine
import Testing

@testable import AggIngress

@Suite("Ingress SOCKS")
struct SOCKSIngressTests {
    static let granted5: [UInt8] = [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]

    // MARK: - SOCKS5

    @Test func socks5NoAuthConnectIPv4() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1, 0])
        #expect(try channel.written() == [5, 0])
        try channel.send([5, 1, 0, 1, 10, 0, 0, 1, 0x01, 0xBB])
        #expect(try channel.written() == Self.granted5)
        #expect(connector.calls.map(\.target) == [.address(SCTPIPAddress(v4: 10, 0, 0, 1), port: 443)])
        #expect(connector.calls.first?.initialData == nil)
        // The handshake handler is gone: bytes now reach the relay untouched.
        try channel.send("hello")
        #expect(channel.relay?.receivedText == "hello")
        #expect(throws: (any Error).self) {
            try channel.pipeline.syncOperations.handler(type: TunnelHandshakeHandler<ProxyHandshake>.self)
        }
    }

    @Test func socks5ConnectIPv6() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        let address: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        try channel.send([5, 1, 0] + [5, 1, 0, 4] + address + [0, 80])
        #expect(try channel.written() == [5, 0] + Self.granted5)
        #expect(connector.calls.map(\.target) == [.address(SCTPIPAddress("2001:db8::1")!, port: 80)])
    }

    @Test func socks5DomainIsPassedUnresolvedWithOptimisticData() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        let name = Array("example.com".utf8)
        try channel.send([5, 1, 0] + [5, 1, 0, 3, UInt8(name.count)] + name + [0, 80] + Array("GET /".utf8))
        #expect(try channel.written() == [5, 0] + Self.granted5)
        #expect(connector.calls.map(\.target) == [.domain("example.com", port: 80)])
        #expect(connector.calls.first?.initialData == ByteBuffer(string: "GET /"))
    }

    /// The method wanted is found anywhere in the client's list, whatever else the list holds.
    @Test func socks5NoAuthenticationListedLast() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 3, 0x80, 2, 0])
        #expect(try channel.written() == [5, 0])
        try channel.send([5, 1, 0, 1, 10, 0, 0, 1, 0x01, 0xBB])
        #expect(try channel.written() == Self.granted5)
    }

    /// A request split across reads after its greeting was answered: the held part and the rest join.
    @Test func socks5RequestSplitAfterTheGreeting() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1, 0] + [5, 1])
        #expect(try channel.written() == [5, 0])
        try channel.send([0, 1, 192, 0, 2])
        #expect(connector.calls.isEmpty)
        try channel.send([1, 0, 80] + Array("GET /".utf8))
        #expect(try channel.written() == Self.granted5)
        #expect(connector.calls.map(\.target) == [.address(SCTPIPAddress(v4: 192, 0, 2, 1), port: 80)])
        #expect(connector.calls.first?.initialData == ByteBuffer(string: "GET /"))
    }

    /// A client that goes away after its greeting: nothing is connected and nothing more is written.
    @Test func socks5ClientClosingMidHandshake() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1, 0])
        #expect(try channel.written() == [5, 0])
        try channel.close().wait()
        #expect(connector.calls.isEmpty)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    /// A client that goes away while its upstream opens: the late success writes no reply and installs nothing
    /// on the closed channel's behalf.
    @Test func socks5ClientClosingWhileConnecting() throws {
        let connector = FakeConnector(.hold)
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1, 0] + [5, 1, 0, 1, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0])
        try channel.close().wait()
        // The closed channel's handlers leave on the loop's next turn, as on a socket's loop.
        channel.embeddedEventLoop.run()
        connector.complete()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test func socks5BytesArrivingOneAtATime() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        let name = Array("a.example".utf8)
        let input: [UInt8] = [5, 2, 0, 2] + [5, 1, 0, 3, UInt8(name.count)] + name + [0x1F, 0x90]
        for byte in input {
            try channel.send([byte])
        }
        #expect(try channel.written() == [5, 0] + Self.granted5)
        #expect(connector.calls.map(\.target) == [.domain("a.example", port: 8080)])
    }

    @Test func socks5UsernamePassword() throws {
        var configuration = ProxyIngressConfiguration()
        configuration.credentials = .init(username: "user", password: "pw")
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(configuration: configuration, connector: connector)
        try channel.send([5, 2, 0, 2])
        #expect(try channel.written() == [5, 2])
        try channel.send([1, 4] + Array("user".utf8) + [2] + Array("pw".utf8))
        #expect(try channel.written() == [1, 0])
        try channel.send([5, 1, 0, 1, 127, 0, 0, 1, 0, 22])
        #expect(try channel.written() == Self.granted5)
    }

    @Test func socks5WrongPasswordIsRefusedAndClosed() throws {
        var configuration = ProxyIngressConfiguration()
        configuration.credentials = .init(username: "user", password: "pw")
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(configuration: configuration, connector: connector)
        try channel.send([5, 1, 2] + [1, 4] + Array("user".utf8) + [2] + Array("px".utf8))
        #expect(try channel.written() == [5, 2, 1, 1])
        #expect(!channel.isActive)
        #expect(connector.calls.isEmpty)
    }

    @Test func socks5NoAcceptableMethod() throws {
        var configuration = ProxyIngressConfiguration()
        configuration.credentials = .init(username: "user", password: "pw")
        let channel = try EmbeddedChannel.ingress(configuration: configuration, connector: FakeConnector())
        try channel.send([5, 1, 0])
        #expect(try channel.written() == [5, 0xFF])
        #expect(!channel.isActive)
    }

    @Test(arguments: [UInt8(2), 3, 9])
    func socks5BindAndUDPAssociateAreNotSupported(command: UInt8) throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1, 0] + [5, command, 0, 1, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0] + [5, 7, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
        #expect(connector.calls.isEmpty)
    }

    @Test func socks5BadAddressType() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
        try channel.send([5, 1, 0] + [5, 1, 0, 9, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0] + [5, 8, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
    }

    @Test func socks5BadVersionInRequestCloses() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
        try channel.send([5, 1, 0] + [4, 1, 0, 1, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0])
        #expect(!channel.isActive)
    }

    @Test(arguments: ProxyFailure.allCases)
    func socks5FailureReplies(failure: ProxyFailure) throws {
        let expected: [ProxyFailure: UInt8] = [
            .generalFailure: 1, .serverUnavailable: 1, .tooManyStreams: 1, .notAllowed: 2, .unreachable: 3,
            .hostUnreachable: 4,
            .dnsFailure: 4, .refused: 5, .timeout: 6,
        ]
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector(.fail(failure)))
        try channel.send([5, 1, 0] + [5, 1, 0, 1, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0] + [5, expected[failure]!, 0, 1, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
    }

    @Test func socks5HoldsBytesArrivingWhileConnecting() throws {
        let connector = FakeConnector(.hold)
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1, 0] + [5, 1, 0, 1, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0])
        try channel.send("early")
        connector.complete()
        #expect(try channel.written() == Self.granted5)
        #expect(channel.relay?.receivedText == "early")
    }

    /// A client waiting for the reply sends nothing while the upstream opens: the reads the pipeline asks for go on
    /// reaching the socket (stopping and resuming them cost two `epoll_ctl` calls per connection). Once bytes do
    /// arrive they are held and reading stops, until the reply is sent and the relay takes over.
    @Test func socks5ReadsWhileConnectingUntilBytesArrive() throws {
        let connector = FakeConnector(.hold)
        let channel = try EmbeddedChannel.ingress(connector: connector)
        let gate = IngressPolicyTests.ReadGate()
        try channel.pipeline.syncOperations.addHandler(gate, position: .first)
        try channel.send([5, 1, 0] + [5, 1, 0, 1, 1, 2, 3, 4, 0, 80])
        #expect(try channel.written() == [5, 0])
        #expect(connector.calls.count == 1)
        let before = gate.requested
        channel.read()
        #expect(gate.requested == before + 1, "a read asked for while connecting, with nothing held, was dropped")
        try channel.send("early")
        channel.read()
        #expect(gate.requested == before + 1, "reading went on while bytes were held")
        connector.complete()
        #expect(try channel.written() == Self.granted5)
        #expect(channel.relay?.receivedText == "early")
        #expect(gate.requested == before + 2, "the held read was not resumed when the relay took over")
    }

    @Test func handshakeTimeoutCloses() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([5, 1])
        channel.embeddedEventLoop.advanceTime(by: .seconds(31))
        #expect(!channel.isActive)
    }

    /// The handshake timeout counts from the accept, not from the first byte: a client silent for 20 s and then
    /// slow gets the 30 s once, not twice.
    @Test func handshakeTimeoutCountsFromTheAccept() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
        channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        try channel.send([5, 1])
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive)
    }

    /// Detecting SOCKS5 changes nothing about the deadline: the handler that has held it since the accept goes on
    /// with the handshake and still closes the connection at the deadline to the nanosecond.
    @Test func detectedHandshakeClosesAtTheDeadline() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
        try channel.send([5, 1])
        _ = try channel.pipeline.syncOperations.handler(type: TunnelHandshakeHandler<ProxyHandshake>.self)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30) - .nanoseconds(1))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(1))
        #expect(!channel.isActive)
    }

    /// One handler runs a SOCKS connection from the accept to the tunnel: the one added at the accept is still the
    /// only handler after the protocol is detected and the greeting answered, and it is gone once the tunnel is up.
    @Test func socksConnectionRunsInOneHandler() throws {
        for (greeting, request): ([UInt8], [UInt8]) in [
            ([5, 1, 0], [5, 1, 0, 1, 10, 0, 0, 1, 0x01, 0xBB]), ([4, 1, 0, 80], [10, 0, 0, 1, 0]),
        ] {
            let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
            let pipeline = channel.pipeline.syncOperations
            let accepted = try pipeline.handler(type: TunnelHandshakeHandler<ProxyHandshake>.self)
            try channel.send(greeting)
            #expect(try pipeline.handler(type: TunnelHandshakeHandler<ProxyHandshake>.self) === accepted)
            try channel.send(request)
            #expect(try !channel.written().isEmpty)
            #expect(throws: (any Error).self) {
                try pipeline.handler(type: TunnelHandshakeHandler<ProxyHandshake>.self)
            }
        }
    }

    /// Once the tunnel is granted the handshake deadline is cancelled: the connection outlives the deadline.
    @Test func grantedTunnelOutlivesTheHandshakeDeadline() throws {
        for request: [UInt8] in [[5, 1, 0] + [5, 1, 0, 1, 10, 0, 0, 1, 0x01, 0xBB], [4, 1, 0, 80, 10, 0, 0, 1, 0]] {
            let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
            try channel.send(request)
            #expect(try !channel.written().isEmpty)
            channel.embeddedEventLoop.advanceTime(by: .seconds(120))
            #expect(channel.isActive)
            try channel.send("late")
            #expect(channel.relay?.receivedText == "late")
        }
    }

    // MARK: - SOCKS4 and SOCKS4a

    @Test func socks4Connect() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([4, 1, 0, 80, 93, 184, 216, 34] + Array("me".utf8) + [0])
        #expect(try channel.written() == [0, 0x5A, 0, 0, 0, 0, 0, 0])
        #expect(connector.calls.map(\.target) == [.address(SCTPIPAddress(v4: 93, 184, 216, 34), port: 80)])
    }

    @Test func socks4aDomainOneByteAtATime() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        for byte in [4, 1, 0x01, 0xBB, 0, 0, 0, 1] + Array("me".utf8) + [0] + Array("example.org".utf8) + [0] {
            try channel.send([byte])
        }
        #expect(try channel.written() == [0, 0x5A, 0, 0, 0, 0, 0, 0])
        #expect(connector.calls.map(\.target) == [.domain("example.org", port: 443)])
    }

    @Test func socks4BindIsRejected() throws {
        let connector = FakeConnector()
        let channel = try EmbeddedChannel.ingress(connector: connector)
        try channel.send([4, 2, 0, 80, 1, 2, 3, 4, 0])
        #expect(try channel.written() == [0, 0x5B, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
        #expect(connector.calls.isEmpty)
    }

    @Test func socks4FailureIsRejected() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector(.fail(.refused)))
        try channel.send([4, 1, 0, 80, 1, 2, 3, 4, 0])
        #expect(try channel.written() == [0, 0x5B, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
    }

    @Test func socks4OverlongUserIDIsRejected() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
        try channel.send([4, 1, 0, 80, 1, 2, 3, 4] + [UInt8](repeating: 0x41, count: 300))
        #expect(try channel.written() == [0, 0x5B, 0, 0, 0, 0, 0, 0])
        #expect(!channel.isActive)
    }

    // MARK: - Sniffer

    @Test func snifferClosesOnGarbage() throws {
        let channel = try EmbeddedChannel.ingress(connector: FakeConnector())
        try channel.send([0x16, 3, 1])
        #expect(try channel.written() == [])
        #expect(!channel.isActive)
    }

    @Test func socksOnlyListenerRefusesHTTP() throws {
        let channel = try EmbeddedChannel.ingress(protocols: .socks, connector: FakeConnector())
        try channel.send("GET http://a/ HTTP/1.1\r\n\r\n")
        #expect(!channel.isActive)
    }

    @Test func snifferDetection() {
        #expect(ProxyHandshake.detect(firstByte: 5) == .socks5)
        #expect(ProxyHandshake.detect(firstByte: 4) == .socks4)
        #expect(ProxyHandshake.detect(firstByte: UInt8(ascii: "C")) == .http)
        #expect(ProxyHandshake.detect(firstByte: UInt8(ascii: "g")) == .http)
        #expect(ProxyHandshake.detect(firstByte: 0) == [])
    }
}
