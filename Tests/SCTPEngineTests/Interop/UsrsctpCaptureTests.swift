import NIOCore
import SCTPEngine
import SCTPSimulation
import Testing

/// Decodes and re-encodes a real association captured from usrsctp (`scripts/capture-usrsctp.sh`): the echo server
/// and client of Debian's libusrsctp-examples over UDP encapsulation on loopback, with a handshake, echoed lines,
/// heartbeats on the second (IPv6) path and a graceful shutdown.
///
/// usrsctp advertises FORWARD-TSN, AUTH, ASCONF, ASCONF-ACK and RE-CONFIG in Supported Extensions and asks for
/// ASCONF and ASCONF-ACK to be authenticated, but this association never sends AUTH, ASCONF, RE-CONFIG or
/// FORWARD-TSN: those chunks only appear when an address changes, streams are reset or PR-SCTP drops data.
extension Interop {
    @Suite("Interop: usrsctp capture")
    struct UsrsctpCaptureTests {
        /// The chunk types this capture holds, no more and no less, so a re-capture that changes them is noticed.
        static let expectedChunkTypes: Set<UInt8> = [
            DataChunk.type, InitChunk.type, InitAckChunk.type, SackChunk.type, HeartbeatChunk.type,
            HeartbeatAckChunk.type, ShutdownChunk.type, ShutdownAckChunk.type, CookieEchoChunk.type,
            CookieAckChunk.type, ShutdownCompleteChunk.type,
        ]

        let records: [PcapRecord]

        init() throws {
            let reader = try Interop.capture("usrsctp-echo")
            records = reader.records
        }

        @Test func captureHoldsOnlySCTPOverUDP() throws {
            #expect(records.count == 27)
            for record in records {
                #expect([9899, 9900].contains(record.datagram.source.port))
                #expect([9899, 9900].contains(record.datagram.destination.port))
            }
        }

        @Test func everyPacketParsesWithVerifiedChecksumAndEveryChunkDecodes() throws {
            for (index, record) in records.enumerated() {
                let raw = try RawPacket.parse(record.datagram.payload, verifyChecksum: true)
                for chunk in raw.chunks {
                    let decoded = try Chunk(decoding: chunk)
                    if case .unknown = decoded {
                        Issue.record("packet \(index + 1): \(Interop.chunkName(chunk.type)) decoded as unknown")
                    }
                    #expect(decoded.type == chunk.type)
                    #expect(decoded.flags == chunk.flags)
                }
            }
        }

        @Test func expectedChunkTypesAppear() throws {
            var seen: Set<UInt8> = []
            for record in records {
                for chunk in try RawPacket.parse(record.datagram.payload).chunks { seen.insert(chunk.type) }
            }
            let missing = Self.expectedChunkTypes.subtracting(seen).map(Interop.chunkName).sorted()
            let unexpected = seen.subtracting(Self.expectedChunkTypes).map(Interop.chunkName).sorted()
            #expect(missing.isEmpty, "chunk types missing from the capture: \(missing)")
            #expect(unexpected.isEmpty, "chunk types not expected in the capture: \(unexpected)")
        }

        @Test func everyPacketReencodesByteForByte() throws {
            for (index, record) in records.enumerated() {
                let captured = record.datagram.payload
                let packet = try SCTPPacket.decode(captured)
                let encoded = packet.encode()
                #expect(
                    encoded == captured,
                    """
                    packet \(index + 1) (\(packet.chunks.map { Interop.chunkName($0.type) })) re-encodes differently
                    captured: \(Interop.hex(captured))
                    encoded:  \(Interop.hex(encoded))
                    """)
            }
        }

        @Test func everyChunkReencodesToItsCapturedBytes() throws {
            for (index, record) in records.enumerated() {
                let raw = try RawPacket.parse(record.datagram.payload)
                for chunk in raw.chunks {
                    let decoded = try Chunk(decoding: chunk)
                    var encoded = ByteBuffer()
                    decoded.encode(into: &encoded)
                    let paddedLength = (chunk.length + 3) & ~3
                    let captured = raw.buffer.getSlice(at: raw.buffer.readerIndex + chunk.offset, length: paddedLength)
                    #expect(decoded.encodedLength == paddedLength)
                    #expect(
                        encoded == captured,
                        "packet \(index + 1), \(Interop.chunkName(chunk.type)) at offset \(chunk.offset) re-encodes differently"
                    )
                }
            }
        }

        /// The INIT carries every parameter kind usrsctp offers; each must decode to its own case, none to `.unknown`.
        @Test func initParametersDecodeToTheirOwnCases() throws {
            let initChunk = try records.lazy.compactMap { record -> InitChunk? in
                let packet = try SCTPPacket.decode(record.datagram.payload)
                guard case .initiation(let chunk)? = packet.chunks.first else { return nil }
                return chunk
            }.first
            let chunk = try #require(initChunk)
            let types = chunk.parameters.map(\.type)
            #expect(types == [0x8000, 0xC000, 0x8008, 0x8002, 0x8004, 0x8003, 12, 6, 5])
            for parameter in chunk.parameters {
                if case .unknown(let type, _) = parameter { Issue.record("INIT parameter \(type) decoded as unknown") }
            }
            #expect(chunk.parameters.contains(.supportedExtensions([192, 15, 193, 128, 130])))
            #expect(chunk.parameters.contains(.hmacAlgorithm([1])))
            #expect(chunk.parameters.contains(.chunkList([128, 193])))
            #expect(chunk.parameters.contains(.supportedAddressTypes([5, 6])))
            #expect(chunk.parameters.contains(.ipv4Address(.v4(0x7F00_0001))))
            #expect(chunk.parameters.contains(.ipv6Address(.v6(0, 1))))
        }
    }
}
