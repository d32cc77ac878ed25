import AggEgress
import AggIngress
import AggProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization
import Testing

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// Many clients against one server (issue 18): each aggclient service has its own key and its own association over
/// loopback UDP (encrypted), and every one's download must arrive whole and unchanged while all run at once.
@Suite("ManyClients", .serialized)
struct ManyClientsTests {
    static let clientCount = 64

    @Test func sixtyFourClientsEachDownloadIntact() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 4)
        defer { try? group.syncShutdownGracefully() }
        let loops = (0..<4).map { _ in group.next() }
        let origin = try OriginServer.bind(on: loops[1])
        defer { try? origin.close().wait() }
        let originPort = UInt16(origin.localAddress!.port!)

        let keys = (0..<Self.clientCount).map { index in
            PreSharedKey(
                name: "many-\(index)", key: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index &* 7 &+ 1) })
        }
        let listen = [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: try EndToEndHarness.freeUDPPort())]
        let egress = EgressConnector(policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]), connectTimeout: .seconds(5))
        let server = try AggServerService.start(
            configuration: AggServerService.Configuration(listen: listen, keys: keys, egress: egress), on: loops[0],
            logger: EndToEndHarness.logger("aggserver")
        ).wait()
        defer { try? server.stop().wait() }

        var clients: [AggClientService] = []
        var proxyPorts: [Int] = []
        defer {
            let stops = clients.map { $0.stop() }
            for stop in stops { try? stop.wait() }
        }
        for (index, key) in keys.enumerated() {
            let configuration = AggClientService.Configuration(
                servers: listen, paths: [SCTPIPAddress(v4: 127, 0, 0, 1)], key: key)
            let client = try AggClientService.start(
                configuration: configuration, on: loops[2 + index % 2], logger: EndToEndHarness.logger("aggclient")
            ).wait()
            clients.append(client)
            proxyPorts.append(
                try client.listen(host: "127.0.0.1", port: 0, protocols: .socks5).wait().localAddress!.port!)
        }
        for client in clients { try client.whenReady().wait() }
        #expect(try server.eventLoop.submit { server.associationsAuthenticated }.wait() == Self.clientCount)

        // Every size differs, so every body differs (the origin's blob is seeded by its size).
        let sizes = (0..<Self.clientCount).map { 96 * 1024 + $0 * 1021 }
        let bodies = Mutex<[Int: [UInt8]]>([:])
        let finished = DispatchGroup()
        for index in 0..<Self.clientCount {
            finished.enter()
            let port = proxyPorts[index]
            let size = sizes[index]
            Thread.detachNewThread {
                defer { finished.leave() }
                guard let body = Self.download(size: size, proxyPort: port, originPort: originPort) else { return }
                bodies.withLock { $0[index] = body }
            }
        }
        #expect(finished.wait(timeout: .now() + 60) == .success, "downloads still running after 60 s")

        let received = bodies.withLock { $0 }
        var intact = 0
        for (index, size) in sizes.enumerated() {
            let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
            let body = received[index]
            #expect(body?.count == size, "client \(index): \(body?.count ?? -1) of \(size) bytes")
            if let body, EndToEndHarness.sha256(body) == expected { intact += 1 }
        }
        #expect(intact == Self.clientCount)
    }

    /// `GET /blob/SIZE` from the origin through the SOCKS5 listener at `proxyPort`; the body, nil on any failure.
    private static func download(size: Int, proxyPort: Int, originPort: UInt16) -> [UInt8]? {
        guard let socket = try? RawSocket(port: proxyPort) else { return nil }
        socket.send([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, UInt8(originPort >> 8), UInt8(originPort & 0xFF)])
        guard let reply = socket.receive(12), reply[1] == 0, reply[3] == 0 else { return nil }
        socket.send(Array("GET /blob/\(size) HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n".utf8))
        var response: [UInt8] = []
        while let chunk = socket.receiveSome() { response += chunk }
        // The head is short: look for its blank line in the first few KiB only.
        let separator: [UInt8] = [13, 10, 13, 10]
        guard
            let end = (0..<max(0, min(response.count - 3, 4096))).first(where: {
                response[$0..<$0 + 4].elementsEqual(separator)
            })
        else { return nil }
        return Array(response[(end + 4)...])
    }
}

extension RawSocket {
    /// What one read returns; nil at EOF, on an error or on timeout.
    fileprivate func receiveSome() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buffer[0..<n]) : nil
    }
}
