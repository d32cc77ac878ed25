import AggEgress
import AggIngress
import Foundation
import Logging
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggObservability
@testable import AggProtocol
@testable import AggTransport
@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// aggserver as two shards (two event loops, SO_REUSEPORT, the steering program) against several aggclient
/// services over real loopback UDP: every client's datagrams are handled by the shard of its key, downloads arrive
/// intact, a client whose NAT changes its port stays on its shard, key reloads reach every shard, and what the
/// program does not steer falls to the kernel's hash.
@Suite(
    "ShardedServer", .serialized, .timeLimit(.minutes(5)),
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct ShardedServerTests {
    static let shardCount = 2

    /// Sixteen client keys, eight for each shard (the shard of a key is its key id's low word mod 2).
    static let keys: [PreSharedKey] = {
        var keys: [PreSharedKey] = []
        var perShard = [0, 0]
        var seed: UInt8 = 1
        while perShard.min()! < 8 {
            let key = PreSharedKey(name: "shard-client-\(seed)", key: (0..<32).map { UInt8($0) &* 29 &+ seed })
            let shard = ShardedServerTests.shard(of: key)
            if perShard[shard] < 8 {
                keys.append(key)
                perShard[shard] += 1
            }
            seed += 1
        }
        return keys
    }()

    /// The shard the steering program sends a key's HELLOs to.
    static func shard(of key: PreSharedKey) -> Int {
        Int(UInt32(truncatingIfNeeded: SecureDatagram.keyID(for: key.key)) % UInt32(shardCount))
    }

    /// Two shards on their own loops, clients and the origin on others.
    final class Setup: @unchecked Sendable {
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: ShardedServerTests.shardCount)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let shards: ServerShards
        let bound: [SCTPSocketAddress]
        let origin: any Channel
        var clients: [AggClientService] = []

        init(
            keys: [PreSharedKey], listen: [SCTPIPAddress], allowPlaintext: Bool = false,
            limits: StreamLimits = StreamLimits(), threads: Int = ShardedServerTests.shardCount,
            program: [ReusePortSteering.Instruction]? = nil
        ) throws {
            origin = try OriginServer.bind(on: clientGroup.next())
            let egress = EgressConnector(
                policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]), connectTimeout: .seconds(5))
            var configuration = AggServerService.Configuration(
                listen: listen.map { SCTPSocketAddress(ip: $0, port: 0) }, keys: keys, egress: egress)
            configuration.allowPlaintext = allowPlaintext
            configuration.limits = limits
            shards = try ServerShards.start(
                configuration: configuration, threads: threads, group: serverGroup,
                logger: EndToEndHarness.logger("aggserver"), program: program
            ).wait()
            bound = try shards.localAddresses.wait()
        }

        /// Starts a client with `key` toward `servers` (default: the server's addresses) and returns its proxy port.
        func startClient(
            _ key: PreSharedKey, servers: [SCTPSocketAddress]? = nil,
            paths: [SCTPIPAddress] = [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)],
            plaintext: Bool = false
        ) throws -> Int {
            var configuration = AggClientService.Configuration(servers: servers ?? bound, paths: paths, key: key)
            configuration.plaintext = plaintext
            let client = try AggClientService.start(
                configuration: configuration, on: clientGroup.next(), logger: EndToEndHarness.logger("aggclient")
            ).wait()
            clients.append(client)
            return try client.listen(host: "127.0.0.1", port: 0, protocols: .all).wait().localAddress!.port!
        }

        var originPort: Int { origin.localAddress!.port! }

        /// Each shard's view, read on its loop: key names of its associations, datagram-layer and driver counters.
        func perShard() throws -> [(
            clients: [String], security: DatagramSecurityStatistics, driver: SCTPDriver.Statistics,
            engineDrops: [SCTPDropReason: Int], refusals: Int
        )] {
            try shards.shards.map { shard in
                try shard.eventLoop.submit {
                    (
                        shard.sessionStreams().compactMap(\.client).sorted(), shard.driver.securityStatistics,
                        shard.driver.statistics, shard.driver.endpoint.droppedPackets,
                        shard.metrics.refusals[.associationsPerKey] ?? 0
                    )
                }.wait()
            }
        }

        func shutdown() {
            for client in clients { try? client.stop().wait() }
            try? shards.stop().wait()
            try? origin.close().wait()
            try? clientGroup.syncShutdownGracefully()
            try? serverGroup.syncShutdownGracefully()
        }
    }

    /// Downloads `size` bytes through the proxy on `port` into `directory` and compares its SHA-256.
    static func startDownload(port: Int, origin: Int, size: Int, into directory: URL) throws -> (Process, URL, Int) {
        let output = directory.appendingPathComponent("out-\(port)-\(size)")
        let process = try Curl(
            arguments: ["-x", "socks5h://127.0.0.1:\(port)", "http://127.0.0.1:\(origin)/blob/\(size)"]
        ).start(output: output)
        return (process, output, size)
    }

    static func expectIntact(_ downloads: [(Process, URL, Int)]) {
        for (process, output, size) in downloads {
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "download of \(size)")
            let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
            #expect((try? EndToEndHarness.sha256(file: output)) == expected, "download of \(size)")
        }
    }

    /// Polls `condition` every 100 ms for up to `seconds`.
    static func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            usleep(100_000)
        }
        return try condition()
    }

    @Test func everyClientIsHandledByTheShardOfItsKeyAndItsDownloadArrivesIntact() throws {
        let setup = try Setup(
            keys: Self.keys, listen: [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)])
        defer { setup.shutdown() }
        #expect(setup.shards.isSteered, "the kernel took the steering program")
        #expect(setup.shards.shards.count == Self.shardCount)
        let directory = try EndToEndTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        // Each client has two paths (127.0.0.1 and 127.0.0.2): two source addresses, one shard.
        var downloads: [(Process, URL, Int)] = []
        for (index, key) in Self.keys.enumerated() {
            let port = try setup.startClient(key)
            downloads.append(
                try Self.startDownload(
                    port: port, origin: setup.originPort, size: 1_000_000 + index * 7919, into: directory))
        }
        Self.expectIntact(downloads)

        let views = try setup.perShard()
        for (index, view) in views.enumerated() {
            let expected = Self.keys.filter { Self.shard(of: $0) == index }.map(\.name).sorted()
            #expect(view.clients == expected, "shard \(index) holds exactly the associations of its keys")
            // A datagram on a shard without its session would be dropped as unknown (or its HELLO would make a
            // session there, listed above).
            #expect(view.security.droppedUnknownSession == 0, "shard \(index)")
            #expect(view.security.droppedBadTag == 0, "shard \(index)")
            #expect(view.driver.datagramsReceived > 100, "shard \(index) carried its clients' traffic")
            // Every session this shard made (first handshakes, and the liveness probes a loaded machine causes) is
            // of one of its keys, with an id that steers back to it.
            let shard = setup.shards.shards[index]
            let sessions = try shard.eventLoop.submit {
                shard.driver.security?.server?.sessions.entries.map { ($0.key, $0.value.keyID) } ?? []
            }.wait()
            #expect(sessions.count >= expected.count)
            for (id, keyID) in sessions {
                #expect(UInt32(truncatingIfNeeded: keyID) % UInt32(Self.shardCount) == UInt32(index), "key of \(id)")
                #expect(UInt32(truncatingIfNeeded: id) % UInt32(Self.shardCount) == UInt32(index), "session \(id)")
            }
        }

        // The status endpoint's monitor adds the shards up.
        let monitor = StatusMonitor(sources: setup.shards.shards)
        let merged = try Self.eventually {
            try monitor.eventLoop.submit { monitor.sample() }.wait()
            usleep(200_000)
            let snapshot = try monitor.eventLoop.submit { monitor.current() }.wait()
            return snapshot.associations.count == Self.keys.count
                && snapshot.counters.associationsAuthenticated == Self.keys.count
        }
        #expect(merged, "status shows every shard's associations and the sum of their counters")
        let snapshot = try monitor.eventLoop.submit { monitor.current() }.wait()
        let received = try setup.perShard().map(\.driver.datagramsReceived).reduce(0, +)
        #expect(snapshot.counters.datagramsReceived <= received && snapshot.counters.datagramsReceived > received / 2)
        #expect(Set(snapshot.associations.map(\.client)).count == Self.keys.count, "ids unique across shards")
        let lines = try monitor.eventLoop.submit { monitor.statusLines() }.wait()
        #expect(lines.filter { $0.hasPrefix("association ") }.count == Self.keys.count)
        #expect(lines.filter { $0.hasPrefix("udp ") }.count == 1, "one line of summed UDP counters")

        // The daemon's status endpoint samples the shards every second; a request takes a fresh sample, so an
        // association that just came up is in the very next answer (a script checking right after sees it). Here
        // the periodic sample is a minute apart: only the request's own can show the new association.
        let endpoint = try StatusEndpoint.start(
            host: "127.0.0.1", port: 0, sources: setup.shards.shards, sampleInterval: .seconds(60)
        ).wait()
        defer { try? endpoint.close().wait() }
        let endpointPort = endpoint.localAddress!.port!
        func clientsShown() throws -> Set<String> {
            let json = try StatusFetcher.withFetcher(host: "127.0.0.1", port: endpointPort) {
                try $0.fetch("/status.json?history=0")
            }
            return Set(try StatusSnapshot(json: json).associations.compactMap(\.client))
        }
        #expect(try clientsShown() == Set(Self.keys.map(\.name)))

        // A reload reaches every shard: the removed key's association ends wherever it is, a new key works.
        let removed = Self.keys[0]
        let added = PreSharedKey(name: "added-later", key: (0..<32).map { UInt8($0) &* 3 &+ 77 })
        try setup.shards.reloadKeys(Array(Self.keys.dropFirst()) + [added]).wait()
        let gone = try Self.eventually {
            try setup.perShard().allSatisfy { !$0.clients.contains(removed.name) }
        }
        #expect(gone, "the removed key's association ended")
        #expect(try setup.perShard().map(\.clients.count).reduce(0, +) == Self.keys.count - 1)
        let port = try setup.startClient(added)
        try setup.clients.last!.whenReady().wait()
        let shown = try clientsShown()
        #expect(shown.contains(added.name) && !shown.contains(removed.name), "the next status answer: \(shown)")
        Self.expectIntact([try Self.startDownload(port: port, origin: setup.originPort, size: 300_000, into: directory)]
        )
        #expect(try setup.perShard()[Self.shard(of: added)].clients.contains(added.name))
    }

    @Test func aClientWhoseNATChangesItsPortStaysOnItsShard() throws {
        let key = Self.keys[1]
        let setup = try Setup(keys: [key], listen: [SCTPIPAddress(v4: 127, 0, 0, 1)])
        defer { setup.shutdown() }
        let nat = try RebindingForwarder(server: setup.bound[0], on: setup.clientGroup.next())
        defer { nat.close() }
        let port = try setup.startClient(key, servers: [nat.front], paths: [SCTPIPAddress(v4: 127, 0, 0, 1)])
        let directory = try EndToEndTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let download = try Self.startDownload(port: port, origin: setup.originPort, size: 6_000_000, into: directory)
        for _ in 0..<5 {
            usleep(300_000)
            try nat.rebind()
        }
        Self.expectIntact([download])
        #expect(nat.ports.count == 6, "the client's NAT used six ports in turn")
        let views = try setup.perShard()
        let home = Self.shard(of: key)
        #expect(views[home].clients == [key.name])
        #expect(views[1 - home].driver.datagramsReceived == 0, "not one datagram reached the other shard")
        #expect(views[home].security.droppedUnknownSession == 0)
    }

    @Test func plaintextAssociationsStayOnTheShardThatChoseTheirTag() throws {
        let setup = try Setup(
            keys: Self.keys, listen: [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)],
            allowPlaintext: true)
        defer { setup.shutdown() }
        let directory = try EndToEndTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var downloads: [(Process, URL, Int)] = []
        for (index, key) in Self.keys.enumerated() {
            let port = try setup.startClient(key, plaintext: true)
            downloads.append(
                try Self.startDownload(
                    port: port, origin: setup.originPort, size: 1_000_000 + index * 7919, into: directory))
        }
        Self.expectIntact(downloads)
        let views = try setup.perShard()
        #expect(views.flatMap(\.clients).sorted() == Self.keys.map(\.name).sorted())
        for (index, view) in views.enumerated() {
            // The INIT lands where the kernel hashes it; every later packet carries the tag that shard chose. One on
            // the other shard would be out of the blue there.
            #expect(view.engineDrops[.outOfTheBlue, default: 0] == 0, "shard \(index): \(view.engineDrops)")
            #expect(view.security.plaintextAccepted > 0 || view.clients.isEmpty, "shard \(index)")
        }
    }

    @Test func thePlaintextPerKeyLimitFollowsAssociationsThatComeAndGo() throws {
        let key = Self.keys[0]
        var limits = StreamLimits()
        limits.associationsPerKey = 2
        // One shard: plaintext clients are placed by the kernel's hash, so the limit is exact per shard only.
        let setup = try Setup(
            keys: [key], listen: [SCTPIPAddress(v4: 127, 0, 0, 1)], allowPlaintext: true, limits: limits, threads: 1)
        defer { setup.shutdown() }
        let paths = [SCTPIPAddress(v4: 127, 0, 0, 1)]
        for _ in 0..<3 { _ = try setup.startClient(key, paths: paths, plaintext: true) }
        let refused = try Self.eventually(15) {
            let view = try setup.perShard()[0]
            return view.clients.count == 2 && view.refusals > 0
        }
        #expect(refused, "two associations of the key, the third refused")
        // A client that leaves frees its slot: the refused one, retrying, gets in.
        try setup.clients[0].stop().wait()
        let joined = try Self.eventually(15) {
            let view = try setup.perShard()[0]
            return view.clients.count == 2
        }
        #expect(joined, "the third client holds an association once one left")
        usleep(500_000)
        #expect(try setup.perShard()[0].clients.count == 2)
    }

    /// Graceful stop waits for every shard: a rate-limited download on each shard is running when the stop is asked
    /// for; both finish intact, and the stop completes within seconds of the later one.
    @Test func aGracefulStopWaitsForTheStreamsOfEveryShard() throws {
        let keys = [0, 1].map { shard in Self.keys.first { Self.shard(of: $0) == shard }! }
        let setup = try Setup(keys: keys, listen: [SCTPIPAddress(v4: 127, 0, 0, 1)])
        defer { setup.shutdown() }
        let directory = try EndToEndTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let size = 3 * 1024 * 1024
        var downloads: [(Process, URL, Int)] = []
        for (index, key) in keys.enumerated() {
            let port = try setup.startClient(key, paths: [SCTPIPAddress(v4: 127, 0, 0, 1)])
            let output = directory.appendingPathComponent("drain-\(index)")
            let process = try Curl(
                arguments: [
                    "--limit-rate", index == 0 ? "2M" : "1M", "-x", "socks5h://127.0.0.1:\(port)",
                    "http://127.0.0.1:\(setup.originPort)/blob/\(size)",
                ]
            ).start(output: output)
            downloads.append((process, output, size))
        }
        let running = try Self.eventually {
            try setup.shards.shards.allSatisfy { shard in try shard.eventLoop.submit { shard.activeStreams }.wait() == 1
            }
        }
        #expect(running, "one download on each shard")
        let asked = ContinuousClock.now
        let stop = setup.shards.drainAndStop(deadline: .now() + .seconds(30))
        // Both downloads intact: neither shard cut its stream when the stop was asked for.
        Self.expectIntact(downloads)
        let lastEnded = ContinuousClock.now
        try stop.wait()
        let stopped = ContinuousClock.now
        #expect(lastEnded - asked > .seconds(1), "the slower download (1 MB/s) was still running when asked")
        #expect(stopped - lastEnded < .seconds(5), "stopped \(stopped - lastEnded) after the last stream")
    }

    /// A program the kernel refuses (a jump past its end) leaves one shard that serves every client.
    @Test func withoutTheProgramTheServerRunsOneShard() throws {
        let broken = [ReusePortSteering.Instruction(code: ReusePortSteering.jumpIfEqual, jt: 5, jf: 5, k: 0)]
        let setup = try Setup(
            keys: Array(Self.keys.prefix(4)), listen: [SCTPIPAddress(v4: 127, 0, 0, 1)], program: broken)
        defer { setup.shutdown() }
        #expect(!setup.shards.isSteered)
        #expect(setup.shards.shards.count == 1)
        let directory = try EndToEndTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var downloads: [(Process, URL, Int)] = []
        for key in Self.keys.prefix(4) {
            let port = try setup.startClient(key, paths: [SCTPIPAddress(v4: 127, 0, 0, 1)])
            downloads.append(
                try Self.startDownload(port: port, origin: setup.originPort, size: 500_000, into: directory))
        }
        Self.expectIntact(downloads)
        #expect(try setup.perShard()[0].clients.count == 4)
    }

    @Test func datagramsTheProgramDoesNotSteerFallToTheKernelsHash() throws {
        let setup = try Setup(keys: [Self.keys[0]], listen: [SCTPIPAddress(v4: 127, 0, 0, 1)])
        defer { setup.shutdown() }
        let target = setup.bound[0]
        // From 40 source ports: an unknown type (fall to hash), and a DATA byte too short to hold a session id.
        for _ in 0..<40 {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = target.port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            for payload: [UInt8] in [[0x99] + Array(repeating: 0, count: 99), [0x44, 1, 2]] {
                _ = payload.withUnsafeBytes { bytes in
                    withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
            }
        }
        let arrived = try Self.eventually(5) {
            try setup.perShard().map { $0.security.droppedPlaintext + $0.security.droppedMalformed }.reduce(0, +) == 80
        }
        #expect(arrived, "the kernel delivered every datagram the program returned out of range for")
        let views = try setup.perShard()
        for (index, view) in views.enumerated() {
            // Linux 6.18 (net/core/sock_reuseport.c): an index past the group's sockets selects by hash, so 40 source
            // ports spread over both shards (all on one would be a 2^-39 chance).
            #expect(view.security.droppedPlaintext > 0, "shard \(index) got some of the unknown datagrams")
            #expect(view.security.droppedMalformed > 0, "shard \(index) got some of the short ones")
        }
    }
}

/// A NAT for one client that changes its public port on demand: the client sends to `front`; the forwarder sends
/// on toward the server from an upstream socket, replaced (a new ephemeral port) by `rebind()`; answers go back to
/// the client. Confined to its event loop.
final class RebindingForwarder: @unchecked Sendable {
    let loop: any EventLoop
    let server: SocketAddress
    private var frontChannel: (any Channel)!
    private var upstream: (any Channel)?
    private var client: SocketAddress?
    /// Every upstream port used, the first included.
    private(set) var ports: [Int] = []

    init(server: SCTPSocketAddress, on loop: any EventLoop) throws {
        self.loop = loop
        self.server = SocketAddress(server)
        frontChannel = try DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Relay { [unowned self] envelope in
                            self.client = envelope.remoteAddress
                            self.upstream?.writeAndFlush(
                                AddressedEnvelope(remoteAddress: self.server, data: envelope.data), promise: nil)
                        })
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        try rebind()
    }

    /// The address the client sends to.
    var front: SCTPSocketAddress { SCTPSocketAddress(frontChannel.localAddress!)! }

    /// Moves to a new upstream port; the old socket closes (datagrams in flight to it are lost, as at a real NAT).
    func rebind() throws {
        let channel = try DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Relay { [unowned self] envelope in
                            guard let client = self.client else { return }
                            self.frontChannel.writeAndFlush(
                                AddressedEnvelope(remoteAddress: client, data: envelope.data), promise: nil)
                        })
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        try loop.submit {
            let old = self.upstream
            self.upstream = channel
            self.ports.append(channel.localAddress!.port!)
            old?.close(promise: nil)
        }.wait()
    }

    func close() {
        try? loop.submit {
            self.upstream?.close(promise: nil)
            self.frontChannel.close(promise: nil)
        }.wait()
    }

    /// Hands every datagram a channel reads to a closure.
    final class Relay: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let body: (AddressedEnvelope<ByteBuffer>) -> Void
        init(_ body: @escaping (AddressedEnvelope<ByteBuffer>) -> Void) { self.body = body }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { body(unwrapInboundIn(data)) }
    }
}
