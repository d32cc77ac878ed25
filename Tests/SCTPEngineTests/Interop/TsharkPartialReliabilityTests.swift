import Foundation
import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Has tshark read a live PR-SCTP exchange between two of our endpoints: the handshake announcing
/// Forward-TSN-Supported, an ordered message abandoned and skipped, and the FORWARD-TSN that names its stream. Every
/// packet must dissect cleanly, and tshark must read the FORWARD-TSN's fields as we meant them.
extension Interop {
    @Suite("Interop: tshark reads our PR-SCTP")
    struct TsharkPartialReliabilityTests {
        static let udpPort: UInt16 = 19898

        @Test func tsharkDecodesForwardTSNAndItsParameterCleanly() throws {
            let tshark = try Tshark.locate()
            var datagrams: [SCTPDatagram] = []
            let l = Lockstep()
            func carry(_ from: SCTPEndpoint, to: SCTPEndpoint, dropping: Bool = false) {
                let sent = l.take(from)
                datagrams += sent
                if !dropping { l.deliver(sent, to: to) }
            }
            let id = l.connect()
            for _ in 0..<4 {
                carry(l.client, to: l.server)
                carry(l.server, to: l.client)
            }
            try l.client.send(
                ByteBuffer(string: "abandoned"), on: id, stream: StreamID(3), reliability: .limitedRetransmissions(0),
                now: l.now)
            carry(l.client, to: l.server, dropping: true)
            l.advanceToNextDeadline()
            carry(l.client, to: l.server)
            carry(l.server, to: l.client)
            let forwards = datagrams.flatMap { (try? SCTPPacket.decode($0.payload).chunks) ?? [] }.compactMap {
                if case .forwardTSN(let f) = $0 { f } else { nil }
            }
            try #require(forwards.count == 1)

            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "agg-prsctp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let path = directory.appendingPathComponent("prsctp.pcap").path
            let writer = try PcapWriter(path: path)
            for (index, datagram) in datagrams.enumerated() {
                var copy = datagram
                copy.source.port = datagram.source.port == 9899 ? Self.udpPort : datagram.source.port
                copy.destination.port = datagram.destination.port == 9899 ? Self.udpPort : datagram.destination.port
                writer.write(copy, at: SCTPTime(nanoseconds: Int64(index) * 1_000_000))
            }
            try writer.close()

            let arguments = ["-r", path, "-o", Tshark.crc32cPreference, "-d", "udp.port==\(Self.udpPort),sctp"]
            let malformed = try tshark.run(arguments + ["-Y", "_ws.malformed || _ws.expert.severity >= error"])
            #expect(malformed.isEmpty, "tshark found problems:\n\(malformed)")
            let checksums = try tshark.run(arguments + ["-T", "fields", "-e", "sctp.checksum.status"])
            // sctp.checksum.status: 1 is good, 0 bad, 2 unverified.
            let statuses = checksums.split(separator: "\n")
            #expect(statuses.count == datagrams.count && statuses.allSatisfy { $0 == "1" }, "checksums: \(checksums)")
            let parameter = try tshark.run(arguments + ["-Y", "sctp.parameter_type == 0xc000"])
            #expect(parameter.split(separator: "\n").count == 2, "INIT and INIT-ACK carry Forward-TSN-Supported")
            let fields = try tshark.run(
                arguments + [
                    "-Y", "sctp.chunk_type == 192", "-T", "fields", "-E", "separator=|", "-e", "sctp.forward_tsn_tsn",
                    "-e", "sctp.forward_tsn_sid", "-e", "sctp.forward_tsn_ssn",
                ])
            let expected = "\(forwards[0].newCumulativeTSN.rawValue)|3|0"
            #expect(fields.trimmingCharacters(in: .whitespacesAndNewlines) == expected)
        }
    }
}
