import AggIngress
import AggProtocol
import Foundation
import NIOCore
import SCTPEngine
import Testing

@testable import AggObservability
@testable import Proxy

/// aggclient and aggserver services in one process over real loopback UDP (two paths), driven by curl and raw
/// SOCKS5 clients against a local HTTP origin.
@Suite("EndToEnd", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct EndToEndTests {
    static let blobSize = 20 * 1024 * 1024

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("agg-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func curlDownloadsThroughEveryProxyKind() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let expected = EndToEndHarness.sha256(EndToEndHarness.blob(Self.blobSize).readableBytesView)
        let url = "http://127.0.0.1:\(harness.originPort)/blob/\(Self.blobSize)"
        let proxy = "127.0.0.1:\(harness.proxyPort)"
        let variants: [(String, [String])] = [
            ("socks5h", ["-x", "socks5h://\(proxy)"]),
            ("socks5", ["-x", "socks5://\(proxy)"]),
            ("socks4a", ["-x", "socks4a://\(proxy)"]),
            ("http", ["-x", "http://\(proxy)"]),
            ("http-connect", ["-p", "-x", "http://\(proxy)"]),
        ]
        for (name, arguments) in variants {
            let output = directory.appendingPathComponent(name)
            let process = try Curl(arguments: arguments + [url]).start(output: output)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(name)")
            #expect(try EndToEndHarness.sha256(file: output) == expected, "\(name)")
        }
    }

    @Test func fiftyConcurrentTransfersComplete() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let proxy = "127.0.0.1:\(harness.proxyPort)"
        let sizes = (0..<60).map { 256 * 1024 + $0 * 7919 }
        var processes: [(Process, URL, Int)] = []
        defer { for (process, _, _) in processes where process.isRunning { process.terminate() } }
        for (index, size) in sizes.enumerated() {
            let scheme = ["socks5h", "http", "socks4a"][index % 3]
            let output = directory.appendingPathComponent("out-\(index)")
            let process = try Curl(
                arguments: ["-x", "\(scheme)://\(proxy)", "http://127.0.0.1:\(harness.originPort)/blob/\(size)"]
            ).start(output: output)
            processes.append((process, output, size))
        }
        for (process, output, size) in processes {
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
            #expect((try? EndToEndHarness.sha256(file: output)) == expected, "size \(size)")
        }
    }

    @Test func uploadArrivesIntact() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let body = EndToEndHarness.blob(12 * 1024 * 1024 + 17)
        let file = directory.appendingPathComponent("upload")
        try Data(body.readableBytesView).write(to: file)
        let expected = "\(body.readableBytes) \(EndToEndHarness.sha256(body.readableBytesView))"
        for proxy in ["socks5h://127.0.0.1:\(harness.proxyPort)", "http://127.0.0.1:\(harness.proxyPort)"] {
            let (status, output) = try Curl(arguments: [
                "-x", proxy, "-H", "Expect:", "--data-binary", "@\(file.path)",
                "http://127.0.0.1:\(harness.originPort)/upload",
            ]).run()
            #expect(status == 0, "\(proxy)")
            #expect(output == expected, "\(proxy)")
        }
    }

    @Test func failuresMapToSOCKSRepliesAndHTTPStatuses() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let closedPort = UInt16(try EndToEndHarness.freeTCPPort())
        // Refused port: SOCKS5 0x05, HTTP 502.
        #expect(try RawSocket(port: harness.proxyPort).socks5Connect(host: "127.0.0.1", port: closedPort) == 0x05)
        let refused = try Curl(arguments: [
            "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:\(harness.proxyPort)",
            "http://127.0.0.1:\(closedPort)/",
        ]).run()
        #expect(refused.output == "502")
        // A name that does not resolve: SOCKS5 0x04.
        #expect(try RawSocket(port: harness.proxyPort).socks5Connect(host: "nonexistent.invalid", port: 80) == 0x04)
    }

    /// `early-reply = "known"` (the default): a target that accepted a connection is answered at once the next
    /// time, before the server's OPEN-RESULT; when it then refuses, the application sees its connection reset, and
    /// the one after gets SOCKS5's proper reply again. Each open is counted once, by how it ended.
    @Test func aKnownTargetIsAnsweredEarlyAndItsLaterFailureIsAReset() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let listener = try ListeningSocket()
        // The kernel completes the connection from its backlog: success, and the target is known.
        let first = try RawSocket(port: harness.proxyPort)
        #expect(first.socks5Connect(host: "127.0.0.1", port: listener.port) == 0x00)
        let port = listener.port
        listener.close()

        // Answered early with success; the server's failed connect then resets the connection.
        let second = try RawSocket(port: harness.proxyPort, receiveTimeout: 10)
        #expect(second.socks5Connect(host: "127.0.0.1", port: port) == 0x00)
        let drained = second.drain()
        #expect(drained.bytes == 0)
        #expect(drained.error == ECONNRESET)

        // The failure took the target off the known ones: the proper reply again.
        #expect(try RawSocket(port: harness.proxyPort).socks5Connect(host: "127.0.0.1", port: port) == 0x05)
        let metrics = harness.client.metrics
        let counted = try harness.client.eventLoop.submit { metrics.values.connections }.wait()
        #expect(counted == ["success": 1, "refused": 2])
    }

    /// `early-reply = "never"`: the same sequence keeps every answer the server's.
    @Test func neverAnswersEarly() throws {
        let harness = try EndToEndHarness(configureClient: { $0.earlyReply = .never })
        defer { harness.shutdown() }
        let listener = try ListeningSocket()
        let first = try RawSocket(port: harness.proxyPort)
        #expect(first.socks5Connect(host: "127.0.0.1", port: listener.port) == 0x00)
        let port = listener.port
        listener.close()
        #expect(try RawSocket(port: harness.proxyPort).socks5Connect(host: "127.0.0.1", port: port) == 0x05)
    }

    @Test func privateTargetsAreRefusedWithoutAnAllowList() throws {
        let harness = try EndToEndHarness(egressAllow: [])
        defer { harness.shutdown() }
        let port = UInt16(harness.originPort)
        #expect(try RawSocket(port: harness.proxyPort).socks5Connect(host: "127.0.0.1", port: port) == 0x02)
        let forbidden = try Curl(arguments: [
            "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:\(harness.proxyPort)",
            "http://127.0.0.1:\(port)/blob/10",
        ]).run()
        #expect(forbidden.output == "403")
    }

    /// Issue 12: SMTP's port and IPv4-mapped targets are refused through the real pair, with SOCKS5's "not allowed"
    /// and HTTP's 403, and the server counts each refusal by its defence.
    @Test func deniedPortsAndMappedTargetsAreRefusedAndCounted() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let port = UInt16(harness.originPort)
        #expect(try RawSocket(port: harness.proxyPort).socks5Connect(host: "127.0.0.1", port: 25) == 0x02)
        // An IPv6 literal (ATYP 4): the mapped form of the allowed origin.
        let mapped = try RawSocket(port: harness.proxyPort)
        mapped.send([5, 1, 0])
        #expect(mapped.receive(2) == [5, 0])
        mapped.send([5, 1, 0, 4] + SCTPIPAddress("::ffff:127.0.0.1")!.bytes + [UInt8(port >> 8), UInt8(port & 0xFF)])
        #expect(mapped.receive(2)?.last == 0x02)
        let forbidden = try Curl(arguments: [
            "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:\(harness.proxyPort)",
            "http://127.0.0.1:25/",
        ]).run()
        #expect(forbidden.output == "403")
        let server = try #require(harness.server)
        let refusals = try server.eventLoop.submit { server.metrics.refusals }.wait()
        #expect(refusals == [.egressPort: 2, .egressAddress: 1])
    }

    @Test func serverDownFailsInBoundedTime() throws {
        let harness = try EndToEndHarness(startServer: false, serverWait: .seconds(2))
        defer { harness.shutdown() }
        let start = ContinuousClock.now
        let reply = try RawSocket(port: harness.proxyPort).socks5Connect(host: "127.0.0.1", port: 80)
        let elapsed = ContinuousClock.now - start
        #expect(reply == ProxyFailure.serverUnavailable.socks5Reply)
        #expect(elapsed < .seconds(10), "failing took \(elapsed) with a 2 s wait")
        let http = try Curl(arguments: [
            "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://127.0.0.1:\(harness.proxyPort)",
            "http://127.0.0.1:80/",
        ]).run()
        #expect(http.output == "503")
    }

    @Test func associationLossResetsConnectionsAndTheClientReconnects() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let socket = try RawSocket(port: harness.proxyPort, receiveTimeout: 20)
        #expect(socket.socks5Connect(host: "127.0.0.1", port: UInt16(harness.originPort)) == 0)
        socket.send(Array("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(socket.receive(64 * 1024) != nil)  // The transfer is under way.
        try harness.server!.abortAssociations().wait()
        let start = ContinuousClock.now
        let (_, error) = socket.drain()
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(error != EAGAIN)  // Reset or closed, not a receive timeout.
        // The client reconnects and carries new connections again.
        try harness.client.whenReady().wait()
        let (status, output) = try Curl(arguments: [
            "-o", "/dev/null", "-w", "%{size_download}", "-x", "socks5h://127.0.0.1:\(harness.proxyPort)",
            "http://127.0.0.1:\(harness.originPort)/blob/1000",
        ]).run()
        #expect(status == 0)
        #expect(output == "1000")
    }

    @Test func aStalledReaderDoesNotStallOtherStreams() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A connection whose reader stops: the origin streams without end, nobody reads.
        let stalled = try RawSocket(port: harness.proxyPort)
        #expect(stalled.socks5Connect(host: "127.0.0.1", port: UInt16(harness.originPort)) == 0)
        stalled.send(Array("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        Thread.sleep(forTimeInterval: 1)
        // Another stream of the same association still moves 20 MB.
        let expected = EndToEndHarness.sha256(EndToEndHarness.blob(Self.blobSize).readableBytesView)
        let output = directory.appendingPathComponent("other")
        let start = ContinuousClock.now
        let process = try Curl(
            arguments: [
                "-x", "socks5h://127.0.0.1:\(harness.proxyPort)",
                "http://127.0.0.1:\(harness.originPort)/blob/\(Self.blobSize)",
            ],
            maxTime: 60
        ).start(output: output)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try EndToEndHarness.sha256(file: output) == expected)
        #expect(ContinuousClock.now - start < .seconds(30))
    }
}

/// A TCP socket listening on 127.0.0.1 that never accepts: the kernel completes connections from its backlog until
/// it is closed, after which connecting to its port is refused.
final class ListeningSocket {
    private var fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw IOError(errnoCode: errno, reason: "listen")
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    deinit { close() }
}
