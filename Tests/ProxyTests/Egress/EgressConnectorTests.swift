import AggProtocol
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggEgress
@testable import Proxy

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Real connections over loopback, with the policy opened for 127.0.0.0/8 where a test needs to get through.
@Suite struct EgressConnectorTests {
    static let group = MultiThreadedEventLoopGroup.singleton

    static var loopbackAllowed: EgressPolicy { EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]) }

    /// A listener on 127.0.0.1 that accepts and holds connections.
    static func listener() async throws -> Channel {
        try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    }

    /// A port on 127.0.0.1 nothing listens on and nothing else can take while the test runs: a socket bound to it
    /// without listen(2), so a SYN gets a RST. (Binding, closing and reusing the number raced with the parallel
    /// tests' own ephemeral listeners.) Close the descriptor when done.
    static func closedPort() throws -> (port: UInt16, descriptor: Int32) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard fd >= 0, bound else {
            close(fd)
            throw IOError(errnoCode: errno, reason: "bind")
        }
        return (UInt16(bigEndian: address.sin_port), fd)
    }

    static func connect(
        _ target: StreamTarget, policy: EgressPolicy, lookup: DNSLookup = .system,
        timeout: TimeAmount = .seconds(5)
    ) async -> Result<Channel, EgressError> {
        let connector = EgressConnector(policy: policy, connectTimeout: timeout, lookup: lookup)
        do {
            return .success(try await connector.connect(to: target, on: group.next()))
        } catch {
            return .failure(error)
        }
    }

    static func code(_ result: Result<Channel, EgressError>) async -> OpenResultCode {
        switch result {
        case .success(let channel):
            try? await channel.close()
            return .ok
        case .failure(let error):
            return error.code
        }
    }

    @Test func connectsToAnAllowedLoopbackListener() async throws {
        let server = try await Self.listener()
        let port = UInt16(server.localAddress!.port!)
        let result = await Self.connect(StreamTarget(host: "127.0.0.1", port: port), policy: Self.loopbackAllowed)
        let channel = try result.get()
        #expect(channel.remoteAddress?.port == Int(port))
        #expect(try await channel.getOption(.allowRemoteHalfClosure).get())
        try await channel.close()
        try await server.close()
    }

    @Test func connectsByNameThroughTheFilteringResolver() async throws {
        let server = try await Self.listener()
        let port = UInt16(server.localAddress!.port!)
        let lookup = DNSLookup { host, family in
            host == "service.test" && family == .v4 ? [SCTPIPAddress(v4: 127, 0, 0, 1)] : []
        }
        let target = StreamTarget(host: .domain("service.test"), port: port)
        #expect(await Self.code(await Self.connect(target, policy: Self.loopbackAllowed, lookup: lookup)) == .ok)
        try await server.close()
    }

    @Test func refusedPortMapsToRefused() async throws {
        let (port, descriptor) = try Self.closedPort()
        defer { close(descriptor) }
        let byIP = await Self.connect(StreamTarget(host: "127.0.0.1", port: port), policy: Self.loopbackAllowed)
        #expect(await Self.code(byIP) == .refused)
        let lookup = DNSLookup { _, family in family == .v4 ? [SCTPIPAddress(v4: 127, 0, 0, 1)] : [] }
        let byName = await Self.connect(
            StreamTarget(host: .domain("a.test"), port: port), policy: Self.loopbackAllowed, lookup: lookup)
        #expect(await Self.code(byName) == .refused)
    }

    @Test func unresolvableNameIsADNSFailure() async {
        let target = StreamTarget(host: .domain("nonexistent.invalid"), port: 80)
        #expect(await Self.code(await Self.connect(target, policy: EgressPolicy())) == .dnsFailure)
    }

    @Test func nameWithNoAddressesIsADNSFailure() async {
        let empty = DNSLookup { _, _ in [] }
        let target = StreamTarget(host: .domain("empty.test"), port: 80)
        #expect(await Self.code(await Self.connect(target, policy: EgressPolicy(), lookup: empty)) == .dnsFailure)
    }

    /// DNS rebinding: a name that resolves only to refused addresses is "not allowed", not a DNS failure.
    @Test func nameResolvingToLoopbackIsNotAllowed() async throws {
        let server = try await Self.listener()
        let port = UInt16(server.localAddress!.port!)
        let rebinding = DNSLookup { _, family in
            family == .v4 ? [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 10, 0, 0, 1)] : [SCTPIPAddress("::1")!]
        }
        let result = await Self.connect(
            StreamTarget(host: .domain("evil.test"), port: port), policy: EgressPolicy(), lookup: rebinding)
        guard case .failure(let error) = result else {
            Issue.record("connected to a refused address")
            return
        }
        #expect(error.code == .notAllowed)
        #expect(error.detail.contains("127.0.0.1 is loopback"))
        try await server.close()
    }

    /// Every odd spelling of a refused address is refused before any connection or lookup is made.
    @Test(arguments: [
        "127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "127.0.0.1.", "::1", "[::1]",
        "::ffff:127.0.0.1", "::ffff:7f00:1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "0", "0.0.0.0", "::",
        "10.1", "169.254.169.254", "100.64.0.1", "fe80::1", "fd00::1", "224.0.0.1", "255.255.255.255", "192.0.2.1",
        "2001:db8::1",
    ])
    func literalTargetsInAnySpellingAreCheckedAgainstThePolicy(_ host: String) async {
        let lookupUsed = DNSLookup { _, _ in
            Issue.record("literal \(host) went to DNS")
            return []
        }
        let asName = await Self.connect(
            StreamTarget(host: .domain(host), port: 80), policy: EgressPolicy(), lookup: lookupUsed)
        #expect(await Self.code(asName) == .notAllowed, "\(host)")
    }

    @Test func lookupErrorsAreDNSFailures() async {
        let failing = DNSLookup { host, _ in
            throw DNSLookupError(host: host, code: -2, text: "Name or service not known")
        }
        let target = StreamTarget(host: .domain("x.test"), port: 80)
        #expect(await Self.code(await Self.connect(target, policy: EgressPolicy(), lookup: failing)) == .dnsFailure)
    }

    @Test func systemLookupFindsLoopbackLiterals() throws {
        #expect(try DNSLookup.system.lookup("127.0.0.1", .v4) == [SCTPIPAddress(v4: 127, 0, 0, 1)])
        #expect(throws: DNSLookupError.self) { try DNSLookup.system.lookup("nonexistent.invalid", .v4) }
    }

    @Test func errnoAndTimeoutMapping() {
        let target = StreamTarget(host: "192.0.2.1", port: 80)
        func code(_ error: any Error) -> OpenResultCode {
            EgressConnector.classify(error, target: target, refused: []).code
        }
        #expect(code(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .refused)
        #expect(code(IOError(errnoCode: ENETUNREACH, reason: "connect")) == .networkUnreachable)
        #expect(code(IOError(errnoCode: EHOSTUNREACH, reason: "connect")) == .hostUnreachable)
        #expect(code(IOError(errnoCode: ETIMEDOUT, reason: "connect")) == .timeout)
        #expect(code(IOError(errnoCode: EIO, reason: "connect")) == .generalFailure)
        #expect(code(ChannelError.connectTimeout(.seconds(10))) == .timeout)
        #expect(code(EgressError(.notAllowed, "x")) == .notAllowed)
        #expect(EgressConnector.defaultConnectTimeout == .seconds(10))
    }

    @Test func connectTimeoutIsReported() async throws {
        // A lookup that answers too late stands in for a black-holed SYN: the overall timeout covers both.
        let slow = DNSLookup { _, _ in
            usleep(1_500_000)
            return [SCTPIPAddress(v4: 127, 0, 0, 1)]
        }
        let target = StreamTarget(host: .domain("slow.test"), port: 9)
        let result = await Self.connect(target, policy: Self.loopbackAllowed, lookup: slow, timeout: .milliseconds(200))
        #expect(await Self.code(result) == .timeout)
    }

    // MARK: - Issue 12: ports and the server's own addresses

    static func error(_ result: Result<Channel, EgressError>) async -> EgressError? {
        switch result {
        case .success(let channel):
            try? await channel.close()
            return nil
        case .failure(let error):
            return error
        }
    }

    /// Port 25 is refused before any lookup or connection, for names and literals, and the refusal names the
    /// defence; an empty deny list lets it through to the connect.
    @Test func deniedPortIsRefusedBeforeAnyLookup() async throws {
        let lookupUsed = DNSLookup { host, _ in
            Issue.record("\(host) was looked up for a denied port")
            return []
        }
        for host in [StreamTarget.Host.domain("mail.example.com"), .ip(SCTPIPAddress(v4: 8, 8, 8, 8))] {
            let error = await Self.error(
                await Self.connect(StreamTarget(host: host, port: 25), policy: EgressPolicy(), lookup: lookupUsed))
            #expect(error?.code == .notAllowed)
            #expect(error?.refusal == .egressPort)
        }
        let server = try await Self.listener()
        let port = UInt16(server.localAddress!.port!)
        var policy = Self.loopbackAllowed
        policy.deniedPorts = [port]
        let denied = await Self.error(await Self.connect(StreamTarget(host: "127.0.0.1", port: port), policy: policy))
        #expect(denied?.refusal == .egressPort)
        policy.deniedPorts = []
        #expect(await Self.code(await Self.connect(StreamTarget(host: "127.0.0.1", port: port), policy: policy)) == .ok)
        try await server.close()
    }

    /// The server's own address is refused as a literal and as a name's answer, even with 0.0.0.0/0 allowed.
    @Test func ownAddressIsRefusedAsLiteralAndAsAnswer() async {
        let own = SCTPIPAddress(v4: 93, 184, 216, 34)
        let policy = EgressPolicy(allowed: [CIDR("0.0.0.0/0")!], localAddresses: [own])
        let literal = await Self.error(await Self.connect(StreamTarget(host: .ip(own), port: 443), policy: policy))
        #expect(literal?.code == .notAllowed && literal?.refusal == .egressOwnAddress)
        let toSelf = DNSLookup { _, family in family == .v4 ? [own] : [] }
        let byName = await Self.error(
            await Self.connect(StreamTarget(host: .domain("self.test"), port: 443), policy: policy, lookup: toSelf))
        #expect(byName?.code == .notAllowed && byName?.refusal == .egressOwnAddress)
        #expect(byName?.detail.contains("93.184.216.34") == true)
    }
}
