import AggEgress
import AggIngress
import AggProtocol
import Logging
import NIOCore
import NIOPosix
import Proxy
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#endif

/// What the proxy pair adds to the latency of a connection: the real aggclient and aggserver services in this
/// process over loopback UDP (encrypted, as deployed), against a TCP echo server reached directly in the same run.
/// Loopback has no propagation delay, so every microsecond measured through agg is processing: the SOCKS5 and
/// stream handshakes, the SCTP engine, encryption, and the extra socket hops on each side.
///
/// Two figures: a round trip of a small message on an open connection (an interactive stream: ssh, a game), and
/// the time to set a connection up and get its first byte back (a web page's many short connections).
enum LatencyBenchmark: Benchmark {
    static let name = "latency"
    static let summary = "latency the proxy pair adds on loopback: round trip and connection setup (µs)"

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(arguments, known: ["round-trips", "connections", "size", "paths"])
        if options.wantsHelp {
            print(
                """
                usage: agg-bench latency [--round-trips N] [--connections N] [--size BYTES] [--paths 1|2]
                  --round-trips  echo round trips on one open connection, per case (default 5000)
                  --connections  connections set up and torn down, per case (default 500)
                  --size         bytes per message (default 64)
                  --paths        paths of the association, over 127.0.0.1 and 127.0.0.2 (default 2)
                """
            )
            return
        }
        let roundTrips = try options.int("round-trips", default: 5000)
        let connections = try options.int("connections", default: 500)
        let size = try options.int("size", default: 64)
        let pathCount = try options.int("paths", default: 2)
        guard pathCount <= 2 else { throw UsageError(description: "--paths is 1 or 2") }
        do {
            try measure(roundTrips: roundTrips, connections: connections, size: size, pathCount: pathCount)
        } catch {
            throw UsageError(description: "\(error)")
        }
    }

    private static func measure(roundTrips: Int, connections: Int, size: Int, pathCount: Int) throws {
        let pair = try LoopbackPair(pathCount: pathCount)
        defer { pair.shutdown() }
        let echoPort = UInt16(pair.echoPort)
        let message = [UInt8](repeating: 0x61, count: size)

        // Warm up both ways (code paths, the association's cwnd, the allocator) before timing anything.
        for _ in 0..<3 {
            _ = try roundTripTimes(via: nil, port: echoPort, message: message, count: 200)
            _ = try roundTripTimes(via: pair.socksPort, port: echoPort, message: message, count: 200)
        }
        // Interleaved in chunks, so drift in the machine's load hits both cases alike.
        var direct = Samples()
        var proxied = Samples()
        let chunk = 500
        for _ in 0..<max(1, roundTrips / chunk) {
            direct.add(try roundTripTimes(via: nil, port: echoPort, message: message, count: chunk))
            proxied.add(try roundTripTimes(via: pair.socksPort, port: echoPort, message: message, count: chunk))
        }
        var directSetup = Samples()
        var proxiedSetup = Samples()
        for _ in 0..<connections {
            directSetup.add([try setupTime(via: nil, port: echoPort, message: message)])
            proxiedSetup.add([try setupTime(via: pair.socksPort, port: echoPort, message: message)])
        }

        print(
            "latency: loopback, \(size)-byte messages, \(pathCount) path\(pathCount == 1 ? "" : "s"), encrypted; "
                + "µs (p50 / p90 / p99)")
        print("case                                  p50       p90       p99")
        for (label, samples) in [
            ("round trip, direct TCP", direct), ("round trip, through agg (socks5)", proxied),
            ("connect + first byte, direct TCP", directSetup),
            ("connect + first byte, through agg", proxiedSetup),
        ] {
            let row = [0.5, 0.9, 0.99].map { String(format: "%9.1f", samples.percentile($0)) }.joined(separator: " ")
            print("\(label.padded(to: 34)) \(row)")
        }
        print(
            String(
                format: "agg adds %.0f µs to a round trip (p50) and %.0f µs to a connection's first byte (p50)",
                proxied.percentile(0.5) - direct.percentile(0.5),
                proxiedSetup.percentile(0.5) - directSetup.percentile(0.5)))
    }

    // MARK: - Timing

    /// Opens a connection (through SOCKS5 at `via` when given), then times `count` echo round trips of `message`.
    private static func roundTripTimes(via socks: Int?, port: UInt16, message: [UInt8], count: Int) throws -> [Double] {
        let socket = try BlockingSocket.open(via: socks, port: port)
        defer { socket.close() }
        var times: [Double] = []
        times.reserveCapacity(count)
        var reply = [UInt8](repeating: 0, count: message.count)
        let clock = ContinuousClock()
        for _ in 0..<count {
            let start = clock.now
            try socket.sendAll(message)
            try socket.receiveExactly(&reply)
            times.append(microseconds(start.duration(to: clock.now)))
        }
        return times
    }

    /// Times connect, the SOCKS5 exchange when `via` is given, and the first echo of `message`.
    private static func setupTime(via socks: Int?, port: UInt16, message: [UInt8]) throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let socket = try BlockingSocket.open(via: socks, port: port)
        defer { socket.close() }
        var reply = [UInt8](repeating: 0, count: message.count)
        try socket.sendAll(message)
        try socket.receiveExactly(&reply)
        return microseconds(start.duration(to: clock.now))
    }

    private static func microseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) * 1e-12
    }
}

/// Latency samples in microseconds, kept sorted.
struct Samples {
    private var values: [Double] = []

    mutating func add(_ more: [Double]) {
        values = (values + more).sorted()
    }

    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        return values[min(values.count - 1, Int(Double(values.count) * p))]
    }
}

// MARK: - The pair under test

/// aggserver and aggclient services on their own event loops, a SOCKS5 listener, and a TCP echo server.
final class LoopbackPair {
    let group: MultiThreadedEventLoopGroup
    let server: AggServerService
    let client: AggClientService
    let echo: any Channel
    let echoPort: Int
    let socksPort: Int

    init(pathCount: Int) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        self.group = group
        let loops = (0..<3).map { _ in group.next() }
        var quiet = Logger(label: "agg-bench")
        quiet.logLevel = .error
        echo = try ServerBootstrap(group: loops[2])
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        echoPort = echo.localAddress!.port!
        let key = PreSharedKey(name: "bench", key: (0..<32).map { UInt8($0) &* 29 &+ 3 })
        let addresses = [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)].prefix(pathCount)
        let udpPort = UInt16.random(in: 20000...40000)
        let listen = addresses.map { SCTPSocketAddress(ip: $0, port: udpPort) }
        let egress = EgressConnector(policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]))
        server = try AggServerService.start(
            configuration: AggServerService.Configuration(listen: Array(listen), keys: [key], egress: egress),
            on: loops[0], logger: quiet
        ).wait()
        let configuration = AggClientService.Configuration(
            servers: Array(listen), paths: addresses.map { Optional($0) }, key: key)
        client = try AggClientService.start(configuration: configuration, on: loops[1], logger: quiet).wait()
        socksPort = try client.listen(host: "127.0.0.1", port: 0, protocols: .all).wait().localAddress!.port!
        try client.whenReady().wait()
    }

    func shutdown() {
        try? client.stop().wait()
        try? server.stop().wait()
        try? echo.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Writes back what it reads.
    private final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
    }
}

// MARK: - A blocking client socket

/// A TCP client socket with TCP_NODELAY on 127.0.0.1, optionally through a SOCKS5 proxy (no authentication).
struct BlockingSocket {
    let fd: CInt

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func open(via socks: Int?, port: UInt16) throws -> BlockingSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var one: CInt = 1
        setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = (socks.map { UInt16($0) } ?? port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let socket = BlockingSocket(fd: fd)
        guard connected == 0 else {
            socket.close()
            throw Failure(description: "connect: \(String(cString: strerror(errno)))")
        }
        guard socks != nil else { return socket }
        do {
            // Greeting and CONNECT in one write: agg answers both (RFC 1928 allows pipelining them).
            try socket.sendAll([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF)])
            var replies = [UInt8](repeating: 0, count: 2 + 10)
            try socket.receiveExactly(&replies)
            guard replies[0] == 5, replies[1] == 0, replies[3] == 0 else {
                throw Failure(description: "SOCKS5 refused: \(replies)")
            }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    func sendAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, 0) }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    func receiveExactly(_ buffer: inout [UInt8]) throws {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, $0.count - offset, 0) }
            guard n > 0 else {
                throw Failure(description: n == 0 ? "closed by peer" : String(cString: strerror(errno)))
            }
            offset += n
        }
    }

    func close() { _ = Glibc.close(fd) }
}
