import NIOCore
import Testing

@testable import SCTPEngine

/// decode(encode(x)) == x for every chunk, parameter and error cause, with seeded random fields.
@Suite struct WireRoundTripTests {
    static let iterations = 300

    @Test(arguments: 0..<WireGenerator.chunkKinds)
    func everyChunkRoundTrips(kind: Int) throws {
        var gen = WireGenerator(seed: 1000 + UInt64(kind))
        for _ in 0..<Self.iterations {
            let chunk = gen.chunk(kind)
            var buffer = ByteBuffer()
            chunk.encode(into: &buffer)
            #expect(buffer.readableBytes == chunk.encodedLength)
            #expect(buffer.readableBytes % 4 == 0)
            let packet = SCTPPacket(header: gen.header(), chunks: [chunk])
            let decoded = try SCTPPacket.decode(packet.encode())
            #expect(decoded.chunks == [chunk])
            #expect(decoded.header.sourcePort == packet.header.sourcePort)
            #expect(decoded.header.verificationTag == packet.header.verificationTag)
            #expect(decoded.chunks.first?.type == chunk.type)
        }
    }

    @Test func bundlesOfRandomChunksRoundTrip() throws {
        var gen = WireGenerator(seed: 99)
        for _ in 0..<Self.iterations {
            let chunks = gen.list(1...8) { $0.chunk() }
            let header = gen.header()
            let encoded = SCTPPacket(header: header, chunks: chunks).encode()
            #expect(encoded.readableBytes == CommonHeader.size + chunks.reduce(0) { $0 + $1.encodedLength })
            let raw = try RawPacket.parse(encoded)
            #expect(raw.chunks.count == chunks.count)
            #expect(try raw.decodeChunks() == chunks)
            for (rawChunk, chunk) in zip(raw.chunks, chunks) {
                #expect(rawChunk.type == chunk.type)
                #expect(rawChunk.flags == chunk.flags)
                #expect(rawChunk.offset % 4 == 0)
            }
        }
    }

    @Test(arguments: 0..<WireGenerator.parameterKinds)
    func everyParameterRoundTrips(kind: Int) throws {
        var gen = WireGenerator(seed: 2000 + UInt64(kind))
        for _ in 0..<Self.iterations {
            let parameter = gen.parameter(kind)
            var buffer = ByteBuffer()
            parameter.encode(into: &buffer)
            #expect(buffer.readableBytes == parameter.encodedLength)
            #expect(buffer.readableBytes % 4 == 0)
            #expect(try Parameter.decode(buffer) == parameter)
            // And inside an INIT, where its padding may be the last.
            let chunk = Chunk.initiation(
                InitChunk(
                    initiateTag: VerificationTag(1), advertisedReceiverWindowCredit: 2, outboundStreams: 3,
                    inboundStreams: 4, initialTSN: TSN(5), parameters: [gen.parameter(), parameter]))
            let decoded = try SCTPPacket.decode(SCTPPacket(header: gen.header(), chunks: [chunk]).encode())
            #expect(decoded.chunks == [chunk])
        }
    }

    @Test(arguments: 0..<WireGenerator.errorCauseKinds)
    func everyErrorCauseRoundTrips(kind: Int) throws {
        var gen = WireGenerator(seed: 3000 + UInt64(kind))
        for _ in 0..<Self.iterations {
            let cause = gen.errorCause(kind)
            var buffer = ByteBuffer()
            cause.encode(into: &buffer)
            #expect(buffer.readableBytes == cause.encodedLength)
            #expect(buffer.readableBytes % 4 == 0)
            #expect(try ErrorCause.decodeList(buffer) == [cause])
            let chunk = Chunk.error(ErrorChunk(causes: [cause, gen.errorCause()]))
            let decoded = try SCTPPacket.decode(SCTPPacket(header: gen.header(), chunks: [chunk]).encode())
            #expect(decoded.chunks == [chunk])
        }
    }

    @Test func wildcardAddressesRoundTrip() throws {
        for address in [SCTPIPAddress.anyV4, .anyV6] {
            for parameter in [
                Parameter.address(address), .addIPAddress(correlationID: 1, address: address),
                .deleteIPAddress(correlationID: 2, address: address),
                .setPrimaryAddress(correlationID: 3, address: address),
            ] {
                var buffer = ByteBuffer()
                parameter.encode(into: &buffer)
                #expect(try Parameter.decode(buffer) == parameter)
            }
        }
    }

    @Test func idataKeepsPPIDOnFirstFragmentAndFSNOnLater() throws {
        let first = IDataChunk(
            tsn: TSN(1), streamID: StreamID(2), mid: MID(3), ppid: PPID(51), fsn: 9,
            isBeginning: true, isEnding: false, userData: ByteBuffer(bytes: [1]))
        #expect(first.fsn == 0 && first.ppid == PPID(51))
        let later = IDataChunk(
            tsn: TSN(2), streamID: StreamID(2), mid: MID(3), ppid: PPID(51), fsn: 9,
            isBeginning: false, isEnding: true, userData: ByteBuffer(bytes: [2]))
        var buffer = ByteBuffer()
        later.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView[16..<20]) == [0, 0, 0, 9])
        #expect(Array(buffer.readableBytesView[0..<2]) == [64, 0x01])
    }

    /// The send path's one-reservation DATA encoding writes what the generic per-part encoding writes, zero padding
    /// included, after bytes already in the packet, from user data that is a slice of a larger buffer, into a
    /// reused buffer.
    @Test(arguments: [0, 1, 2, 3, 4, 5, 6, 7, 8, 1_383, 1_400])
    func dataChunkEncodedInOneReservationMatchesTheGenericEncoding(length: Int) {
        var message = ByteBuffer(bytes: (0..<(length + 7)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) })
        message.moveReaderIndex(forwardBy: 5)
        let chunk = DataChunk(
            tsn: TSN(0xDEAD_BEEF), streamID: StreamID(0x1234), ssn: SSN(0xABCD), ppid: PPID(0x0102_0304),
            isUnordered: length % 2 == 0, isBeginning: true, isEnding: length % 3 == 0, isImmediate: length == 1_400,
            userData: message.getSlice(at: message.readerIndex, length: length)!)
        var generic = ByteBuffer(bytes: [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9])
        // A recycled packet buffer: stale bytes past the writer index, which the padding must not keep.
        var oneReservation = ByteBuffer(repeating: 0xFF, count: 2_048)
        oneReservation.clear()
        oneReservation.writeImmutableBuffer(generic)
        chunk.encode(into: &generic)
        chunk.encodeChunk(into: &oneReservation)
        #expect(oneReservation == generic)
        #expect(oneReservation.readableBytes == 12 + chunk.encodedLength)
    }

    @Test func unrecognizedActionFollowsTheHighBits() {
        #expect(UnknownChunk(type: 0x3F, flags: 0, value: ByteBuffer()).action == .stop)
        #expect(UnknownChunk(type: 0x7F, flags: 0, value: ByteBuffer()).action == .stopAndReport)
        #expect(UnknownChunk(type: 0xBF, flags: 0, value: ByteBuffer()).action == .skip)
        #expect(UnknownChunk(type: 0xFF, flags: 0, value: ByteBuffer()).action == .skipAndReport)
        #expect(Parameter.unknown(type: 0x3FFF, value: ByteBuffer()).unrecognizedAction == .stop)
        #expect(Parameter.unknown(type: 0x4001, value: ByteBuffer()).unrecognizedAction == .stopAndReport)
        #expect(Parameter.ecnCapable.unrecognizedAction == .skip)
        #expect(Parameter.forwardTSNSupported.unrecognizedAction == .skipAndReport)
    }
}
