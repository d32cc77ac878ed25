import AggIngress
import AggProtocol
import AggTransport
import Foundation
import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization
import Testing

@testable import AggObservability
@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// UDP through the pair: a third-party SOCKS5 UDP client (PySocks, with dnspython for DNS) against dnsmasq and a
/// UDP echo on loopback, through aggclient's UDP ASSOCIATE and aggserver's flows, over both loopback paths.
/// It needs dnsmasq (/usr/sbin/dnsmasq), PySocks and dnspython, which scripts/test.sh installs: without them it
/// fails rather than skips.
@Suite("UDP end to end", .serialized)
struct UDPEndToEndTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "scripts/socks5-udp-client.py")

    static func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        // Output goes to a file: a pipe's write end can stay open in this process and never give EOF.
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("agg-udp-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, String(decoding: try Data(contentsOf: output), as: UTF8.self))
    }

    /// dnsmasq answering `agg.test` with 192.0.2.77 on 127.0.0.1:`port`, nothing else, and the file its process id
    /// is in. It runs under a shell: dnsmasq closes every descriptor it inherits, which Foundation's `Process` takes
    /// for an exit, blocking its monitor thread in `waitpid`; the shell keeps the descriptor.
    static func startDNSMasq(port: UInt16) throws -> (shell: Process, pidFile: URL) {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("agg-dnsmasq-\(UUID().uuidString)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        let dnsmasq = [
            "/usr/sbin/dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--port=\(port)",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--address=/agg.test/192.0.2.77", "--user=root",
            "--pid-file=",
        ].joined(separator: " ")
        process.arguments = ["-c", "\(dnsmasq) & echo $! > \(pidFile.path); wait"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.5)
        return (process, pidFile)
    }

    /// Stops dnsmasq and its shell (SIGKILL: Foundation starts children with every signal blocked, SIGTERM
    /// included) and waits for the shell.
    static func stop(_ dnsmasq: (shell: Process, pidFile: URL)) {
        if let text = try? String(contentsOf: dnsmasq.pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            kill(pid, SIGKILL)
        }
        // The shell cannot take SIGCHLD either: it goes the same way.
        kill(dnsmasq.shell.processIdentifier, SIGKILL)
        dnsmasq.shell.waitUntilExit()
        try? FileManager.default.removeItem(at: dnsmasq.pidFile)
    }

    /// A UDP echo on 127.0.0.1.
    static func startEcho(on group: any EventLoopGroup) throws -> any Channel {
        try DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPEchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    static func serverUDP(_ harness: EndToEndHarness) throws -> UDPRelayMetrics.Values {
        let server = try #require(harness.server)
        return try server.eventLoop.submit { server.udpMetrics.values }.wait()
    }

    static func clientUDP(_ harness: EndToEndHarness) throws -> UDPRelayMetrics.Values {
        try harness.client.eventLoop.submit { harness.client.udpMetrics.values }.wait()
    }

    static let http3Script = script.deletingLastPathComponent().appendingPathComponent("http3-through-socks.py")

    /// aioquic's HTTP/3 server (scripts/http3-through-socks.py) on 127.0.0.1:`port`, once it says it listens, and
    /// the file its output goes to.
    static func startHTTP3Server(port: UInt16) throws -> (process: Process, output: URL) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("agg-h3-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", http3Script.path, "server", "127.0.0.1", "\(port)"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, process.isRunning {
            if let text = try? String(contentsOf: output, encoding: .utf8), text.contains("listening") {
                return (process, output)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw HTTP3ServerDidNotStart(output: text)
    }

    struct HTTP3ServerDidNotStart: Error, CustomStringConvertible {
        var output: String
        var description: String { "the aioquic server did not start: \(output)" }
    }

    /// HTTP/3 is QUIC over UDP: a real QUIC stack (aioquic, client and server) whose datagrams a third-party
    /// SOCKS5 client (PySocks) carries through aggclient's UDP ASSOCIATE and aggserver's flow. Every response
    /// arrives complete and intact, the 4 MB one included (QUIC's own loss recovery over the relay's partially
    /// reliable delivery).
    @Test func anHTTP3RequestWithAioquicGoesThroughThePair() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let port = try EndToEndHarness.freeUDPPort()
        let server = try Self.startHTTP3Server(port: port)
        defer {
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            try? FileManager.default.removeItem(at: server.output)
        }
        let sizes = [100, 1_000_000, 4_000_000]
        let result = try Self.python(
            [Self.http3Script.path, "get", "\(harness.proxyPort)", "127.0.0.1", "\(port)"] + sizes.map { "\($0)" })
        #expect(result.status == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        try #require(lines.count == sizes.count, "\(result.output)")
        for (line, size) in zip(lines, sizes) {
            #expect(line.contains("\"status\": 200") && line.contains("\"bytes\": \(size),"), "\(line)")
            #expect(line.contains("\"intact\": true"), "\(line)")
        }
        let relayed = try Self.serverUDP(harness)
        #expect(relayed.flowsOpened == 1)
        #expect(relayed.bytesDown >= sizes.reduce(0, +))
    }

    /// Router mode's UDP without nftables: the test hands the relay what the tproxy socket would read (a LAN
    /// device's datagram and where it was going), and the reply must come back from that destination, through a
    /// socket bound to it and connected to the device; the device's next datagram to the destination then arrives
    /// on that socket (as the kernel's tproxy lookup would give it) and goes through the pair as well.
    @Test func routerModeUDPAnswersFromTheOriginalDestination() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        // The echo shares its address with the reply socket (SO_REUSEADDR); datagrams from aggserver's flow socket
        // reach the echo, since the reply socket is connected to the device only.
        let echo = try DatagramBootstrap(group: harness.group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPEchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? echo.close().wait() }
        let echoAddress = try #require(echo.localAddress.flatMap(SCTPSocketAddress.init))
        let replies = UDPReplyCollector()
        let device = try DatagramBootstrap(group: harness.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(replies) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? device.close().wait() }
        let deviceAddress = try #require(device.localAddress.flatMap(SCTPSocketAddress.init))
        let client = harness.client
        _ = try client.listenTransparentUDP(address: SCTPSocketAddress(ip: .v4(0x7F00_0001), port: 0)).wait()
        client.eventLoop.execute {
            client.udp.receiveTransparent(
                TransparentDatagram(
                    source: deviceAddress, destination: echoAddress, payload: ByteBuffer(string: "first")))
        }
        let first = try replies.next(timeout: .seconds(5))
        #expect(first.text == "first")
        #expect(first.source == echoAddress, "the reply must come from the original destination")
        // The device's own next datagram to the echo: the reply socket (bound there, connected to the device) gets
        // it, and it goes through the association, not straight to the echo.
        let upBefore = try Self.serverUDP(harness).datagramsUp
        try device.writeAndFlush(
            AddressedEnvelope(remoteAddress: SocketAddress(echoAddress), data: ByteBuffer(string: "second"))
        ).wait()
        let second = try replies.next(timeout: .seconds(5))
        #expect(second.text == "second" && second.source == echoAddress)
        let server = try Self.serverUDP(harness)
        #expect(server.flowsOpened == 1)
        #expect(server.datagramsUp == upBefore + 1)
    }

    /// A datagram sent to the tproxy socket's own address (no nftables: its original destination is the socket
    /// itself) would loop: dropped and counted, nothing reaches the server. This also reads IP_ORIGDSTADDR from a
    /// real `recvmsg`.
    @Test func routerModeUDPDropsADatagramAimedAtItself() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let client = harness.client
        let bound = try client.listenTransparentUDP(address: SCTPSocketAddress(ip: .v4(0x7F00_0001), port: 0)).wait()
        let sender = try DatagramBootstrap(group: harness.group).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? sender.close().wait() }
        try sender.writeAndFlush(
            AddressedEnvelope(remoteAddress: SocketAddress(bound), data: ByteBuffer(string: "loop"))
        ).wait()
        var dropped = 0
        for _ in 0..<50 where dropped == 0 {
            Thread.sleep(forTimeInterval: 0.05)
            dropped = try Self.clientUDP(harness).dropped["loop"] ?? 0
        }
        #expect(dropped == 1)
        #expect(try Self.serverUDP(harness).datagramsUp == 0)
    }

    /// A tproxy socket on the wildcard address (the recipe's `[::]:12345`): a LAN flow to another host's port of the
    /// same number is proxied like any other; only one to this host's own address is a loop.
    @Test func routerModeUDPOnTheWildcardAddressDropsOnlyItsOwnAddresses() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let client = harness.client
        let bound = try client.listenTransparentUDP(address: SCTPSocketAddress(ip: .v4(0), port: 0)).wait()
        let device = SCTPSocketAddress(ip: .v4(0x7F00_0001), port: 40_000)
        let elsewhere = SCTPSocketAddress(ip: SCTPIPAddress("198.51.100.7")!, port: bound.port)
        let here = SCTPSocketAddress(ip: .v4(0x7F00_0001), port: bound.port)
        try client.eventLoop.submit {
            client.udp.receiveTransparent(
                TransparentDatagram(source: device, destination: elsewhere, payload: ByteBuffer(string: "out")))
            client.udp.receiveTransparent(
                TransparentDatagram(source: device, destination: here, payload: ByteBuffer(string: "loop")))
        }.wait()
        let counted = try Self.clientUDP(harness)
        #expect(counted.dropped["loop"] == 1)
        #expect(counted.datagramsUp == 1, "the flow to another host's port \(bound.port) went up the association")
    }

    @Test func dnspythonResolvesThroughThePairAgainstDNSMasq() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let port = try EndToEndHarness.freeUDPPort()
        let dnsmasq = try Self.startDNSMasq(port: port)
        defer { Self.stop(dnsmasq) }
        let result = try Self.python([
            Self.script.path, "dns", "\(harness.proxyPort)", "127.0.0.1", "\(port)", "agg.test",
        ])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "192.0.2.77")
        let server = try Self.serverUDP(harness)
        #expect(server.flowsOpened == 1)
        #expect(server.datagramsUp == 1 && server.datagramsDown == 1)
        let client = try Self.clientUDP(harness)
        #expect(client.datagramsUp == 1 && client.datagramsDown == 1)
        #expect(client.bytesUp == server.bytesUp && client.bytesDown == server.bytesDown)
    }

    @Test func foreignSourcesAndFragmentsAreDroppedAndTheRelayEndsWithItsControlConnection() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let echo = try Self.startEcho(on: harness.group)
        defer { try? echo.close().wait() }
        let result = try Self.python([
            Self.script.path, "misbehave", "\(harness.proxyPort)", "127.0.0.1",
            "\(echo.localAddress!.port!)",
        ])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "replies good")
        let client = try Self.clientUDP(harness)
        #expect(client.dropped["foreign_source"] == 1)
        #expect(client.dropped["fragmented"] == 1)
        #expect(client.datagramsUp == 1)
    }

    @Test func aDomainTargetIsResolvedByTheServer() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let echo = try Self.startEcho(on: harness.group)
        defer { try? echo.close().wait() }
        // PySocks sends "localhost" as a name (rdns): aggserver resolves it under the egress policy.
        let result = try Self.python([
            Self.script.path, "echo", "\(harness.proxyPort)", "localhost",
            "\(echo.localAddress!.port!)", "10",
        ])
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "sent 10 received 10 late 0")
    }

    @Test func theEgressPolicyAppliesToEveryDestination() throws {
        let harness = try EndToEndHarness(egressAllow: [])
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let port = try EndToEndHarness.freeUDPPort()
        let dnsmasq = try Self.startDNSMasq(port: port)
        defer { Self.stop(dnsmasq) }
        let result = try Self.python([
            Self.script.path, "dns", "\(harness.proxyPort)", "127.0.0.1", "\(port)", "agg.test",
        ])
        #expect(result.status != 0)
        let server = try Self.serverUDP(harness)
        #expect(server.dropped["refused"] == 1)
        #expect(server.datagramsUp == 0)
    }

    @Test func udpFlowsKeepAnAssociationWithoutStreams() throws {
        var limits = StreamLimits()
        limits.associationIdleTimeout = .seconds(2)
        let harness = try EndToEndHarness(serverLimits: limits)
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let echo = try Self.startEcho(on: harness.group)
        defer { try? echo.close().wait() }
        // One datagram every 500 ms for 6 s: no stream is ever open, and the server's association idle timeout
        // (2 s) passes three times over while the flow lives: the association stays.
        let result = try Self.python([
            Self.script.path, "echo", "\(harness.proxyPort)", "127.0.0.1",
            "\(echo.localAddress!.port!)", "12", "500",
        ])
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "sent 12 received 12 late 0")
        let client = harness.client
        let state = try client.eventLoop.submit { (client.summary().isReady, client.associationsEstablished) }.wait()
        #expect(state.0 && state.1 == 1)
    }

    @Test func threeThousandEchoedDatagramsComeBack() throws {
        // Every datagram must reach the server: with the default lifetime (300 ms) a host stalled by a parallel
        // test run (load average 9 here) let the client abandon some (2,980 of 3,000 arrived), as it should.
        let harness = try EndToEndHarness(configureClient: { $0.udp.lifetime = .seconds(10) })
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let echo = try Self.startEcho(on: harness.group)
        defer { try? echo.close().wait() }
        let count = 3000
        let result = try Self.python([
            Self.script.path, "echo", "\(harness.proxyPort)", "127.0.0.1",
            "\(echo.localAddress!.port!)", "\(count)",
        ])
        #expect(result.status == 0, "\(result.output)")
        let fields = result.output.split(separator: " ").compactMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        try #require(fields.count == 3, "\(result.output)")
        #expect(fields[0] == count)
        #expect(Double(fields[1]) >= Double(count) * 0.995, "\(result.output)")
        let server = try Self.serverUDP(harness)
        #expect(server.flowsOpened == 1)
        #expect(server.datagramsUp >= count)
        // The figures reach the status snapshot, `aggclient status` and the metrics.
        let client = harness.client
        let (snapshot, table, prometheus) = try client.eventLoop.submit {
            let monitor = StatusMonitor(source: client)
            let snapshot = monitor.collect()
            return (snapshot, StatusTable.render(snapshot), monitor.prometheusText())
        }.wait()
        let udp = try #require(snapshot.counters.udp)
        #expect(udp.flows == 1 && udp.datagramsUp >= count && udp.datagramsDown >= fields[1])
        #expect(udp.bytesUp >= count * 208)
        #expect(table.contains("udp 1 flow  datagrams up \(udp.datagramsUp)"))
        #expect(prometheus.contains("agg_udp_relay_datagrams_total{direction=\"up\"} \(udp.datagramsUp)"))
        #expect(prometheus.contains("agg_udp_relay_expired_total"))
    }
}

/// Sends every datagram back to where it came from.
final class UDPEchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        context.writeAndFlush(
            wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: envelope.data)),
            promise: nil)
    }
}

/// Collects the datagrams a test socket receives, for a test thread to wait on.
final class UDPReplyCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    struct Reply {
        var source: SCTPSocketAddress?
        var text: String
    }

    private let replies = Mutex<[Reply]>([])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let reply = Reply(source: SCTPSocketAddress(envelope.remoteAddress), text: String(buffer: envelope.data))
        replies.withLock { $0.append(reply) }
    }

    struct Timeout: Error {}

    /// The oldest reply not taken yet, waiting up to `timeout` for one.
    func next(timeout: TimeAmount) throws -> Reply {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            if let reply = replies.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return reply }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw Timeout()
    }
}
