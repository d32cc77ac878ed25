import AggEgress
import AggIngress
import AggProtocol
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SCTPEngine

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// An aggserver and an aggclient service in this process over real loopback UDP (two paths: 127.0.0.1 and
/// 127.0.0.2), one client listener speaking every proxy protocol, and a local HTTP origin.
final class EndToEndHarness: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let server: AggServerService?
    let client: AggClientService
    let proxyPort: Int
    let origin: any Channel
    let originPort: Int
    let udpPort: UInt16
    /// Every request path the origin answered.
    let requests = RequestLog()

    /// Warnings and errors only: the services log every association at info.
    static func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        return logger
    }

    static let key = PreSharedKey(name: "e2e", key: (0..<32).map { UInt8($0) &* 37 &+ 11 })

    /// `egressAllow`: prefixes the server may reach (127.0.0.0/8 so the origin is reachable); `startServer: false`
    /// leaves the server down; `configureClient` changes the client's configuration (path names and policies).
    init(
        egressAllow: [CIDR] = [CIDR("127.0.0.0/8")!], startServer: Bool = true,
        serverWait: TimeAmount = .seconds(10), serverLimits: StreamLimits = StreamLimits(),
        configureClient: (inout AggClientService.Configuration) -> Void = { _ in }
    ) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        self.group = group
        let loops = (0..<3).map { _ in group.next() }
        origin = try OriginServer.bind(on: loops[2], log: requests)
        originPort = origin.localAddress!.port!
        // The port is free on 127.0.0.1 when asked; another test may take it (on either address) before the server
        // binds it: then the server starts on another.
        var started: (server: AggServerService?, port: UInt16)?
        for attempt in 1...5 where started == nil {
            let port = try Self.freeUDPPort()
            guard startServer else {
                started = (nil, port)
                break
            }
            let egress = EgressConnector(policy: EgressPolicy(allowed: egressAllow), connectTimeout: .seconds(5))
            var serverConfiguration = AggServerService.Configuration(
                listen: Self.serverAddresses(port: port), keys: [Self.key], egress: egress)
            serverConfiguration.limits = serverLimits
            do {
                let server = try AggServerService.start(
                    configuration: serverConfiguration, on: loops[0], logger: Self.logger("aggserver")
                ).wait()
                started = (server, port)
            } catch let error as IOError where error.errnoCode == EADDRINUSE && attempt < 5 {
                continue
            }
        }
        guard let started else { throw IOError(errnoCode: EADDRINUSE, reason: "no free UDP port for the server") }
        (server, udpPort) = started
        let listen = Self.serverAddresses(port: udpPort)
        var configuration = AggClientService.Configuration(
            servers: listen, paths: [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)],
            key: Self.key)
        configuration.serverWait = serverWait
        configureClient(&configuration)
        client = try AggClientService.start(
            configuration: configuration, on: loops[1], logger: Self.logger("aggclient")
        ).wait()
        proxyPort = try client.listen(host: "127.0.0.1", port: 0, protocols: .all).wait().localAddress!.port!
    }

    /// The server's two addresses, both on `port`.
    static func serverAddresses(port: UInt16) -> [SCTPSocketAddress] {
        [
            SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: port),
            SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 2), port: port),
        ]
    }

    func shutdown() {
        try? client.stop().wait()
        try? server?.stop().wait()
        try? origin.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// A UDP port free on 127.0.0.1 at the time of asking (both server addresses use it).
    static func freeUDPPort() throws -> UInt16 { freePort(type: Int32(SOCK_DGRAM.rawValue)) }

    /// A TCP port nothing listens on (bound, then closed).
    static func freeTCPPort() throws -> Int { Int(freePort(type: Int32(SOCK_STREAM.rawValue))) }

    /// Binds a socket of `type` to 127.0.0.1:0, reads the port the kernel chose, and closes it.
    private static func freePort(type: Int32) -> UInt16 {
        let fd = socket(AF_INET, type, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    // MARK: - Content

    /// The deterministic body `/blob/N` serves.
    static func blob(_ size: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(size)
        var state: UInt64 = UInt64(size) &* 0x9E37_79B9_7F4A_7C15 | 1
        var remaining = size
        while remaining >= 8 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            buffer.writeInteger(state)
            remaining -= 8
        }
        for _ in 0..<remaining { buffer.writeInteger(UInt8(truncatingIfNeeded: state)) }
        return buffer
    }

    static func sha256(_ bytes: some Sequence<UInt8>) -> String {
        SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined()
    }

    static func sha256(file: URL) throws -> String {
        sha256(try Data(contentsOf: file))
    }
}

// MARK: - The origin

/// A tiny HTTP origin: `GET /blob/N` sends N deterministic bytes, `GET /stream` sends until the client goes away
/// (respecting backpressure), `POST /upload` answers with the body's length and SHA-256.
enum OriginServer {
    static func bind(on loop: any EventLoop, log: RequestLog = RequestLog()) throws -> any Channel {
        try ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(OriginHandler(log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    final class OriginHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private var head: HTTPRequestHead?
        private var hasher = SHA256()
        private var bodyLength = 0
        private var streaming = false
        private var streamChunk = ByteBuffer(repeating: 0x61, count: 64 * 1024)
        private let log: RequestLog

        init(log: RequestLog) {
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                hasher = SHA256()
                bodyLength = 0
            case .body(let bytes):
                bodyLength += bytes.readableBytes
                bytes.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            case .end:
                guard let head else { return }
                log.append(head.uri)
                respond(context: context, head: head)
            }
        }

        private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
            var headers = HTTPHeaders()
            headers.add(name: "Connection", value: "close")
            if head.uri == "/stream" {
                streaming = true
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil)
                pump(context: context)
                return
            }
            let body: ByteBuffer
            if head.method == .POST {
                let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                body = ByteBuffer(string: "\(bodyLength) \(digest)")
            } else if head.uri.hasPrefix("/blob/"), let size = Int(head.uri.dropFirst(6)) {
                body = EndToEndHarness.blob(size)
            } else if let (type, content) = BrowserPage.resource(head.uri) {
                headers.add(name: "Content-Type", value: type)
                headers.add(name: "Cache-Control", value: "no-store")
                body = ByteBuffer(string: content)
            } else {
                body = ByteBuffer(string: "not found")
            }
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
        }

        /// Writes while the channel is writable; resumes on writability.
        private func pump(context: ChannelHandlerContext) {
            while streaming, context.channel.isWritable, context.channel.isActive {
                context.write(wrapOutboundOut(.body(.byteBuffer(streamChunk))), promise: nil)
                context.flush()
            }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if streaming { pump(context: context) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            streaming = false
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            streaming = false
            context.close(promise: nil)
        }
    }
}

// MARK: - Clients

/// Runs curl without any proxy environment; `--max-time` bounds every run.
struct Curl {
    var arguments: [String]
    var maxTime = 60

    func start(output: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-S", "--max-time", String(maxTime), "--noproxy", ""] + self.arguments
        if let output { arguments += ["-o", output.path] }
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"] {
            environment[name] = nil
        }
        process.environment = environment
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs to the end; returns the exit status and standard output.
    func run() throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-S", "--max-time", String(maxTime), "--noproxy", ""] + arguments
        var environment = ProcessInfo.processInfo.environment
        for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"] {
            environment[name] = nil
        }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A blocking TCP client for raw SOCKS5 exchanges.
final class RawSocket {
    let fd: Int32

    init(port: Int, receiveTimeout seconds: Int = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw IOError(errnoCode: errno, reason: "connect")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads exactly `count` bytes; nil on EOF, error or timeout.
    func receive(_ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            guard n > 0 else { return nil }
            got += n
        }
        return bytes
    }

    /// Reads until EOF or error; returns the byte count and whether it ended with an error (reset) or timeout.
    func drain() -> (bytes: Int, error: Int32?) {
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                total += n
            } else if n == 0 {
                return (total, nil)
            } else {
                return (total, errno)
            }
        }
    }

    /// A SOCKS5 CONNECT to a domain name (no authentication); returns the REP byte, nil if the proxy closed.
    func socks5Connect(host: String, port: UInt16) -> UInt8? {
        send([5, 1, 0])
        guard receive(2) == [5, 0] else { return nil }
        let name = Array(host.utf8)
        send([5, 1, 0, 3, UInt8(name.count)] + name + [UInt8(port >> 8), UInt8(port & 0xFF)])
        guard let reply = receive(4) else { return nil }
        if reply[1] == 0 { _ = receive(6) }  // IPv4 bound address and port
        return reply[1]
    }
}
