import NIOCore
import Testing

@testable import SCTPEngine

/// Input that must be rejected with the right error, and seeded garbage that must never crash the decoder.
@Suite struct WireMalformedTests {
    /// A packet with a valid checksum around the given chunk bytes.
    static func packet(_ chunkBytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: VerificationTag(3)).encode(into: &buffer)
        buffer.writeBytes(chunkBytes)
        buffer.setInteger(CRC32c.packetChecksum(buffer), at: 8, endianness: .little)
        return buffer
    }

    static func decodeChunk(_ chunkBytes: [UInt8]) throws(WireError) -> Chunk {
        let raw = try RawPacket.parse(packet(chunkBytes))
        guard let first = raw.chunks.first else { throw .noChunks }
        return try Chunk(decoding: first)
    }

    @Test func truncatedHeader() {
        for length in 0..<12 {
            #expect(throws: WireError.packetTooShort(length)) {
                try RawPacket.parse(ByteBuffer(repeating: 0, count: length))
            }
        }
    }

    @Test func headerWithoutChunks() {
        #expect(throws: WireError.noChunks) { try RawPacket.parse(Self.packet([])) }
    }

    @Test func badChecksum() {
        var buffer = Self.packet([11, 0, 0, 4])
        let good = CRC32c.packetChecksum(buffer)
        buffer.setInteger(good ^ 1, at: 8, endianness: .little)
        #expect(throws: WireError.badChecksum(expected: good, actual: good ^ 1)) { try RawPacket.parse(buffer) }
        // A flipped payload bit is caught too.
        var flipped = Self.packet([11, 0, 0, 4])
        flipped.setInteger(UInt8(12), at: 12)
        #expect(throws: WireError.self) { try RawPacket.parse(flipped) }
        #expect(throws: Never.self) { try RawPacket.parse(flipped, verifyChecksum: false) }
    }

    @Test func chunkLengthBelowFour() {
        for length: UInt8 in 0..<4 {
            #expect(throws: WireError.chunkLengthTooSmall(type: 0, length: Int(length))) {
                try RawPacket.parse(Self.packet([0, 0, 0, length, 0, 0, 0, 0]))
            }
        }
    }

    @Test func chunkOverrunningThePacket() {
        #expect(throws: WireError.chunkExceedsPacket(type: 11, offset: 12, length: 8, available: 4)) {
            try RawPacket.parse(Self.packet([11, 0, 0, 8]))
        }
        #expect(throws: WireError.chunkExceedsPacket(type: 0, offset: 16, length: 0xFFFF, available: 8)) {
            try RawPacket.parse(Self.packet([11, 0, 0, 4, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4]))
        }
    }

    @Test func trailingBytesTooFewForAChunk() {
        #expect(throws: WireError.chunkHeaderTruncated(offset: 16, remaining: 2)) {
            try RawPacket.parse(Self.packet([11, 0, 0, 4, 1, 2]))
        }
    }

    /// RFC 9260 §3.2: the last chunk's padding may be missing; earlier chunks' padding is skipped.
    @Test func lastChunkPaddingMayBeAbsent() throws {
        let raw = try RawPacket.parse(Self.packet([10, 0, 0, 5, 0xAB, 0, 0, 0, 10, 0, 0, 6, 1, 2]))
        #expect(raw.chunks.count == 2)
        #expect(raw.chunks[0].value == ByteBuffer(bytes: [0xAB]))
        #expect(raw.chunks[1].offset == 20 && raw.chunks[1].value == ByteBuffer(bytes: [1, 2]))
    }

    @Test func shortFixedFields() {
        #expect(throws: WireError.self) { try Self.decodeChunk([0, 3, 0, 19, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: WireError.self) { try Self.decodeChunk([1, 0, 0, 8, 0, 0, 0, 1]) }
        #expect(throws: WireError.self) { try Self.decodeChunk([7, 0, 0, 6, 0, 1]) }
        #expect(throws: WireError.self) { try Self.decodeChunk([15, 0, 0, 6, 0, 1]) }
    }

    @Test func badParameterLengths() {
        let fixed: [UInt8] = [0, 0, 0, 1, 0, 0, 0x10, 0, 0, 1, 0, 1, 0, 0, 0, 1]
        // Parameter length 3.
        #expect(throws: WireError.parameterLengthTooSmall(type: 5, length: 3)) {
            try Self.decodeChunk([1, 0, 0, 24] + fixed + [0, 5, 0, 3])
        }
        // Parameter length 12 with 8 bytes present.
        #expect(throws: WireError.parameterExceedsChunk(type: 5, length: 12, available: 8)) {
            try Self.decodeChunk([1, 0, 0, 28] + fixed + [0, 5, 0, 12, 1, 2, 3, 4])
        }
        // IPv4 address of 5 bytes.
        #expect(throws: WireError.malformedParameter(type: 5, reason: "value is 5 bytes, expected 4")) {
            try Self.decodeChunk([1, 0, 0, 29] + fixed + [0, 5, 0, 9, 1, 2, 3, 4, 5])
        }
        // Two bytes where a parameter header should be.
        #expect(throws: WireError.parameterHeaderTruncated(remaining: 2)) {
            try Self.decodeChunk([1, 0, 0, 22] + fixed + [0, 5])
        }
        // Error cause length 2 inside an ABORT.
        #expect(throws: WireError.errorCauseLengthTooSmall(code: 1, length: 2)) {
            try Self.decodeChunk([6, 0, 0, 8, 0, 1, 0, 2])
        }
        // Missing Mandatory Parameter claiming more types than present.
        #expect(throws: WireError.self) { try Self.decodeChunk([6, 0, 0, 14, 0, 2, 0, 10, 0, 0, 0, 9, 0, 5]) }
        // Reconfiguration Response with one next TSN but not the other.
        #expect(throws: WireError.self) {
            try Self.decodeChunk([130, 0, 0, 20, 0, 16, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1])
        }
        // Heartbeat without a Heartbeat Info parameter.
        #expect(throws: WireError.malformed(chunk: 4, reason: "no Heartbeat Info parameter")) {
            try Self.decodeChunk([4, 0, 0, 8, 0, 2, 0, 4])
        }
        // ASCONF whose first parameter is not an address.
        #expect(throws: WireError.self) { try Self.decodeChunk([0xC1, 0, 0, 12, 0, 0, 0, 1, 0x80, 0, 0, 4]) }
    }

    @Test func gapBlockCountsBeyondTheChunk() {
        let head: [UInt8] = [0, 0, 0, 1, 0, 0, 0x10, 0]
        // SACK claiming 2 gap blocks with room for 1.
        #expect(throws: WireError.malformed(chunk: 3, reason: "2 gap blocks and 0 duplicates do not fill 4 bytes")) {
            try Self.decodeChunk([3, 0, 0, 20] + head + [0, 2, 0, 0, 0, 1, 0, 2])
        }
        // SACK claiming 65535 duplicates.
        #expect(throws: WireError.self) { try Self.decodeChunk([3, 0, 0, 16] + head + [0, 0, 0xFF, 0xFF]) }
        // NR-SACK claiming an NR gap block that is not there.
        #expect(throws: WireError.self) { try Self.decodeChunk([16, 0, 0, 20] + head + [0, 0, 0, 1, 0, 0, 0, 0]) }
        // FORWARD TSN with half a stream entry.
        #expect(throws: WireError.self) { try Self.decodeChunk([192, 0, 0, 10, 0, 0, 0, 1, 0, 1]) }
        // I-FORWARD TSN with half an entry.
        #expect(throws: WireError.self) { try Self.decodeChunk([194, 0, 0, 12, 0, 0, 0, 1, 0, 1, 0, 0]) }
    }

    /// Seeded random and mutated packets: decoding may fail, but must never trap.
    @Test func randomAndMutatedPacketsNeverCrash() {
        var gen = WireGenerator(seed: 0xF022)
        var decodedCount = 0
        for iteration in 0..<20_000 {
            var bytes: [UInt8]
            if iteration % 2 == 0 {
                bytes = gen.rng.bytes(gen.int(0...200))
            } else {
                let chunks = gen.list(1...4) { $0.chunk() }
                bytes = Array(SCTPPacket(header: gen.header(), chunks: chunks).encode().readableBytesView)
                for _ in 0..<gen.int(1...6) where !bytes.isEmpty {
                    let index = gen.int(0...bytes.count - 1)
                    switch gen.int(0...3) {
                    case 0: bytes[index] = gen.u8()
                    case 1: bytes[index] ^= 1 << UInt8(gen.int(0...7))
                    case 2: bytes.removeSubrange(index...)
                    default: bytes.insert(gen.u8(), at: index)
                    }
                }
            }
            // Half of them skip the checksum, so the chunk parsers see the damage.
            if let packet = try? SCTPPacket.decode(ByteBuffer(bytes: bytes), verifyChecksum: iteration % 4 < 2) {
                decodedCount += 1
                // Whatever decodes must encode again.
                _ = packet.encode()
            }
        }
        #expect(decodedCount > 0)
    }
}
