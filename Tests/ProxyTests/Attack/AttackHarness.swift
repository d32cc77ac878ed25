import AggEgress
import AggIngress
import AggProtocol
import AggTransport
import Foundation
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// The real pair on loopback for attack tests: one aggserver, two aggclient services (two associations, so "another
/// client" exists), each client with a listener, and the HTTP origin of the end-to-end tests. Limits are the test's.
final class AttackHarness: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let server: AggServerService
    let clients: [AggClientService]
    let proxyPorts: [Int]
    let origin: any Channel
    let originPort: Int
    let udpPort: UInt16

    init(
        serverLimits: StreamLimits = StreamLimits(), clientLimits: StreamLimits = StreamLimits(),
        ingress: ProxyIngressConfiguration = ProxyIngressConfiguration(), allowPlaintext: Bool = false,
        serverSCTP: (inout SCTPConfiguration) -> Void = { _ in }
    ) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 4)
        self.group = group
        let loops = (0..<4).map { _ in group.next() }
        origin = try OriginServer.bind(on: loops[3])
        originPort = origin.localAddress!.port!
        udpPort = try EndToEndHarness.freeUDPPort()
        let listen = [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: udpPort)]
        let egress = EgressConnector(
            policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]), connectTimeout: .seconds(5))
        var serverConfiguration = AggServerService.Configuration(
            listen: listen, keys: [EndToEndHarness.key], egress: egress)
        serverConfiguration.limits = serverLimits
        serverConfiguration.allowPlaintext = allowPlaintext
        serverSCTP(&serverConfiguration.sctp)
        server = try AggServerService.start(
            configuration: serverConfiguration, on: loops[0], logger: EndToEndHarness.logger("aggserver")
        ).wait()
        var clients: [AggClientService] = []
        var ports: [Int] = []
        for index in 0..<2 {
            var configuration = AggClientService.Configuration(
                servers: listen, paths: [SCTPIPAddress(v4: 127, 0, 0, 1)], key: EndToEndHarness.key)
            configuration.limits = clientLimits
            let client = try AggClientService.start(
                configuration: configuration, on: loops[1 + index], logger: EndToEndHarness.logger("aggclient")
            ).wait()
            clients.append(client)
            ports.append(
                try client.listen(host: "127.0.0.1", port: 0, protocols: .all, ingress: ingress).wait().localAddress!
                    .port!)
            try client.whenReady().wait()
        }
        self.clients = clients
        proxyPorts = ports
    }

    func shutdown() {
        for client in clients { try? client.stop().wait() }
        try? server.stop().wait()
        try? origin.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Associations the server's endpoint holds (established or not).
    func serverAssociationCount() throws -> Int {
        try server.eventLoop.submit { self.server.driver.endpoint.associationIDs.count }.wait()
    }

    /// Datagrams the server's encryption layer dropped because they were plain SCTP.
    func serverDroppedPlaintext() throws -> Int {
        try server.eventLoop.submit { self.server.driver.securityStatistics.droppedPlaintext }.wait()
    }

    /// The client's buffered DATA bytes (received from the server, not yet taken by local sockets).
    func clientBufferedBytes(_ index: Int = 0) throws -> Int {
        let client = clients[index]
        return try client.eventLoop.submit { client.bufferedBytes }.wait()
    }

    /// The server's buffered DATA bytes, summed over associations.
    func serverBufferedBytes() throws -> Int {
        try server.eventLoop.submit { self.server.bufferedBytes.values.reduce(0, +) }.wait()
    }

    /// Downloads `/blob/size` through client `index` with curl (socks5h); returns bytes per second.
    func download(size: Int, client index: Int = 0, maxTime: Int = 120) throws -> Double {
        let start = ContinuousClock.now
        let (status, output) = try Curl(
            arguments: [
                "-o", "/dev/null", "-w", "%{size_download}", "-x", "socks5h://127.0.0.1:\(proxyPorts[index])",
                "http://127.0.0.1:\(originPort)/blob/\(size)",
            ],
            maxTime: maxTime
        ).run()
        let elapsed = ContinuousClock.now - start
        guard status == 0, output == String(size) else {
            throw AttackFailure("download of \(size) bytes failed: curl status \(status), got \(output)")
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(size) / max(seconds, 0.001)
    }

    /// Polls `condition` every 50 ms until it holds or `seconds` pass; returns whether it held.
    static func wait(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try condition()
    }
}

/// A test step that could not run as planned.
struct AttackFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A TCP client with a tiny receive buffer that connects and then does what the attack needs: send bytes slowly,
/// or never read.
final class AttackSocket {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; `receiveBuffer` sets SO_RCVBUF first (the kernel doubles it).
    init?(port: Int, receiveBuffer: Int32? = nil) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
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
        if result != 0 {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    /// Sends without blocking; false once the peer has closed or reset the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) } > 0
    }

    /// Sends what the socket takes now without blocking, from `offset` of `bytes`; the new offset (unchanged once the
    /// peer has closed or reset the connection).
    func send(_ bytes: [UInt8], from offset: Int) -> Int {
        let sent = bytes.withUnsafeBytes {
            Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
        return offset + max(sent, 0)
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

    /// Whether the proxy has closed the connection: non-blocking reads (which discard what was buffered) reach
    /// EOF or a reset.
    var isClosedByPeer: Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { continue }
            return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
        }
    }

    /// SOCKS5 CONNECT to 127.0.0.1:`port` without authentication; the reply code, nil if the proxy closed.
    func socks5Connect(port: UInt16) -> UInt8? {
        guard send([5, 1, 0]), receive(2) == [5, 0] else { return nil }
        guard send([5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF)]) else { return nil }
        guard let reply = receive(10) else { return nil }
        return reply[1]
    }
}
