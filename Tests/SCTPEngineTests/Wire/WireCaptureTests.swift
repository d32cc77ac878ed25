import NIOCore
import Testing

@testable import SCTPEngine

/// Packets captured from a real Diameter-over-SCTP exchange (as published with dpkt's SCTP tests): their CRC32c
/// must verify, which pins the checksum's byte order (RFC 9260 Appendix A), and they must re-encode byte for byte.
@Suite struct WireCaptureTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return result
    }

    static let initPacket = bytes("0fe40f1c000000009f78a70401000014bb7b0f9c0000fa00000a000abb7b0f9c")
    static let sackPacket = bytes("0f1c0fe4bb7b0f9c7994912903000010bb7b0f9c0000fa0000000000")
    static let cookieAckPacket = bytes("0f1c0fe4bb7b0f9c2142fa610b000004")

    @Test func capturedInit() throws {
        let packet = try SCTPPacket.decode(ByteBuffer(bytes: Self.initPacket))
        #expect(packet.header.sourcePort == 4068 && packet.header.destinationPort == 3868)
        #expect(packet.header.verificationTag == .zero)
        #expect(packet.header.checksum == 0x04A7_789F)
        #expect(
            packet.chunks == [
                .initiation(
                    InitChunk(
                        initiateTag: VerificationTag(0xBB7B_0F9C), advertisedReceiverWindowCredit: 64000,
                        outboundStreams: 10, inboundStreams: 10, initialTSN: TSN(0xBB7B_0F9C)))
            ])
        #expect(Array(packet.encode().readableBytesView) == Self.initPacket)
    }

    @Test func capturedSack() throws {
        let packet = try SCTPPacket.decode(ByteBuffer(bytes: Self.sackPacket))
        #expect(packet.header.verificationTag == VerificationTag(0xBB7B_0F9C))
        #expect(
            packet.chunks == [
                .sack(SackChunk(cumulativeTSNAck: TSN(0xBB7B_0F9C), advertisedReceiverWindowCredit: 64000))
            ])
        #expect(Array(packet.encode().readableBytesView) == Self.sackPacket)
    }

    @Test func capturedCookieAck() throws {
        let packet = try SCTPPacket.decode(ByteBuffer(bytes: Self.cookieAckPacket))
        #expect(packet.chunks == [.cookieAck(CookieAckChunk())])
        #expect(Array(packet.encode().readableBytesView) == Self.cookieAckPacket)
    }
}
