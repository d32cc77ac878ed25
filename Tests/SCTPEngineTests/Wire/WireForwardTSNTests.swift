import NIOCore
import Testing

@testable import SCTPEngine

/// FORWARD-TSN (RFC 3758 §3.2) and Forward-TSN-Supported (§3.1): byte-exact vectors, round trips, and malformed
/// bodies rejected with an error.
@Suite struct WireForwardTSNTests {
    static func chunkBytes(_ chunk: Chunk) -> [UInt8] {
        var buffer = ByteBuffer()
        chunk.encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    @Test func forwardTSNEncodesAsTheRFCLaysItOut() throws {
        let chunk = Chunk.forwardTSN(
            ForwardTSNChunk(
                newCumulativeTSN: TSN(0x0102_0304),
                streams: [.init(streamID: StreamID(5), ssn: SSN(0xFFFE)), .init(streamID: StreamID(9), ssn: SSN(1))]))
        let expected: [UInt8] = [
            192, 0, 0, 16,  // type, flags, length
            0x01, 0x02, 0x03, 0x04,  // New Cumulative TSN
            0x00, 0x05, 0xFF, 0xFE,  // stream 5, SSN 65534
            0x00, 0x09, 0x00, 0x01,  // stream 9, SSN 1
        ]
        #expect(Self.chunkBytes(chunk) == expected)
        let raw = try RawPacket.parse(
            SCTPPacket(
                header: CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: VerificationTag(3)),
                chunks: [chunk]
            ).encode())
        #expect(try Chunk(decoding: raw.chunks[0]) == chunk)
    }

    @Test func forwardTSNWithoutStreamsIsEightBytes() throws {
        let chunk = Chunk.forwardTSN(ForwardTSNChunk(newCumulativeTSN: TSN(.max)))
        #expect(Self.chunkBytes(chunk) == [192, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func forwardTSNSupportedIsFourBytes() throws {
        var buffer = ByteBuffer()
        Parameter.forwardTSNSupported.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0xC0, 0x00, 0x00, 0x04])
        let initChunk = InitChunk(
            initiateTag: VerificationTag(1), advertisedReceiverWindowCredit: 1000, outboundStreams: 1,
            inboundStreams: 1, initialTSN: TSN(1), parameters: [.forwardTSNSupported])
        let packet = SCTPPacket(
            header: CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: .zero),
            chunks: [.initiation(initChunk)])
        #expect(try SCTPPacket.decode(packet.encode()).chunks == [.initiation(initChunk)])
    }

    @Test(arguments: [
        [UInt8](),  // no New Cumulative TSN
        [0, 0, 1],  // truncated New Cumulative TSN
        [0, 0, 0, 1, 0, 2],  // half a stream entry
        [0, 0, 0, 1, 0, 2, 0, 3, 0],  // one byte too many
    ])
    func malformedForwardTSNBodyIsRejected(value: [UInt8]) {
        #expect(throws: WireError.self) {
            _ = try ForwardTSNChunk(flags: 0, value: ByteBuffer(bytes: value))
        }
    }
}
