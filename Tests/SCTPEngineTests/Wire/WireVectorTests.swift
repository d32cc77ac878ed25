import NIOCore
import Testing

@testable import SCTPEngine

/// Packets assembled by hand from the RFC figures, checked byte for byte in both directions.
@Suite struct WireVectorTests {
    /// INIT from port 5000 to 5001 with tag 0x01020304, a_rwnd 65536, 10 outbound and 65535 inbound streams,
    /// initial TSN 0xA0B0C0D0, an IPv4 address, Supported Extensions (RE-CONFIG, FORWARD-TSN, I-DATA) and Forward TSN
    /// Supported. The chunk length (40) leaves out nothing: the last parameter needs no padding. The CRC32c was
    /// computed independently with a bitwise implementation.
    static let initPacket: [UInt8] = [
        0x13, 0x88, 0x13, 0x89, 0x00, 0x00, 0x00, 0x00, 0x3B, 0x47, 0xE2, 0x29,
        0x01, 0x00, 0x00, 0x28, 0x01, 0x02, 0x03, 0x04, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x0A, 0xFF, 0xFF, 0xA0, 0xB0, 0xC0, 0xD0,
        0x00, 0x05, 0x00, 0x08, 0xC0, 0x00, 0x02, 0x01,
        0x80, 0x08, 0x00, 0x07, 0x82, 0xC0, 0x40, 0x00,
        0xC0, 0x00, 0x00, 0x04,
    ]

    static let initChunk = InitChunk(
        initiateTag: VerificationTag(0x0102_0304), advertisedReceiverWindowCredit: 65536, outboundStreams: 10,
        inboundStreams: 65535, initialTSN: TSN(0xA0B0_C0D0),
        parameters: [
            .ipv4Address(SCTPIPAddress(v4: 192, 0, 2, 1)), .supportedExtensions([0x82, 0xC0, 0x40]),
            .forwardTSNSupported,
        ])

    @Test func initEncodesByteForByte() {
        let packet = SCTPPacket(
            header: CommonHeader(sourcePort: 5000, destinationPort: 5001, verificationTag: .zero),
            chunks: [.initiation(Self.initChunk)])
        #expect(Array(packet.encode().readableBytesView) == Self.initPacket)
    }

    @Test func initDecodesByteForByte() throws {
        let raw = try RawPacket.parse(ByteBuffer(bytes: Self.initPacket))
        #expect(raw.header.sourcePort == 5000)
        #expect(raw.header.destinationPort == 5001)
        #expect(raw.header.verificationTag == .zero)
        #expect(raw.header.checksum == 0x29E2_473B)
        #expect(raw.chunks.count == 1)
        #expect(raw.chunks[0].offset == 12 && raw.chunks[0].length == 40 && raw.chunks[0].value.readableBytes == 36)
        #expect(try Chunk(decoding: raw.chunks[0]) == .initiation(Self.initChunk))
        #expect(try InitChunk(decoding: raw.chunks[0]) == Self.initChunk)
        #expect(throws: WireError.unexpectedChunkType(expected: 2, actual: 1)) {
            try InitAckChunk(decoding: raw.chunks[0])
        }
    }

    /// RFC 9260 §3.2: the chunk length includes the padding of every parameter but the last. A receiver accepts
    /// it either way.
    @Test func chunkLengthLeavesOutTheLastParameterPadding() throws {
        let chunk = InitChunk(
            initiateTag: VerificationTag(1), advertisedReceiverWindowCredit: 2, outboundStreams: 3,
            inboundStreams: 4, initialTSN: TSN(5), parameters: [.forwardTSNSupported, .supportedExtensions([1, 2, 3])])
        var buffer = ByteBuffer()
        chunk.encode(into: &buffer)
        #expect(buffer.readableBytes == 32)
        #expect(buffer.getInteger(at: 2, as: UInt16.self) == 31)
        #expect(buffer.getInteger(at: 31, as: UInt8.self) == 0)
        // The same chunk with the padding counted in its length decodes to the same value.
        buffer.setInteger(UInt16(32), at: 2)
        var packet = ByteBuffer()
        CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: .zero).encode(into: &packet)
        packet.writeBuffer(&buffer)
        #expect(try SCTPPacket.decode(packet, verifyChecksum: false).chunks == [.initiation(chunk)])
    }

    /// A DATA chunk with 3 bytes of user data: length 19, one byte of padding; flags U|B|E|I.
    @Test func dataChunkLayout() {
        let chunk = DataChunk(
            tsn: TSN(0x1122_3344), streamID: StreamID(7), ssn: SSN(0x0102), ppid: PPID(51),
            isUnordered: true, isBeginning: true, isEnding: true, isImmediate: true,
            userData: ByteBuffer(bytes: [0xAA, 0xBB, 0xCC]))
        var buffer = ByteBuffer()
        Chunk.data(chunk).encode(into: &buffer)
        #expect(
            Array(buffer.readableBytesView) == [
                0x00, 0x0F, 0x00, 0x13, 0x11, 0x22, 0x33, 0x44, 0x00, 0x07, 0x01, 0x02, 0x00, 0x00, 0x00, 0x33,
                0xAA, 0xBB, 0xCC, 0x00,
            ])
        #expect(DataChunk.headerSize == 16)
    }

    /// NR-SACK: counts of gap blocks, NR gap blocks and duplicates, then 16 reserved bits, then the lists.
    @Test func nrSackLayout() {
        let chunk = NRSackChunk(
            cumulativeTSNAck: TSN(100), advertisedReceiverWindowCredit: 0x1000,
            gapAckBlocks: [GapAckBlock(start: 2, end: 3)], nrGapAckBlocks: [GapAckBlock(start: 5, end: 5)],
            duplicateTSNs: [TSN(99)], isAllNonRenegable: true)
        var buffer = ByteBuffer()
        chunk.encode(into: &buffer)
        #expect(
            Array(buffer.readableBytesView) == [
                0x10, 0x01, 0x00, 0x20, 0, 0, 0, 100, 0, 0, 0x10, 0, 0, 1, 0, 1, 0, 1, 0, 0,
                0, 2, 0, 3, 0, 5, 0, 5, 0, 0, 0, 99,
            ])
    }

    /// HEARTBEAT wraps its info in a Heartbeat Info parameter (type 1).
    @Test func heartbeatLayout() {
        var buffer = ByteBuffer()
        HeartbeatChunk(info: ByteBuffer(bytes: [9, 8, 7])).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [4, 0, 0, 11, 0, 1, 0, 7, 9, 8, 7, 0])
    }

    /// ABORT with the T bit and a User-Initiated Abort cause of 1 byte: cause length 5, padded in the chunk.
    @Test func abortLayout() {
        var buffer = ByteBuffer()
        AbortChunk(isTagReflected: true, causes: [.userInitiatedAbort(ByteBuffer(bytes: [0x41]))])
            .encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [6, 1, 0, 9, 0, 12, 0, 5, 0x41, 0, 0, 0])
    }

    /// ASCONF with its address parameter, then an Add IP request naming ::.
    @Test func asconfLayout() throws {
        let chunk = ASCONFChunk(
            serial: ASCONFSerial(7), addressParameter: .address(SCTPIPAddress(v4: 10, 0, 0, 1)),
            parameters: [.addIPAddress(correlationID: 1, address: .anyV6)])
        var buffer = ByteBuffer()
        chunk.encode(into: &buffer)
        var expected: [UInt8] = [0xC1, 0, 0, 44, 0, 0, 0, 7, 0, 5, 0, 8, 10, 0, 0, 1, 0xC0, 0x01, 0, 28, 0, 0, 0, 1]
        expected += [0, 6, 0, 20] + [UInt8](repeating: 0, count: 16)
        #expect(Array(buffer.readableBytesView) == expected)
    }

    /// RFC 4895 §6.2: the HMAC covers the AUTH chunk with a zero HMAC field and every chunk after it.
    @Test func authCoversItselfWithZeroHMACAndTheChunksAfterIt() throws {
        let header = CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: VerificationTag(3))
        var builder = PacketBuilder(header: header)
        builder.add(.sack(SackChunk(cumulativeTSNAck: TSN(1), advertisedReceiverWindowCredit: 2)))
        let authOffset = builder.add(
            .auth(AuthChunk(sharedKeyID: 0, hmacID: 1, hmac: ByteBuffer(repeating: 0, count: 20))))
        builder.add(
            .data(
                DataChunk(
                    tsn: TSN(5), streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0),
                    userData: ByteBuffer(bytes: [1, 2, 3]))))
        let covered = try #require(AuthChunk.authenticatedBytes(inBuilt: builder.buffer, offset: authOffset))
        let hmac = [UInt8](repeating: 0x5A, count: 20)
        builder.patch(hmac, at: authOffset + AuthChunk.hmacOffset)
        let packet = builder.finish()

        let raw = try RawPacket.parse(packet)
        let authRaw = raw.chunks[1]
        #expect(try AuthChunk(decoding: authRaw).hmac == ByteBuffer(bytes: hmac))
        let received = try #require(AuthChunk.authenticatedBytes(in: raw, authChunk: authRaw))
        #expect(received == covered)
        #expect(received.readableBytes == 28 + 20)
        #expect(Array(received.readableBytesView[8..<28]) == [UInt8](repeating: 0, count: 20))
        // The received packet itself is untouched.
        #expect(try AuthChunk(decoding: RawPacket.parse(packet).chunks[1]).hmac == ByteBuffer(bytes: hmac))
        #expect(AuthChunk.authenticatedBytes(in: raw, authChunk: raw.chunks[0]) == nil)
    }

    @Test func builderFitsAndZeroChecksum() throws {
        var builder = PacketBuilder(header: CommonHeader(sourcePort: 1, destinationPort: 2, verificationTag: .zero))
        let data = Chunk.data(
            DataChunk(
                tsn: TSN(1), streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0),
                userData: ByteBuffer(repeating: 1, count: 100)))
        #expect(builder.isEmpty)
        #expect(builder.fits(data, mtuPayload: 12 + 16 + 100))
        #expect(!builder.fits(data, mtuPayload: 12 + 16 + 99))
        builder.add(data)
        #expect(builder.size == 128)
        let packet = builder.finish(checksum: false)
        #expect(packet.getInteger(at: 8, as: UInt32.self) == 0)
        #expect(throws: WireError.self) { try RawPacket.parse(packet) }
        #expect(try SCTPPacket.decode(packet, verifyChecksum: false).chunks == [data])
    }
}
