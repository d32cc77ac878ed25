import Foundation
import NIOCore
import SCTPEngine
import SCTPSimulation
import Testing

/// A classic pcap file around `frames`, built by hand so the reader is tested against bytes it did not write.
func handBuiltPcap(
    linkType: UInt32, bigEndian: Bool = false, nanoseconds: Bool = false,
    frames: [(seconds: UInt32, fraction: UInt32, bytes: [UInt8])]
) -> [UInt8] {
    var buffer = ByteBuffer()
    let order: Endianness = bigEndian ? .big : .little
    buffer.writeInteger(nanoseconds ? UInt32(0xA1B2_3C4D) : 0xA1B2_C3D4, endianness: order)
    buffer.writeInteger(UInt16(2), endianness: order)
    buffer.writeInteger(UInt16(4), endianness: order)
    buffer.writeInteger(UInt64(0), endianness: order)
    buffer.writeInteger(UInt32(65535), endianness: order)
    buffer.writeInteger(linkType, endianness: order)
    for frame in frames {
        buffer.writeInteger(frame.seconds, endianness: order)
        buffer.writeInteger(frame.fraction, endianness: order)
        buffer.writeInteger(UInt32(frame.bytes.count), endianness: order)
        buffer.writeInteger(UInt32(frame.bytes.count), endianness: order)
        buffer.writeBytes(frame.bytes)
    }
    return Array(buffer.readableBytesView)
}

/// The IP packet PcapWriter makes of `datagram`: its only record, after the 24-byte file and 16-byte record headers.
func ipPacket(of datagram: SCTPDatagram) -> [UInt8] {
    let writer = PcapWriter()
    writer.write(datagram, at: .zero)
    return Array(writer.bytes.dropFirst(40))
}

/// RFC 1071: the one's-complement sum of `bytes` folds to 0xFFFF when the checksum inside them is right.
func checksumFolds(_ bytes: [UInt8]) -> Bool {
    var sum: UInt32 = 0
    var index = 0
    while index < bytes.count {
        sum += UInt32(bytes[index]) << 8 | UInt32(index + 1 < bytes.count ? bytes[index + 1] : 0)
        index += 2
    }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return sum == 0xFFFF
}

let v6Client = SCTPSocketAddress(ip: SCTPIPAddress("2001:db8::2")!, port: 5001)
let v6Server = SCTPSocketAddress(ip: SCTPIPAddress("2001:db8::1")!, port: 9899)

@Suite struct SimulationPcapTests {
    @Test func writerOutputReadsBackByteExactly() throws {
        var random = SCTPRandom(seed: 99)
        let writer = PcapWriter()
        var written: [(SCTPTime, SCTPDatagram)] = []
        for index in 0..<200 {
            let (source, destination) = index % 3 == 0 ? (v6Client, v6Server) : (client, server)
            let payload = ByteBuffer(bytes: random.bytes(Int(random.next() % 1400)))
            let datagram =
                index % 2 == 0
                ? SCTPDatagram(source: source, destination: destination, payload: payload)
                : SCTPDatagram(source: destination, destination: source, payload: payload)
            let time = SCTPTime(nanoseconds: Int64(index) * 1_234_567_891)
            writer.write(datagram, at: time)
            written.append((time, datagram))
        }
        #expect(writer.packetCount == 200)
        let reader = try PcapReader(bytes: writer.bytes)
        #expect(reader.linkType == .raw)
        #expect(reader.skippedCount == 0)
        #expect(reader.records.count == written.count)
        for (record, (time, datagram)) in zip(reader.records, written) {
            #expect(record.timestamp == time)
            #expect(record.datagram.source == datagram.source)
            #expect(record.datagram.destination == datagram.destination)
            #expect(record.datagram.payload == datagram.payload)
            #expect(record.originalLength == PacketHeadersSize.of(datagram))
        }
    }

    @Test func writerProducesValidIPv4AndUDPHeaders() throws {
        let payload: [UInt8] = [1, 2, 3, 4, 5]
        let datagram = SCTPDatagram(source: client, destination: server, payload: ByteBuffer(bytes: payload))
        let writer = PcapWriter()
        writer.write(datagram, at: SCTPTime(nanoseconds: 1_500_000_007))
        let bytes = writer.bytes
        // File header: nanosecond magic, version 2.4, zone 0, sigfigs 0, snaplen, LINKTYPE_RAW; little-endian.
        #expect(Array(bytes[0..<8]) == [0x4D, 0x3C, 0xB2, 0xA1, 2, 0, 4, 0])
        #expect(Array(bytes[20..<24]) == [101, 0, 0, 0])
        // Record header: 1 s, 500000007 ns, 33 bytes captured of 33.
        #expect(Array(bytes[24..<40]) == [1, 0, 0, 0, 0x07, 0x65, 0xCD, 0x1D, 33, 0, 0, 0, 33, 0, 0, 0])
        let ip = Array(bytes[40...])
        #expect(ip.count == 33)
        #expect(Array(ip[0..<4]) == [0x45, 0x00, 0x00, 33])
        #expect(Array(ip[8..<10]) == [64, 17])
        #expect(Array(ip[12..<20]) == [10, 0, 0, 2, 198, 51, 100, 1])
        #expect(checksumFolds(Array(ip[0..<20])))
        #expect(Array(ip[20..<26]) == [0x13, 0x88, 0x26, 0xAB, 0, 13])
        #expect(Array(ip[28...]) == payload)
        // UDP checksum over the pseudo-header (addresses, protocol, length) and the datagram.
        let pseudo = Array(ip[12..<20]) + [0, 17, 0, 13]
        #expect(checksumFolds(pseudo + Array(ip[20...])))
    }

    @Test func writerProducesValidIPv6Headers() throws {
        let datagram = SCTPDatagram(source: v6Client, destination: v6Server, payload: ByteBuffer(bytes: [9, 8, 7]))
        let ip = ipPacket(of: datagram)
        #expect(ip.count == 51)
        #expect(Array(ip[0..<8]) == [0x60, 0, 0, 0, 0, 11, 17, 64])
        #expect(Array(ip[8..<24]) == v6Client.ip.bytes)
        #expect(Array(ip[24..<40]) == v6Server.ip.bytes)
        let pseudo = Array(ip[8..<40]) + [0, 0, 0, 11, 0, 0, 0, 17]
        #expect(checksumFolds(pseudo + Array(ip[40...])))
        #expect(ip[46] != 0 || ip[47] != 0)
    }

    @Test func readerUnwrapsEveryLinkType() throws {
        let v4 = SCTPDatagram(source: client, destination: server, payload: ByteBuffer(bytes: Array(0..<40)))
        let v6 = SCTPDatagram(source: v6Server, destination: v6Client, payload: ByteBuffer(bytes: [0xAA]))
        let ip4 = ipPacket(of: v4)
        let ip6 = ipPacket(of: v6)
        let macs: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        let arp = macs + [0x08, 0x06] + [UInt8](repeating: 0, count: 28)
        let cases: [(UInt32, [[UInt8]])] = [
            // Ethernet: a VLAN-tagged IPv4 frame with trailing padding, IPv6, and ARP to skip.
            (1, [macs + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + ip4 + [0, 0, 0, 0], macs + [0x86, 0xDD] + ip6, arp]),
            // Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
            (
                113,
                [
                    [0, 0, 0, 1, 0, 6] + [UInt8](repeating: 7, count: 8) + [0x08, 0x00] + ip4,
                    [0, 4, 3, 4, 0, 6] + [UInt8](repeating: 7, count: 8) + [0x86, 0xDD] + ip6,
                ]
            ),
            // Linux cooked v2: protocol, reserved, interface index, ARPHRD, packet type, address length, address.
            (
                276,
                [
                    [0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6] + [UInt8](repeating: 7, count: 8) + ip4,
                    [0x86, 0xDD, 0, 0, 0, 0, 0, 1, 3, 4, 4, 0] + [UInt8](repeating: 0, count: 8) + ip6,
                ]
            ),
            // BSD loopback: the address family in the capturing host's byte order (little-endian here).
            (0, [[2, 0, 0, 0] + ip4, [30, 0, 0, 0] + ip6]),
            (101, [ip4, ip6]),
        ]
        for (linkType, frames) in cases {
            for bigEndian in [false, true] where linkType != 0 || !bigEndian {
                let file = handBuiltPcap(
                    linkType: linkType, bigEndian: bigEndian,
                    frames: frames.enumerated().map { (UInt32($0.offset), 250_000, $0.element) })
                let reader = try PcapReader(bytes: file)
                #expect(reader.linkType.rawValue == linkType)
                #expect(reader.records.count == 2, "link type \(linkType)")
                #expect(reader.skippedCount == frames.count - 2)
                guard reader.records.count == 2 else { continue }
                #expect(reader.records[0].datagram.source == v4.source)
                #expect(reader.records[0].datagram.destination == v4.destination)
                #expect(reader.records[0].datagram.payload == v4.payload)
                #expect(reader.records[1].datagram.source == v6.source)
                #expect(reader.records[1].datagram.payload == v6.payload)
                // Microsecond timestamps: 250000 µs is 0.25 s.
                #expect(reader.records[1].timestamp == SCTPTime(nanoseconds: 1_250_000_000))
            }
        }
    }

    @Test func readerRejectsWhatItCannotRead() throws {
        #expect(throws: PcapError.truncated(offset: 0)) { try PcapReader(bytes: [0x0A, 0x0D, 0x0D, 0x0A, 0, 0, 0]) }
        #expect(throws: PcapError.badMagic(0x0403_0201)) { try PcapReader(bytes: [1, 2, 3, 4, 0, 0, 0, 0]) }
        #expect(throws: PcapError.unsupportedLinkType(147)) {
            try PcapReader(bytes: handBuiltPcap(linkType: 147, frames: []))
        }
        let whole = handBuiltPcap(
            linkType: 101,
            frames: [
                (
                    0, 0,
                    ipPacket(
                        of: SCTPDatagram(
                            source: client, destination: server, payload: ByteBuffer(bytes: [1, 2, 3])))
                )
            ])
        #expect(throws: PcapError.truncated(offset: 24)) { try PcapReader(bytes: Array(whole.dropLast())) }
        // A fragment is skipped, not misread.
        var fragment = ipPacket(of: SCTPDatagram(source: client, destination: server, payload: ByteBuffer(bytes: [1])))
        fragment[6] = 0x20
        let reader = try PcapReader(bytes: handBuiltPcap(linkType: 101, frames: [(0, 0, fragment)]))
        #expect(reader.records.isEmpty && reader.skippedCount == 1)
    }

    @Test(arguments: [false, true])
    func readerReadsPcapng(bigEndian: Bool) throws {
        let datagram = SCTPDatagram(source: client, destination: server, payload: ByteBuffer(bytes: [1, 2, 3, 4]))
        let ethernet: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00] + ipPacket(of: datagram)
        let order: Endianness = bigEndian ? .big : .little
        var file = ByteBuffer()
        func block(_ type: UInt32, _ body: (inout ByteBuffer) -> Void) {
            var content = ByteBuffer()
            body(&content)
            while content.readableBytes % 4 != 0 { content.writeInteger(UInt8(0)) }
            file.writeInteger(type, endianness: order)
            file.writeInteger(UInt32(content.readableBytes + 12), endianness: order)
            file.writeImmutableBuffer(content)
            file.writeInteger(UInt32(content.readableBytes + 12), endianness: order)
        }
        block(0x0A0D_0D0A) {
            $0.writeInteger(UInt32(0x1A2B_3C4D), endianness: order)
            $0.writeInteger(UInt16(1), endianness: order)
            $0.writeInteger(UInt16(0), endianness: order)
            $0.writeInteger(UInt64.max, endianness: order)
        }
        // Interface 0: Ethernet, microseconds by default. Interface 1: raw IP, if_tsresol 2^-10 s.
        block(1) {
            $0.writeInteger(UInt16(1), endianness: order)
            $0.writeInteger(UInt16(0), endianness: order)
            $0.writeInteger(UInt32(0), endianness: order)
        }
        block(1) {
            $0.writeInteger(UInt16(101), endianness: order)
            $0.writeInteger(UInt16(0), endianness: order)
            $0.writeInteger(UInt32(0), endianness: order)
            $0.writeInteger(UInt16(9), endianness: order)
            $0.writeInteger(UInt16(1), endianness: order)
            $0.writeBytes([0x8A, 0, 0, 0])
            $0.writeInteger(UInt32(0), endianness: order)
        }
        for (interface, timestamp, frame) in [
            (UInt32(0), UInt64(2_500_000), ethernet),
            (1, 3 * 1024 + 512, ipPacket(of: datagram)),
        ] {
            block(6) {
                $0.writeInteger(interface, endianness: order)
                $0.writeInteger(UInt32(timestamp >> 32), endianness: order)
                $0.writeInteger(UInt32(timestamp & 0xFFFF_FFFF), endianness: order)
                $0.writeInteger(UInt32(frame.count), endianness: order)
                $0.writeInteger(UInt32(frame.count), endianness: order)
                $0.writeBytes(frame)
            }
            // An interface statistics block in between, to be skipped.
            block(5) { $0.writeInteger(interface, endianness: order) }
        }
        let reader = try PcapReader(bytes: Array(file.readableBytesView))
        #expect(reader.linkType == .ethernet)
        #expect(
            reader.records.map(\.timestamp) == [
                SCTPTime(nanoseconds: 2_500_000_000),
                SCTPTime(nanoseconds: 3_500_000_000),
            ])
        #expect(reader.records.allSatisfy { $0.datagram.source == client && $0.datagram.payload == datagram.payload })
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/editcap")))
    func readerAgreesWithEditcapConversions() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agg-sim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("original.pcap").path
        let writer = try PcapWriter(path: original)
        var random = SCTPRandom(seed: 5)
        for index in 0..<50 {
            let (source, destination) = index % 2 == 0 ? (client, server) : (v6Server, v6Client)
            writer.write(
                SCTPDatagram(
                    source: source, destination: destination,
                    payload: ByteBuffer(bytes: random.bytes(Int(random.next() % 1000)))),
                at: SCTPTime(nanoseconds: Int64(index) * 987_654_321))
        }
        try writer.close()
        let expected = try PcapReader(path: original).records
        #expect(expected.count == 50)
        // pcapng keeps nanoseconds; classic microsecond pcap rounds them down.
        for (format, microseconds) in [("pcapng", false), ("pcap", true), ("nsecpcap", false)] {
            let converted = directory.appendingPathComponent("converted.\(format)").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/editcap")
            process.arguments = ["-F", format, original, converted]
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            try #require(process.terminationStatus == 0, "editcap \(process.arguments ?? [])")
            let records = try PcapReader(path: converted).records
            #expect(records.count == expected.count)
            for (record, reference) in zip(records, expected) {
                let time =
                    microseconds ? reference.timestamp.nanoseconds / 1000 * 1000 : reference.timestamp.nanoseconds
                #expect(record.timestamp.nanoseconds == time)
                #expect(record.datagram.source == reference.datagram.source)
                #expect(record.datagram.destination == reference.datagram.destination)
                #expect(record.datagram.payload == reference.datagram.payload)
            }
        }
    }

    @Test func networkCapturesDeliveriesAndDropsSeparately() throws {
        let (network, _, sink, link) = pacedPair(
            seed: 2, name: "capture-drops", LinkConfiguration(delay: .milliseconds(1), lossProbability: 0.3),
            size: 200, interval: .milliseconds(1), count: 500)
        network.capture = PcapWriter()
        network.dropCapture = PcapWriter()
        try network.run(for: .seconds(1))
        try network.flushCaptures()
        let delivered = try PcapReader(bytes: try #require(network.capture).bytes).records
        let dropped = try PcapReader(bytes: try #require(network.dropCapture).bytes).records
        #expect(delivered.count == sink.arrivals.count)
        #expect(dropped.count == link.counters.droppedByLoss)
        #expect(delivered.count + dropped.count == 500)
        #expect(delivered.map(\.timestamp) == sink.arrivals.map(\.time))
        #expect(
            Set(delivered.map { payloadSequence($0.datagram.payload) }).isDisjoint(
                with: dropped.map { payloadSequence($0.datagram.payload) }))
    }

    @Test func snapLengthTruncatesCapturedBytes() throws {
        let writer = PcapWriter(snapLength: 64)
        writer.write(
            SCTPDatagram(source: client, destination: server, payload: ByteBuffer(repeating: 1, count: 500)),
            at: .zero)
        let bytes = writer.bytes
        #expect(bytes.count == 24 + 16 + 64)
        #expect(Array(bytes[32..<40]) == [64, 0, 0, 0, 0x10, 0x02, 0, 0])
        // A truncated UDP datagram is not handed out as if it were whole.
        let reader = try PcapReader(bytes: bytes)
        #expect(reader.records.isEmpty && reader.skippedCount == 1)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark")))
    func tsharkDecodesTheNetworkCapture() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("agg-sim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("capture.pcap").path

        let scenario = NATScenario(.symmetric, name: "tshark")
        scenario.network.capture = try PcapWriter(path: path)
        for sequence in 0..<20 { try scenario.clientSends(to: server, sequence: UInt64(sequence)) }
        let v6Sink = SinkHost()
        scenario.network.attach(v6Sink, at: v6Server.ip)
        scenario.network.addLink(from: v6Client.ip, to: v6Server.ip)
        for sequence in 0..<5 {
            scenario.network.send(
                SCTPDatagram(
                    source: v6Client, destination: v6Server,
                    payload: sequencedPayload(UInt64(sequence), size: 300)))
        }
        try scenario.network.run(for: .seconds(1))
        try scenario.network.capture?.close()
        // 20 out, 20 echoes back, 5 over IPv6.
        #expect(scenario.network.capture?.packetCount == 45)
        #expect(try PcapReader(path: path).records.count == 45)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        process.arguments = [
            "-n", "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields",
            "-E", "separator=,", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport", "-e", "udp.dstport",
            "-e", "udp.length", "-e", "ip.checksum.status", "-e", "udp.checksum.status",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            $0.split(
                separator: ",", omittingEmptySubsequences: false
            ).map(String.init)
        }
        #expect(lines.count == 45)
        guard lines.count == 45 else { return }
        // The IPv6 packets on the ideal link arrive first, then the NATed client's, translated.
        #expect(lines.prefix(5).allSatisfy { $0[1] == "2001:db8::2" && $0[4] == "308" })
        let firstV4 = lines[5]
        #expect(firstV4[0] == "203.0.113.1")
        #expect(firstV4[3] == "9899")
        #expect(firstV4[4] == "108")
        #expect(lines.filter { $0[0] == "198.51.100.1" }.count == 20)
        // Good checksums: tshark reports status 1 for every IPv4 header and every UDP datagram.
        #expect(lines.allSatisfy { $0[6] == "1" })
        #expect(lines.filter { !$0[0].isEmpty }.allSatisfy { $0[5] == "1" })
    }
}

/// The IP packet size of a datagram, as the writer records it.
enum PacketHeadersSize {
    static func of(_ datagram: SCTPDatagram) -> Int {
        (datagram.destination.ip.isIPv4 ? 28 : 48) + datagram.payload.readableBytes
    }
}
