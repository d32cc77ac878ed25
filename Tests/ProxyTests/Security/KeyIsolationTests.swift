import AggEgress
import AggIngress
import AggProtocol
import AggTransport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import Proxy
@testable import SCTPEngine

#if canImport(Glibc)
    import Glibc
#endif

/// One key holder against another client of the same server (docs/SECURITY.md, "Clients are kept apart"). The
/// intruder holds a valid key of its own, runs the real datagram handshake, and is handed the victim's real
/// verification tags; from the victim's own IP address it sends what would abort, inject into, probe or move the
/// victim's association. None of it may reach the victim: its download arrives intact and its association keeps
/// its id, its tags and its paths.
@Suite(
    "Clients are kept apart", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct KeyIsolationTests {
    static let victimKey = EndToEndHarness.key
    static let intruderKey = PreSharedKey(name: "intruder", key: (0..<32).map { UInt8($0) &* 29 &+ 101 })

    @Test func aKeyHolderWithAnotherClientsTagsCannotTouchItsAssociation() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        defer { try? group.syncShutdownGracefully() }
        let loops = (0..<3).map { _ in group.next() }
        let requests = RequestLog()
        let origin = try OriginServer.bind(on: loops[2], log: requests)
        defer { try? origin.close().wait() }
        let udpPort = try EndToEndHarness.freeUDPPort()
        let listen = [
            SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: udpPort),
            SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 2), port: udpPort),
        ]
        let server = try AggServerService.start(
            configuration: AggServerService.Configuration(
                listen: listen, keys: [Self.victimKey, Self.intruderKey],
                egress: EgressConnector(policy: EgressPolicy(allowed: [CIDR("127.0.0.0/8")!]))),
            on: loops[0], logger: EndToEndHarness.logger("aggserver")
        ).wait()
        defer { _ = try? server.stop().wait() }
        let client = try AggClientService.start(
            configuration: AggClientService.Configuration(
                servers: listen, paths: [SCTPIPAddress(v4: 127, 0, 0, 1), SCTPIPAddress(v4: 127, 0, 0, 2)],
                key: Self.victimKey),
            on: loops[1], logger: EndToEndHarness.logger("aggclient")
        ).wait()
        defer { _ = try? client.stop().wait() }
        let proxyPort = try client.listen(host: "127.0.0.1", port: 0, protocols: .all).wait().localAddress!.port!
        try client.whenReady().wait()
        // Both of the victim's paths are up before the attack starts (the second joins with an ASCONF).
        var before = try Self.victim(of: server)
        for _ in 0..<50 where before.paths.count < 2 {
            Thread.sleep(forTimeInterval: 0.1)
            before = try Self.victim(of: server)
        }
        #expect(before.paths.count == 2)

        // The victim downloads 24 MiB at 8 MiB/s while the intruder attacks.
        let size = 24 * 1024 * 1024
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agg-isolation-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("blob")
        let download = try Curl(
            arguments: [
                "-x", "socks5h://127.0.0.1:\(proxyPort)", "--limit-rate", "8M",
                "http://127.0.0.1:\(origin.localAddress!.port!)/blob/\(size)",
            ], maxTime: 60
        ).start(output: output)
        Thread.sleep(forTimeInterval: 0.5)

        let intruder = try Intruder(key: Self.intruderKey, server: listen[0])
        let victim = try Self.victim(of: server)
        let originRequests = requests.all.count
        let header = { (tag: VerificationTag) in
            CommonHeader(
                sourcePort: victim.peerPort, destinationPort: AggServerService.sctpPort, verificationTag: tag,
                checksum: 0)
        }
        // A stream OPEN to the origin, as the victim's next TSN: were it delivered, the origin would see a request.
        let open = StreamMessage.open(
            StreamTarget(host: .ip(SCTPIPAddress(v4: 127, 0, 0, 1)), port: UInt16(origin.localAddress!.port!)),
            initialCredit: 65536)
        var attacks: [(String, [Chunk], VerificationTag)] = [
            ("HEARTBEAT", [.heartbeat(HeartbeatChunk(info: ByteBuffer(bytes: [1, 2, 3, 4])))], victim.localTag),
            (
                "DATA with an OPEN",
                [
                    .data(
                        DataChunk(
                            tsn: victim.nextPeerTSN, streamID: StreamID(501), ssn: SSN(0), ppid: open.ppid,
                            isImmediate: true, userData: open.encode()))
                ], victim.localTag
            ),
            ("SHUTDOWN", [.shutdown(ShutdownChunk(cumulativeTSNAck: victim.cumulativeTSNAck))], victim.localTag),
            (
                "ASCONF from a new port",
                [
                    .asconf(
                        ASCONFChunk(
                            serial: ASCONFSerial(victim.nextPeerASCONFSerial),
                            addressParameter: .address(SCTPIPAddress(v4: 0, 0, 0, 0)),
                            parameters: [.setPrimaryAddress(correlationID: 1, address: SCTPIPAddress(v4: 0, 0, 0, 0))]))
                ], victim.localTag
            ),
        ]
        attacks.append(("ABORT", [.abort(AbortChunk(isTagReflected: false, causes: []))], victim.localTag))
        attacks.append(("ABORT with the T bit", [.abort(AbortChunk(isTagReflected: true, causes: []))], victim.peerTag))
        var answers: [String: [UInt8]] = [:]
        for (name, chunks, tag) in attacks {
            var builder = PacketBuilder(header: header(tag))
            for chunk in chunks { builder.add(chunk) }
            let replies = try intruder.send(builder.finish())
            // Opened datagrams: the AEAD covered them, and a packed one has no checksum to verify.
            answers[name] = try replies.map { try RawPacket.parse($0.payload, verifyChecksum: false) }.flatMap {
                $0.chunks.map(\.type)
            }
        }
        // An INIT from the victim's address and SCTP port would be a collision with its association, and the
        // INIT-ACK's cookie would carry its tags as tie-tags.
        var initBuilder = PacketBuilder(header: header(.zero))
        initBuilder.add(
            .initiation(
                InitChunk(
                    initiateTag: VerificationTag(0x1234_5678), advertisedReceiverWindowCredit: 65536,
                    outboundStreams: 10, inboundStreams: 10, initialTSN: TSN(1), parameters: [])))
        let initReplies = try intruder.send(initBuilder.finish())

        download.waitUntilExit()
        #expect(download.terminationStatus == 0)
        let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
        #expect(try EndToEndHarness.sha256(file: output) == expected, "the victim's download is intact")

        let after = try Self.victim(of: server)
        #expect(after.id == victim.id && after.localTag == victim.localTag && after.peerTag == victim.peerTag)
        // No path was added, removed or sent elsewhere. (Which of our addresses a path sends from may follow the
        // victim's own arrivals, `Association.followArrivalAddresses`, which only its datagrams reach.)
        let remotes = { (paths: [String]) in paths.map { $0.components(separatedBy: " via ")[0] } }
        #expect(remotes(after.paths) == remotes(before.paths), "no path of the victim moved: \(before.paths) \(after.paths)")
        #expect(after.streamsOpened == victim.streamsOpened, "no stream was injected")
        #expect(requests.all.count == originRequests, "the origin saw no injected request")
        #expect(try server.eventLoop.submit { server.driver.endpoint.associationIDs.count }.wait() == 1)
        // The intruder learnt nothing: every packet that carried the victim's tag was answered as an unknown tag
        // would be (ABORT with the T bit, or nothing), never with a HEARTBEAT-ACK or a SACK.
        for (name, chunks) in answers {
            #expect(chunks.allSatisfy { $0 == AbortChunk.type }, "\(name) was answered with \(chunks)")
        }
        let ack = initReplies.compactMap { try? RawPacket.parse($0.payload, verifyChecksum: false) }.first
        let cookieTies = try server.eventLoop.submit { () -> [VerificationTag]? in
            guard let ack, case .initiationAck(let chunk)? = try? Chunk(decoding: ack.chunks[0]),
                let cookie = chunk.parameters.compactMap({ parameter -> ByteBuffer? in
                    if case .stateCookie(let bytes) = parameter { return bytes } else { return nil }
                }).first,
                let decoded = try? StateCookie.decode(cookie, secret: server.driver.endpoint.cookieKey)
            else { return nil }
            return [decoded.localTieTag, decoded.peerTieTag]
        }.wait()
        #expect(cookieTies == [.zero, .zero], "an INIT-ACK for the intruder names none of the victim's tags")
    }

    /// What the server holds of the victim's (only) association.
    struct VictimState {
        var id: SCTPAssociationID
        var localTag: VerificationTag
        var peerTag: VerificationTag
        var peerPort: UInt16
        var paths: [String]
        var nextPeerTSN: TSN
        var cumulativeTSNAck: TSN
        var nextPeerASCONFSerial: UInt32
        var streamsOpened: Int
    }

    static func victim(of server: AggServerService) throws -> VictimState {
        try server.eventLoop.submit {
            let endpoint = server.driver.endpoint
            let association = endpoint.associations.values.min { $0.id.rawValue < $1.id.rawValue }!
            return VictimState(
                id: association.id, localTag: association.localTag, peerTag: association.peerTag,
                peerPort: association.peerPort,
                paths: association.paths.map { "\($0.remoteAddress) via \($0.localAddress.map { "\($0)" } ?? "-")" },
                nextPeerTSN: association.dataTracker.cumulativeTSN.next,
                cumulativeTSNAck: association.dataTracker.cumulativeTSN,
                nextPeerASCONFSerial: association.asconf.peerSerial.next.rawValue,
                streamsOpened: server.streamsOpened(on: association.id))
        }.wait()
    }
}

/// A key holder that speaks the datagram layer with its own key from a socket of its own on 127.0.0.1 (the victim's
/// IP), and sends SCTP packets it builds by hand. Each `send` returns what came back within a short wait, opened.
final class Intruder {
    let fd: Int32
    let local: SCTPSocketAddress
    let server: SCTPSocketAddress
    var security: ClientDatagramSecurity

    init(key: PreSharedKey, server: SCTPSocketAddress) throws {
        self.server = server
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = Self.socketAddress(SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        local = SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: UInt16(bigEndian: address.sin_port))
        security = ClientDatagramSecurity(key: key, random: SystemRandomNumberGenerator())
    }

    deinit { close(fd) }

    static func socketAddress(_ address: SCTPSocketAddress) -> sockaddr_in {
        var result = sockaddr_in()
        result.sin_family = sa_family_t(AF_INET)
        result.sin_port = address.port.bigEndian
        let bytes = address.ip.bytes
        result.sin_addr.s_addr =
            UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        return result
    }

    static func clock() -> SecurityClock {
        SecurityClock(monotonic: .now(), unixSeconds: Int64(time(nil)))
    }

    /// Seals `packet` with the intruder's own session (running the handshake first if needed), sends it and
    /// returns the SCTP packets that came back.
    /// Seals and sends `packet`, and returns the SCTP datagrams that came back, opened (a packed one without its
    /// ports and checksum, `portsElided` set: parse with `verifyChecksum: false`, the AEAD covered it).
    func send(_ packet: ByteBuffer) throws -> [SCTPDatagram] {
        let datagram = SCTPDatagram(source: local, destination: server, payload: packet)
        if let sealed = security.seal(datagram, clock: Self.clock()) { transmit(sealed.payload) }
        for _ in 0..<10 {
            while let out = security.pollTransmit() { transmit(out.payload) }
            guard let reply = receive() else { break }
            if let opened = security.open(
                SCTPDatagram(source: server, destination: local, payload: reply), clock: Self.clock())
            {
                var replies = [opened]
                while let more = receive() {
                    if let opened = security.open(
                        SCTPDatagram(source: server, destination: local, payload: more), clock: Self.clock())
                    {
                        replies.append(opened)
                    }
                }
                return replies
            }
        }
        return []
    }

    /// Seals and sends `packet` without waiting for anything back (a flood); the handshake must be done.
    func sendOnly(_ packet: ByteBuffer) {
        let datagram = SCTPDatagram(source: local, destination: server, payload: packet)
        if let sealed = security.seal(datagram, clock: Self.clock()) { transmit(sealed.payload) }
        while let out = security.pollTransmit() { transmit(out.payload) }
    }

    /// The SCTP packets that have arrived, without waiting.
    func pollReceived() -> [ByteBuffer] {
        var packets: [ByteBuffer] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { return packets }
            let datagram = SCTPDatagram(
                source: server, destination: local, payload: ByteBuffer(bytes: buffer[0..<count]))
            if let opened = security.open(datagram, clock: Self.clock()) { packets.append(opened.payload) }
        }
    }

    private func transmit(_ payload: ByteBuffer) {
        var address = Self.socketAddress(server)
        let bytes = Array(payload.readableBytesView)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                bytes.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, 0, target, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    private func receive() -> ByteBuffer? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return ByteBuffer(bytes: buffer[0..<count])
    }
}
