import AggConfig
import AggEgress
import AggObservability
import AggProtocol
import AggTransport
import Foundation
import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization
import Testing

@testable import Proxy

/// aggserver's UDP relay against a key holder that speaks the relay protocol itself, bypassing aggclient's own
/// limits: more flows than `limits.udp-flows-per-key` over two associations, floods of datagrams waiting for a name
/// that never resolves, a destination that floods its replies into an association that does not take them, flows
/// left to go idle. The server holds every limit, counts what it refuses, frees what it held, and another key's
/// flows keep working throughout.
@Suite(.serialized) struct UDPRelayLimitTests {
    static let rogueKey = PreSharedKey(name: "rogue", key: (0..<32).map { UInt8($0) &* 13 &+ 5 })
    static let victimKey = PreSharedKey(name: "victim", key: (0..<32).map { UInt8($0) &* 29 &+ 3 })
    static let loopback = SCTPIPAddress(v4: 127, 0, 0, 1)

    /// A bare SCTP association that authenticates with `key` and then sends UDP relay messages as the test says,
    /// recording what the server sends back.
    final class KeyHolder: @unchecked Sendable {
        let driver: SCTPDriver
        var authenticator: ClientAuthenticator
        var association: SCTPAssociationID?
        var closes: [UDPCloseReason: [UInt32]] = [:]
        var replies: [UInt32: Int] = [:]

        init(driver: SCTPDriver, key: PreSharedKey) {
            self.driver = driver
            authenticator = ClientAuthenticator(key: key, nonce: Array(repeating: 9, count: AggLimits.authFieldLength))
        }

        /// Connects to `server` from 127.0.0.1 on `loop` and waits until the server has accepted the key.
        static func connect(
            key: PreSharedKey, to server: SCTPSocketAddress, on loop: any EventLoop, port: UInt16
        ) throws -> KeyHolder {
            var sctp = SCTPConfiguration()
            sctp.localPort = port
            let driver = try SCTPDriver.bind(
                localAddresses: [SCTPSocketAddress(ip: loopback, port: 0)], configuration: sctp, seed: UInt64(port),
                on: loop
            ).wait()
            let holder = KeyHolder(driver: driver, key: key)
            try loop.submit {
                driver.onEvent = holder.handle
                holder.association = driver.connect(to: server, peerPort: AggServerService.sctpPort)
            }.wait()
            let authenticated = try AttackHarness.wait(seconds: 10) {
                try loop.submit { holder.authenticator.isAuthenticated }.wait()
            }
            guard authenticated else { throw AttackFailure("key \(key.name) did not authenticate") }
            return holder
        }

        func handle(_ event: SCTPEvent) {
            guard case .message(let id, let message) = event else { return }
            if message.stream.rawValue == 0, UDPMessage.isUDP(message.ppid) {
                switch try? UDPMessage.decode(message) {
                case .datagram(let flow, _, _)?: replies[flow, default: 0] += 1
                case .close(let flow, let reason)?: closes[reason, default: []].append(flow)
                case nil: Issue.record("undecodable UDP message from the server")
                }
                return
            }
            guard case .control(let control)? = try? AggMessage.decode(message) else { return }
            if let reply = try? authenticator.receive(control) { driver.send(reply, on: id) }
        }

        /// Sends a datagram of `size` bytes on `flow` toward `target` (call on the driver's loop).
        func send(flow: UInt32, to target: StreamTarget, size: Int = 100) {
            let message = UDPMessage.datagram(
                flow: flow, peer: target, payload: ByteBuffer(repeating: UInt8(truncatingIfNeeded: flow), count: size))
            try? driver.send(message, on: association!, lifetime: .seconds(2))
        }

        func close(flow: UInt32) {
            try? driver.send(UDPMessage.close(flow: flow, reason: .closed), on: association!, lifetime: .seconds(2))
        }

        var totalReplies: Int { replies.values.reduce(0, +) }
    }

    /// aggserver with the rogue's and the victim's keys, a fake resolver (names starting with "never" hang, every
    /// other name is 127.0.0.1), a UDP echo, and the UDP settings under test.
    final class Harness: @unchecked Sendable {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 4)
        let dns = LookupSchedulerTests.FakeDNS()
        let server: AggServerService
        let listen: SCTPSocketAddress
        let echo: any Channel
        var holders: [KeyHolder] = []
        private var nextPort: UInt16 = 50_101

        var serverLoop: any EventLoop { server.eventLoop }
        var echoTarget: StreamTarget { StreamTarget(host: .ip(loopback), port: UInt16(echo.localAddress!.port!)) }

        init(udp: UDPRelaySettings, sctp: (inout SCTPConfiguration) -> Void = { _ in }) throws {
            listen = SCTPSocketAddress(ip: loopback, port: try EndToEndHarness.freeUDPPort())
            var lookupLimits = LookupScheduler.Limits()
            lookupLimits.timeout = .seconds(30)
            let egress = EgressConnector(
                policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]), connectTimeout: .seconds(5),
                lookup: dns.lookup, lookupLimits: lookupLimits)
            var configuration = AggServerService.Configuration(
                listen: [listen], keys: [UDPRelayLimitTests.rogueKey, UDPRelayLimitTests.victimKey], egress: egress)
            configuration.allowPlaintext = true
            configuration.udp = udp
            sctp(&configuration.sctp)
            server = try AggServerService.start(
                configuration: configuration, on: group.next(), logger: EndToEndHarness.logger("aggserver")
            ).wait()
            echo = try UDPEndToEndTests.startEcho(on: group)
        }

        /// A new association with `key`, on a loop of its own.
        func connect(_ key: PreSharedKey) throws -> KeyHolder {
            nextPort += 1
            let holder = try KeyHolder.connect(key: key, to: listen, on: group.next(), port: nextPort)
            holders.append(holder)
            return holder
        }

        func on<T: Sendable>(_ holder: KeyHolder, _ body: @escaping @Sendable () -> T) throws -> T {
            try holder.driver.eventLoop.submit(body).wait()
        }

        func onServer<T: Sendable>(_ body: @escaping @Sendable (AggServerService) -> T) throws -> T {
            let server = server
            return try serverLoop.submit { body(server) }.wait()
        }

        var flowsHeld: [String: Int] { (try? onServer { $0.udpBudget.flows }) ?? [:] }
        var queuedHeld: [String: Int] { (try? onServer { $0.udpBudget.queued }) ?? [:] }
        var drops: [String: Int] { (try? onServer { $0.udpMetrics.values.dropped }) ?? [:] }

        /// The victim's check: `count` new flows to the echo, each answered.
        func victimFlowsWork(_ victim: KeyHolder, count: Int, firstFlow: UInt32) throws -> Bool {
            let target = echoTarget
            let before = try on(victim) { victim.totalReplies }
            try on(victim) {
                for flow in firstFlow..<firstFlow + UInt32(count) { victim.send(flow: flow, to: target) }
            }
            return try AttackHarness.wait(seconds: 5) { try self.on(victim) { victim.totalReplies } >= before + count }
        }

        func shutdown() {
            dns.release()
            try? server.stop().wait()
            for holder in holders { try? holder.driver.close().wait() }
            try? echo.close().wait()
            try? group.syncShutdownGracefully()
        }
    }

    static func settings(flows: Int = 1024, queued: Int = 256, idle: Duration = .seconds(60)) -> UDPRelaySettings {
        var settings = UDPRelaySettings()
        settings.flowsPerKey = flows
        settings.queuedDatagramsPerKey = queued
        settings.idleTimeout = idle
        return settings
    }

    // MARK: - Flows per key

    /// Two associations of one key ask for 30 flows each against a limit of 16: the key holds 16, the other 44 get
    /// UDP-CLOSE "too many flows" and are counted; another key opens its own 16 meanwhile; a flow the rogue closes
    /// frees a slot, and so does the end of an association.
    @Test func aKeyHoldsAtMostItsFlowsOverAllItsAssociations() throws {
        let harness = try Harness(udp: Self.settings(flows: 16))
        defer { harness.shutdown() }
        let first = try harness.connect(Self.rogueKey)
        let second = try harness.connect(Self.rogueKey)
        let victim = try harness.connect(Self.victimKey)
        let target = harness.echoTarget
        for flow in UInt32(1)...30 {
            for holder in [first, second] { try harness.on(holder) { holder.send(flow: flow, to: target) } }
        }
        let settled = try AttackHarness.wait(seconds: 10) {
            let refused =
                try harness.on(first) { first.closes[.tooManyFlows]?.count ?? 0 }
                + harness.on(second) { second.closes[.tooManyFlows]?.count ?? 0 }
            let answered = try harness.on(first) { first.replies.count } + harness.on(second) { second.replies.count }
            return refused == 44 && answered == 16
        }
        #expect(settled, "refused and answered flows do not add up")
        #expect(harness.flowsHeld["rogue"] == 16)
        #expect(harness.drops["limit"] == 44)
        #expect(try harness.onServer { $0.udpMetrics.values.flowsOpened } == 16)
        let text = try harness.onServer { $0.metrics.registry.emitToString() }
        #expect(text.contains("agg_udp_relay_dropped_total{reason=\"limit\"} 44"))

        // Another key is not held back by the rogue's flows.
        #expect(try harness.victimFlowsWork(victim, count: 16, firstFlow: 1))
        #expect(harness.flowsHeld["victim"] == 16)

        // More datagrams on refused flow ids stay refused; on admitted ones they pass.
        let admitted = try harness.on(first) { first.replies.keys.sorted() }
        #expect(!admitted.isEmpty)
        try harness.on(first) {
            for flow in admitted { first.send(flow: flow, to: target) }
        }
        #expect(
            try AttackHarness.wait(seconds: 5) { try harness.on(first) { first.totalReplies } == 2 * admitted.count })
        #expect(harness.flowsHeld["rogue"] == 16)

        // A flow the rogue closes frees its slot for a new one.
        try harness.on(first) { first.close(flow: admitted[0]) }
        #expect(AttackHarness.wait(seconds: 5) { harness.flowsHeld["rogue"] == 15 })
        try harness.on(first) { first.send(flow: 100, to: target) }
        #expect(try AttackHarness.wait(seconds: 5) { try harness.on(first) { first.replies[100] } == 1 })

        // An association that ends gives back its flows.
        let secondFlows = try harness.on(second) { second.replies.count }
        try harness.on(second) { second.driver.abort(second.association!, reason: "test") }
        #expect(AttackHarness.wait(seconds: 5) { harness.flowsHeld["rogue"] == 16 - secondFlows })
    }

    // MARK: - Datagrams waiting for a name

    /// 400 datagrams to two flows whose names never resolve, against a limit of 32 waiting: at most 32 wait, the
    /// rest are dropped and counted, while the victim's flows to a name resolve and answer at once; when the lookups
    /// fail the waiting datagrams are given back.
    @Test func datagramsWaitingForANameAreBoundedPerKey() throws {
        let harness = try Harness(udp: Self.settings(queued: 32))
        defer { harness.shutdown() }
        let rogue = try harness.connect(Self.rogueKey)
        let victim = try harness.connect(Self.victimKey)
        let port = harness.echoTarget.port
        try harness.on(rogue) {
            for i in 0..<400 {
                rogue.send(flow: UInt32(1 + i % 2), to: StreamTarget(host: .domain("never-\(i % 2).test"), port: port))
            }
        }
        #expect(AttackHarness.wait(seconds: 10) { harness.drops["limit", default: 0] >= 368 })
        #expect(harness.drops["limit"] == 368)
        #expect(harness.queuedHeld["rogue"] == 32)
        #expect(harness.flowsHeld["rogue"] == 2)

        // The victim's names resolve (the fake resolver answers 127.0.0.1) and its flows answer.
        let target = StreamTarget(host: .domain("good.test"), port: port)
        let before = try harness.on(victim) { victim.totalReplies }
        try harness.on(victim) { for flow in UInt32(1)...8 { victim.send(flow: flow, to: target) } }
        #expect(try AttackHarness.wait(seconds: 5) { try harness.on(victim) { victim.totalReplies } == before + 8 })

        // The lookups fail: the flows close with "DNS failure" and the waiting datagrams are given back.
        harness.dns.release()
        #expect(try AttackHarness.wait(seconds: 10) { try harness.on(rogue) { rogue.closes[.dnsFailure]?.count } == 2 })
        #expect(AttackHarness.wait(seconds: 5) { harness.queuedHeld["rogue"] == nil })
        #expect(harness.flowsHeld["rogue"] == nil)
    }

    // MARK: - Idle flows

    /// With a 1 s idle timeout, eight idle flows are closed within about two timeouts (UDP-CLOSE "closed" for each)
    /// and their slots come back, while a flow that keeps sending stays open.
    @Test func idleFlowsAreClosedAndTheirSlotsFreed() throws {
        let harness = try Harness(udp: Self.settings(flows: 9, idle: .seconds(1)))
        defer { harness.shutdown() }
        let rogue = try harness.connect(Self.rogueKey)
        let target = harness.echoTarget
        try harness.on(rogue) { for flow in UInt32(1)...9 { rogue.send(flow: flow, to: target) } }
        #expect(try AttackHarness.wait(seconds: 5) { try harness.on(rogue) { rogue.replies.count } == 9 })
        #expect(harness.flowsHeld["rogue"] == 9)

        // Flow 9 sends every 300 ms; the others fall silent.
        let start = ContinuousClock.now
        var closedAt: Duration?
        while ContinuousClock.now - start < .seconds(4) {
            try harness.on(rogue) { rogue.send(flow: 9, to: target) }
            Thread.sleep(forTimeInterval: 0.3)
            if closedAt == nil, try harness.on(rogue, { rogue.closes[.closed]?.count }) == 8 {
                closedAt = ContinuousClock.now - start
            }
        }
        let closed = try harness.on(rogue) { rogue.closes[.closed]?.sorted() }
        #expect(closed == Array(UInt32(1)...8), "closed: \(String(describing: closed))")
        #expect(
            closedAt.map { $0 <= .milliseconds(2600) } == true, "idle flows closed at \(String(describing: closedAt))")
        #expect(harness.flowsHeld["rogue"] == 1)

        // The freed slots take new flows; nothing is refused.
        try harness.on(rogue) { for flow in UInt32(11)...18 { rogue.send(flow: flow, to: target) } }
        #expect(try AttackHarness.wait(seconds: 5) { try harness.on(rogue) { rogue.replies.count } == 17 })
        #expect(harness.flowsHeld["rogue"] == 9)
        #expect(harness.drops["limit"] == nil)
    }

    // MARK: - A destination that floods

    /// A destination answers one datagram with 20,000 datagrams of 1,000 bytes while the rogue's association takes
    /// nothing (its loop is blocked, so nothing is acknowledged). The server must not queue them without end on the
    /// association: it holds at most its send buffer, drops the rest and counts them, and the victim's flows keep
    /// answering during the flood.
    @Test func aFloodingDestinationCannotGrowTheSendQueueBeyondTheBuffer() throws {
        let sendBuffer = 1 << 20
        let harness = try Harness(udp: Self.settings()) { $0.sendBufferSize = sendBuffer }
        defer { harness.shutdown() }
        let rogue = try harness.connect(Self.rogueKey)
        let rogueOnServer = try #require(try harness.onServer { $0.driver.endpoint.associationIDs.first })
        let victim = try harness.connect(Self.victimKey)
        let flooder = try DatagramBootstrap(group: harness.group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPFlooder(count: 20_000, size: 1000))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? flooder.close().wait() }
        let target = StreamTarget(host: .ip(Self.loopback), port: UInt16(flooder.localAddress!.port!))

        // The rogue asks once and at once stops reading and acknowledging, for 4 s (the datagram leaves first: the
        // driver sends what a turn queued in a task of its own, queued before this one).
        try harness.on(rogue) {
            rogue.send(flow: 1, to: target)
            rogue.driver.eventLoop.execute { Thread.sleep(forTimeInterval: 4) }
        }
        var peak = 0
        var victimWorked = false
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(4) {
            peak = max(peak, try harness.onServer { $0.driver.bufferedAmount(rogueOnServer) })
            if !victimWorked { victimWorked = try harness.victimFlowsWork(victim, count: 4, firstFlow: 1) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let relayed = try harness.onServer { $0.udpMetrics.values.datagramsDown }
        let arrived = relayed + harness.drops["congested", default: 0]
        #expect(arrived > 3 * sendBuffer / 1000, "the flood was too small to test anything: \(arrived) datagrams")
        #expect(peak <= sendBuffer + 64 * 1024, "the rogue's association held \(peak) bytes")
        #expect(harness.drops["congested", default: 0] > 0, "\(harness.drops)")
        #expect(victimWorked, "the victim's flows did not answer during the flood")
    }
}

/// Answers the first datagram it gets with `count` datagrams of `size` bytes to its sender, 20 every millisecond:
/// a destination that floods a flow.
final class UDPFlooder: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let count: Int
    let size: Int
    private var started = false

    init(count: Int, size: Int) {
        self.count = count
        self.size = size
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !started else { return }
        started = true
        let peer = unwrapInboundIn(data).remoteAddress
        let payload = ByteBuffer(repeating: 0x46, count: size)
        let loop = context.eventLoop.assumeIsolated()
        var sent = 0
        func burst() {
            for _ in 0..<20 where sent < count {
                context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: peer, data: payload)), promise: nil)
                sent += 1
            }
            context.flush()
            if sent < count { loop.scheduleTask(in: .milliseconds(1)) { burst() } }
        }
        burst()
    }
}
