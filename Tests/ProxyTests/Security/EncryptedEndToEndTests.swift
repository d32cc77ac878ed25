import AggEgress
import AggIngress
import AggProtocol
import AggTransport
import Foundation
import Logging
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import Proxy

/// The aggclient and aggserver services over real loopback UDP (two paths): by default every datagram goes through
/// the encryption layer, `plaintext` with `allowPlaintext` is plain RFC 6951, a plaintext client gets nothing from
/// a server that does not allow it, and removing a key stops its session.
@Suite("Encrypted end to end", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct EncryptedEndToEndTests {
    static let blobSize = 2 * 1024 * 1024

    /// A server and a client service with the given protection flags, and the origin of EndToEndSupport.
    final class Pair {
        let group: MultiThreadedEventLoopGroup
        let server: AggServerService
        let client: AggClientService
        let origin: any Channel
        let udpPort: UInt16
        let proxyPort: Int

        /// A capture on loopback sees a segmented write as one packet: the tshark tests turn offload off.
        init(plaintext: Bool, allowPlaintext: Bool, udpPort: UInt16? = nil, segmentationOffload: Bool = true) throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
            self.group = group
            let loops = (0..<3).map { _ in group.next() }
            origin = try OriginServer.bind(on: loops[2])
            self.udpPort = try udpPort ?? EndToEndHarness.freeUDPPort()
            let listen = [
                SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: self.udpPort),
                SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 2), port: self.udpPort),
            ]
            var serverConfiguration = AggServerService.Configuration(
                listen: listen, keys: [EndToEndHarness.key],
                egress: EgressConnector(policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!])))
            serverConfiguration.allowPlaintext = allowPlaintext
            serverConfiguration.segmentationOffload = segmentationOffload
            server = try AggServerService.start(
                configuration: serverConfiguration, on: loops[0], logger: EndToEndHarness.logger("aggserver")
            ).wait()
            var clientConfiguration = AggClientService.Configuration(
                servers: listen, paths: [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)],
                key: EndToEndHarness.key)
            clientConfiguration.plaintext = plaintext
            clientConfiguration.segmentationOffload = segmentationOffload
            clientConfiguration.serverWait = .seconds(3)
            client = try AggClientService.start(
                configuration: clientConfiguration, on: loops[1], logger: EndToEndHarness.logger("aggclient")
            ).wait()
            proxyPort = try client.listen(host: "127.0.0.1", port: 0, protocols: .all).wait().localAddress!.port!
        }

        func serverStatistics() throws -> (DatagramSecurityStatistics, SCTPDriver.Statistics) {
            try server.eventLoop.submit { (self.server.driver.securityStatistics, self.server.driver.statistics) }
                .wait()
        }

        func clientStatistics() throws -> DatagramSecurityStatistics {
            try client.eventLoop.submit { self.client.driver.securityStatistics }.wait()
        }

        /// Downloads a blob through SOCKS5h; whether it arrived intact.
        func download(size: Int = blobSize, maxTime: Int = 60) throws -> Bool {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agg-crypto-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let output = directory.appendingPathComponent("blob")
            let origin = "http://127.0.0.1:\(self.origin.localAddress!.port!)/blob/\(size)"
            let process = try Curl(arguments: ["-x", "socks5h://127.0.0.1:\(proxyPort)", origin], maxTime: maxTime)
                .start(output: output)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { return false }
            let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
            return try EndToEndHarness.sha256(file: output) == expected
        }

        func shutdown() {
            try? client.stop().wait()
            try? server.stop().wait()
            try? origin.close().wait()
            try? group.syncShutdownGracefully()
        }
    }

    @Test func encryptedByDefaultNothingOnTheWireIsSCTP() throws {
        let port = try EndToEndHarness.freeUDPPort()
        var started: Pair?
        defer { started?.shutdown() }
        // tshark, reading a live capture of the loopback traffic as SCTP, finds no packet with a valid CRC32c.
        let frames = try LoopbackCapture.sctpFrames(port: port) {
            let pair = try Pair(plaintext: false, allowPlaintext: false, udpPort: port, segmentationOffload: false)
            started = pair
            try pair.client.whenReady().wait()
            #expect(try pair.download())
        }
        #expect(frames.count > 1000)
        #expect(frames.allSatisfy { $0.checksumStatus != "1" })
        let pair = started!
        // Sealed datagrams use the room plaintext ones had, and no more.
        // The server's figures first: the client's, read after, can only have grown.
        let (server, driver) = try pair.serverStatistics()
        let client = try pair.clientStatistics()
        let largest = max(client.largestSealed, server.largestSealed)
        // Once the association is up its packets are sized for version 5's 17 bytes, not the 33 left at start, and
        // filled to the byte (the last chunk's padding goes too): the largest datagram is the limit.
        #expect(largest == SCTPConfiguration().maxPacketSize, "\(largest)")
        #expect(client.handshakesCompleted == 1)
        // The client sends one SACK per read batch (up to 64 DATA packets), so a 2 MiB download gives the server
        // a few dozen sealed datagrams to open, each one the client sealed.
        #expect(server.opened > 10 && server.opened <= client.sealed, "\(server) \(client)")
        #expect(server.sealed > 1000)
        #expect(server.plaintextAccepted == 0 && server.dropped == 0)
        // Every datagram the server sent was sealed or a HELLO-ACK: none left as plaintext SCTP.
        #expect(driver.datagramsSent == server.sealed + server.handshakesSent)
    }

    @Test func plaintextModeIsSCTPThatTsharkDecodes() throws {
        let port = try EndToEndHarness.freeUDPPort()
        var started: Pair?
        defer { started?.shutdown() }
        // tshark decodes every captured datagram as SCTP with a good CRC32c: INIT through DATA and SACK.
        let frames = try LoopbackCapture.sctpFrames(port: port) {
            let pair = try Pair(plaintext: true, allowPlaintext: true, udpPort: port, segmentationOffload: false)
            started = pair
            try pair.client.whenReady().wait()
            #expect(try pair.download())
        }
        #expect(frames.count > 1000)
        #expect(frames.allSatisfy { $0.checksumStatus == "1" })
        let chunkTypes = Set(frames.flatMap(\.chunkTypes))
        #expect(chunkTypes.isSuperset(of: ["0", "1", "2", "10", "11"]))  // DATA, INIT, INIT-ACK, COOKIE-ECHO, -ACK
        #expect(chunkTypes.contains("16") || chunkTypes.contains("3"))  // NR-SACK once negotiated, or SACK
        let pair = started!
        let (server, driver) = try pair.serverStatistics()
        // The client acknowledges once per read batch (27c458d), so a download brings the server far fewer SACKs than
        // DATA packets; every one of them was read as plaintext, none opened or sealed.
        #expect(server.plaintextAccepted > 10 && server.opened == 0 && server.sealed == 0, "\(server)")
        #expect(driver.datagramsReceived == server.plaintextAccepted)
        #expect(try pair.clientStatistics() == DatagramSecurityStatistics())
    }

    @Test func aPlaintextClientGetsNothingFromAServerThatDoesNotAllowIt() throws {
        let pair = try Pair(plaintext: true, allowPlaintext: false)
        defer { pair.shutdown() }
        Thread.sleep(forTimeInterval: 2)  // INIT and its retransmissions.
        let (security, driver) = try pair.serverStatistics()
        #expect(security.droppedPlaintext > 0)
        #expect(driver.datagramsSent == 0)
        #expect(try !pair.download(size: 1000, maxTime: 5))
    }

    @Test func removingTheKeyStopsTheSessionAtOnce() throws {
        let pair = try Pair(plaintext: false, allowPlaintext: false)
        defer { pair.shutdown() }
        try pair.client.whenReady().wait()
        #expect(try pair.download(size: 100_000))
        try pair.server.reloadKeys([]).wait()
        // The association ended with the key, and its sessions with it: the client's next handshake names a key
        // the server no longer holds.
        #expect(try pair.server.eventLoop.submit { pair.server.driver.endpoint.associationIDs.isEmpty }.wait())
        #expect(try !pair.download(size: 100_000, maxTime: 3))
        let (security, _) = try pair.serverStatistics()
        #expect(security.droppedUnknownKey + security.droppedUnknownSession > 0)
    }
}

/// A live tshark capture of loopback UDP on one port, read back as SCTP: what a passive observer of the paths sees.
enum LoopbackCapture {
    struct Frame {
        /// tshark's `sctp.checksum.status`: "1" for a good CRC32c, "0" for a bad one.
        var checksumStatus: String
        var chunkTypes: [String]
    }

    static func sctpFrames(port: UInt16, during body: () throws -> Void) throws -> [Frame] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("agg-capture-\(UUID()).pcapng").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let capture = Process()
        capture.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        // Output goes nowhere (a full pipe would block tshark); the autostop bounds a capture nobody stops.
        capture.arguments = ["-i", "lo", "-f", "udp port \(port)", "-w", file, "-a", "duration:120", "-q"]
        capture.standardOutput = FileHandle.nullDevice
        capture.standardError = FileHandle.nullDevice
        try capture.run()
        defer { if capture.isRunning { kill(capture.processIdentifier, SIGKILL) } }
        // dumpcap writes the file header once it captures.
        let start = Date()
        while (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int ?? 0) ?? 0 == 0,
            Date().timeIntervalSince(start) < 10
        {
            Thread.sleep(forTimeInterval: 0.1)
        }
        Thread.sleep(forTimeInterval: 0.5)
        try body()
        Thread.sleep(forTimeInterval: 0.5)
        capture.interrupt()
        let stop = Date()
        while capture.isRunning, Date().timeIntervalSince(stop) < 10 { Thread.sleep(forTimeInterval: 0.1) }

        let decode = Process()
        decode.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        decode.arguments = [
            "-n", "-r", file, "-d", "udp.port==\(port),sctp", "-o", "sctp.checksum:CRC-32C", "-T", "fields",
            "-E", "separator=;", "-e", "sctp.checksum.status", "-e", "sctp.chunk_type",
        ]
        let output = Pipe()
        decode.standardOutput = output
        decode.standardError = FileHandle.nullDevice
        try decode.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        decode.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            let fields = line.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
            return Frame(
                checksumStatus: fields.first ?? "",
                chunkTypes: fields.count > 1 ? fields[1].split(separator: ",").map(String.init) : [])
        }
    }
}
