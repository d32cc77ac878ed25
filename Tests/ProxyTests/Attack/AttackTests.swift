import AggIngress
import AggProtocol
import Foundation
import NIOCore
import SCTPEngine
import Testing

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// The limits of issue 7 under attack, each attack run side by side with a normal transfer against the real pair on
/// loopback. Memory is read from the daemons' own counters (associations held, DATA bytes buffered); throughput is
/// compared with a baseline measured in the same test, within a wide band because two cores are shared.
@Suite("Attack", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct AttackTests {
    static let transferSize = 16 * 1024 * 1024
    /// A transfer under attack must keep at least this share of the baseline's throughput.
    static let throughputBand = 0.25

    // MARK: - INIT flood

    /// Thousands of INITs with random tags and ports. Encrypted (the default), the datagram layer drops each as
    /// plaintext before the engine sees it; with `--allow-plaintext` the engine answers each with a stateless
    /// cookie. Either way the server allocates nothing, keeps exactly the associations it had, and a transfer
    /// through it keeps going.
    @Test(arguments: [false, true])
    func initFloodAllocatesNoAssociationAndTransfersContinue(allowPlaintext: Bool) throws {
        let harness = try AttackHarness(allowPlaintext: allowPlaintext)
        defer { harness.shutdown() }
        #expect(try harness.serverAssociationCount() == 2)  // The two clients.
        let baseline = try harness.download(size: Self.transferSize)

        let flood = InitFlood(port: harness.udpPort, count: 10_000)
        let thread = Thread { flood.run() }
        thread.start()
        var maxAssociations = 0
        var duringFlood: [Double] = []
        while !flood.isDone {
            duringFlood.append(try harness.download(size: Self.transferSize / 4))
            maxAssociations = max(maxAssociations, try harness.serverAssociationCount())
        }
        maxAssociations = max(maxAssociations, try harness.serverAssociationCount())
        #expect(flood.sent >= 10_000)
        #expect(maxAssociations == 2, "the server held \(maxAssociations) associations during the flood")
        let under = duringFlood.reduce(0, +) / Double(max(duringFlood.count, 1))
        #expect(
            under >= baseline * Self.throughputBand,
            "\(Int(under / 1e6)) MB/s during the flood against \(Int(baseline / 1e6)) MB/s before")
        // After the flood, still exactly the clients' associations.
        #expect(try harness.serverAssociationCount() == 2)
        let dropped = try harness.serverDroppedPlaintext()
        if allowPlaintext {
            #expect(dropped == 0)
        } else {
            // Loopback UDP may lose a few when the socket buffer overflows; the rest must all be dropped as plaintext.
            #expect(dropped >= flood.sent * 9 / 10, "the layer dropped \(dropped) of \(flood.sent) plaintext INITs")
        }
    }

    // MARK: - Streams that never read

    /// One local client opens streams that never read (the origin streams without end) until the client refuses
    /// more; the association's buffered bytes never exceed `bufferedBytesPerAssociation` (at the cap, DATA for the
    /// draining download resets the stalled stream holding the most), a download on another stream of the same
    /// association and one through the other client keep their throughput, and once the stalled connections close
    /// the count returns to exactly 0.
    @Test func stalledStreamsStayWithinTheBufferCapAndOthersKeepTheirThroughput() throws {
        var limits = StreamLimits()
        limits.streamsPerAssociation = 32
        limits.streamCredit = 256 * 1024
        limits.bufferedBytesPerAssociation = 1024 * 1024
        let harness = try AttackHarness(serverLimits: limits, clientLimits: limits)
        defer { harness.shutdown() }
        // Baseline: the same two downloads side by side, without the attack.
        let size = 2 * Self.transferSize
        let victimBaseline = TransferThread { try harness.download(size: size) }
        let otherBaseline = TransferThread { try harness.download(size: size, client: 1) }
        let baselines = (try victimBaseline.result(), try otherBaseline.result())
        // A completed transfer leaves nothing counted on either side.
        #expect(try AttackHarness.wait(seconds: 5) { try harness.clientBufferedBytes() == 0 })
        #expect(try harness.serverBufferedBytes() == 0)

        // The victim stream of the same association starts first, then the stalled streams open one by one.
        let victim = TransferThread { try harness.download(size: size) }
        let other = TransferThread { try harness.download(size: size, client: 1) }
        var stalled: [AttackSocket] = []
        var refused = 0
        var maxBuffered = 0
        for _ in 0..<limits.streamsPerAssociation {
            guard let socket = AttackSocket(port: harness.proxyPorts[0], receiveBuffer: 4096) else { break }
            guard socket.socks5Connect(port: UInt16(harness.originPort)) == 0 else {
                refused += 1
                break
            }
            socket.send(Array("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            stalled.append(socket)
            // Let this stream fill the kernel's buffers and its credit before the next one opens.
            var last = -1
            _ = try AttackHarness.wait(seconds: 5) {
                let now = try harness.clientBufferedBytes()
                maxBuffered = max(maxBuffered, now)
                defer { last = now }
                return now > 0 && now == last
            }
        }
        for _ in 0..<20 {
            maxBuffered = max(maxBuffered, try harness.clientBufferedBytes())
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(refused == 1, "the client never refused a stream: the cap was not reached (\(maxBuffered) bytes)")
        #expect(maxBuffered <= limits.bufferedBytesPerAssociation, "the association buffered \(maxBuffered) bytes")
        let victimRate = try victim.result()
        let otherRate = try other.result()
        #expect(
            victimRate >= baselines.0 * Self.throughputBand, "same association: \(victimRate) against \(baselines.0)")
        #expect(otherRate >= baselines.1 * Self.throughputBand, "other client: \(otherRate) against \(baselines.1)")

        // The stalled readers go away: every byte counted in is counted out.
        stalled.removeAll()
        #expect(try AttackHarness.wait(seconds: 10) { try harness.clientBufferedBytes() == 0 })
        #expect(try AttackHarness.wait(seconds: 10) { try harness.serverBufferedBytes() == 0 })
        // New streams are accepted again.
        #expect(try harness.download(size: 1024 * 1024) > 0)
    }

    /// A reader slower than the relay: the client's socket keeps a backlog, so its writes are reported done by the
    /// markers written after them rather than at their flush; the credit they return keeps the download moving,
    /// every byte arrives in order, and once it is over nothing stays counted as buffered on either side.
    @Test func aSlowReaderGetsEveryByteAndNothingStaysBuffered() throws {
        // The default credit (4 MiB) is more than the kernel buffers for a reader this slow.
        let harness = try AttackHarness()
        defer { harness.shutdown() }
        let size = 16 * 1024 * 1024
        let socket = try #require(AttackSocket(port: harness.proxyPorts[0], receiveBuffer: 8192))
        #expect(socket.socks5Connect(port: UInt16(harness.originPort)) == 0)
        #expect(socket.send(Array("GET /blob/\(size) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)))
        var response: [UInt8] = []
        // About 8 MB/s at most: far slower than the relay, so the client's socket holds a backlog most of the time.
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }  // The origin closes after the body; a stall ends in the 10 s timeout.
            response += chunk[..<n]
            Thread.sleep(forTimeInterval: 0.002)
        }
        let head = try #require(response.firstRange(of: Array("\r\n\r\n".utf8)))
        let body = response[head.upperBound...]
        #expect(body.count == size)
        #expect(EndToEndHarness.sha256(body) == EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView))
        #expect(try AttackHarness.wait(seconds: 5) { try harness.clientBufferedBytes() == 0 })
        #expect(try AttackHarness.wait(seconds: 5) { try harness.serverBufferedBytes() == 0 })
    }

    /// The buffered-bytes count returns to 0 when the association is lost while streams hold buffered bytes.
    @Test func bufferedBytesReturnToZeroWhenTheAssociationIsLost() throws {
        var limits = StreamLimits()
        limits.streamCredit = 256 * 1024
        limits.bufferedBytesPerAssociation = 1024 * 1024
        let harness = try AttackHarness(serverLimits: limits, clientLimits: limits)
        defer { harness.shutdown() }
        var stalled: [AttackSocket] = []
        for _ in 0..<3 {
            let socket = try #require(AttackSocket(port: harness.proxyPorts[0], receiveBuffer: 4096))
            #expect(socket.socks5Connect(port: UInt16(harness.originPort)) == 0)
            socket.send(Array("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            stalled.append(socket)
        }
        #expect(try AttackHarness.wait(seconds: 15) { try harness.clientBufferedBytes() > 0 })
        try harness.server.abortAssociations().wait()
        #expect(try AttackHarness.wait(seconds: 10) { try harness.clientBufferedBytes() == 0 })
        #expect(try AttackHarness.wait(seconds: 10) { try harness.serverBufferedBytes() == 0 })
        #expect(AttackHarness.wait(seconds: 10) { stalled.allSatisfy(\.isClosedByPeer) })
    }

    // MARK: - Slowloris

    /// Hundreds of connections to the SOCKS and HTTP listener each send one byte every second; the handshake and
    /// header timeouts close every one of them, and meanwhile a normal client connects and transfers.
    @Test func slowlorisConnectionsAreClosedByTheHandshakeTimeout() throws {
        var ingress = ProxyIngressConfiguration()
        ingress.handshakeTimeout = .seconds(3)
        ingress.httpHeaderTimeout = .seconds(3)
        let harness = try AttackHarness(ingress: ingress)
        defer { harness.shutdown() }
        let baseline = try harness.download(size: Self.transferSize)

        // SOCKS5 greetings, SOCKS4 requests and HTTP heads, each dribbled one byte at a time and never finished.
        let prefixes: [[UInt8]] = [
            [5, 2, 0, 2, 5, 1, 0, 3, 200] + Array(repeating: UInt8(ascii: "a"), count: 200),
            [4, 1, 0, 80, 127, 0, 0, 1] + Array(repeating: UInt8(ascii: "u"), count: 200),
            Array("GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
                + Array(repeating: UInt8(ascii: "z"), count: 200),
        ]
        var attackers: [(AttackSocket, [UInt8])] = []
        for index in 0..<300 {
            guard let socket = AttackSocket(port: harness.proxyPorts[index % 2]) else { continue }
            attackers.append((socket, prefixes[index % prefixes.count]))
        }
        #expect(attackers.count == 300)
        let start = ContinuousClock.now
        let normal = TransferThread { try harness.download(size: Self.transferSize) }
        var step = 0
        var open = attackers.count
        // The attackers never stop dribbling, so a connection would stay open for good if a timeout were reset by
        // each byte or missing. The cap leaves room for a loaded CI machine (two cores
        // shared with the rest of the suite delayed the 3 s timers to 13 s once) while staying far below that.
        while open > 0, ContinuousClock.now - start < .seconds(45) {
            open = 0
            for (socket, bytes) in attackers where !socket.isClosedByPeer {
                socket.send([bytes[min(step, bytes.count - 1)]])
                open += 1
            }
            step += 1
            Thread.sleep(forTimeInterval: 1)
        }
        let elapsed = ContinuousClock.now - start
        #expect(open == 0, "\(open) slow connections still open after \(elapsed)")
        print("slowloris: 300 slow connections closed after \(elapsed) (timeouts 3 s)")
        let rate = try normal.result()
        #expect(rate >= baseline * Self.throughputBand, "during slowloris: \(rate) against \(baseline)")
        // And a connection after the attack is served normally.
        #expect(try harness.download(size: 1024 * 1024) > 0)
    }
}

/// Runs a transfer on its own thread; `result` waits for it.
final class TransferThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Result<Double, any Error> = .failure(AttackFailure("not finished"))

    init(_ body: @escaping @Sendable () throws -> Double) {
        Thread { [self] in
            outcome = Result { try body() }
            done.signal()
        }.start()
    }

    func result() throws -> Double {
        done.wait()
        return try outcome.get()
    }
}

/// Sends INIT chunks with random initiate tags, TSNs and SCTP source ports from fresh UDP sockets on loopback (a
/// new source port every 100 packets) at the server's UDP port.
final class InitFlood: @unchecked Sendable {
    let port: UInt16
    let count: Int
    private let lock = NSLock()
    private var sentCount = 0
    private var finished = false

    init(port: UInt16, count: Int) {
        self.port = port
        self.count = count
    }

    var sent: Int { lock.withLock { sentCount } }
    var isDone: Bool { lock.withLock { finished } }

    func run() {
        var generator = SystemRandomNumberGenerator()
        var destination = sockaddr_in()
        destination.sin_family = sa_family_t(AF_INET)
        destination.sin_port = port.bigEndian
        destination.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var fd: Int32 = -1
        for index in 0..<count {
            if index % 100 == 0 {
                if fd >= 0 { close(fd) }
                fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            }
            let chunk = InitChunk(
                initiateTag: VerificationTag(UInt32.random(in: 1...UInt32.max, using: &generator)),
                advertisedReceiverWindowCredit: 65536, outboundStreams: 10, inboundStreams: 10,
                initialTSN: TSN(UInt32.random(in: 0...UInt32.max, using: &generator)))
            let header = CommonHeader(
                sourcePort: UInt16.random(in: 1024...65535, using: &generator),
                destinationPort: AggServerService.sctpPort, verificationTag: VerificationTag(0))
            let packet = SCTPPacket(header: header, chunks: [.initiation(chunk)]).encode()
            let bytes = Array(packet.readableBytesView)
            _ = bytes.withUnsafeBytes { raw in
                withUnsafePointer(to: &destination) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            lock.withLock { sentCount += 1 }
            // At most 2,500 INITs a second: the test asserts that the flood allocates nothing and leaves a transfer
            // a share of its throughput, not that a debug build on two shared cores has CPU to spare at any rate
            // (answering each plaintext INIT costs an HMAC; 10,000 a second cut the transfer to about a fifth).
            if index % 25 == 24 { Thread.sleep(forTimeInterval: 0.01) }
        }
        if fd >= 0 { close(fd) }
        lock.withLock { finished = true }
    }
}
