import NIOCore
import Testing

@testable import SCTPEngine

/// CRC32c vectors from RFC 3720 Appendix B.4 and the usual check value, and the byte order in the common header.
@Suite struct WireCRC32cTests {
    @Test func checkValueOf123456789() {
        #expect(CRC32c.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func rfc3720Vectors() {
        #expect(CRC32c.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32c.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32c.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32c.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func byteBufferAndRangeAgreeWithArray() {
        var rng = SCTPRandom(seed: 7)
        for _ in 0..<200 {
            let bytes = rng.bytes(Int.random(in: 0...300, using: &rng))
            let buffer = ByteBuffer(bytes: [1, 2, 3] + bytes)
            #expect(CRC32c.checksum(buffer, offset: 3, length: bytes.count) == CRC32c.checksum(bytes))
            #expect(CRC32c.checksum(ByteBuffer(bytes: bytes)) == CRC32c.checksum(bytes))
        }
        #expect(CRC32c.checksum(ByteBuffer(bytes: [1, 2]), offset: 1, length: 2) == nil)
    }

    @Test func packetChecksumTreatsTheFieldAsZero() {
        var rng = SCTPRandom(seed: 8)
        for _ in 0..<100 {
            var bytes = rng.bytes(Int.random(in: 12...200, using: &rng))
            let withGarbage = CRC32c.packetChecksum(ByteBuffer(bytes: bytes))
            bytes.replaceSubrange(8..<12, with: [0, 0, 0, 0])
            #expect(withGarbage == CRC32c.checksum(bytes))
        }
    }

    /// RFC 9260 Appendix A: the CRC goes on the wire least significant byte first (as in RFC 3720 B.4, where the
    /// 32 zero bytes give the bytes AA 36 91 8A).
    @Test func checksumIsStoredLittleEndian() throws {
        var builder = PacketBuilder(header: CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: .zero))
        builder.add(.cookieAck(CookieAckChunk()))
        let packet = builder.finish()
        var zeroed = Array(packet.readableBytesView)
        let field = Array(zeroed[8..<12])
        zeroed.replaceSubrange(8..<12, with: [0, 0, 0, 0])
        let crc = CRC32c.checksum(zeroed)
        #expect(field == [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)])
        let parsed = try RawPacket.parse(packet)
        #expect(parsed.header.checksum == crc)
    }
}
