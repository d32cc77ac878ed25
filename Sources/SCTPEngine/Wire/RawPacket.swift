import NIOCore

/// A chunk framed but not decoded: type, flags and the value as a slice of the packet (RFC 9260 §3.2).
public struct RawChunk: Hashable, Sendable {
    public var type: UInt8
    public var flags: UInt8
    /// The chunk body without the 4-byte header and without padding.
    public var value: ByteBuffer
    /// Where the chunk header starts, counted from the start of the packet.
    public var offset: Int
    /// The chunk length field: header and value, no padding.
    public var length: Int

    public init(type: UInt8, flags: UInt8, value: ByteBuffer, offset: Int, length: Int) {
        self.type = type
        self.flags = flags
        self.value = value
        self.offset = offset
        self.length = length
    }

    /// What the receiver must do with it if the type is unknown (RFC 9260 §3.2).
    public var unrecognizedAction: UnrecognizedAction { UnrecognizedAction(chunkType: type) }

    /// The whole chunk, header included, padding excluded, sliced from `packet`; what an Unrecognized Chunk Type
    /// cause quotes.
    public func bytes(in packet: RawPacket) -> ByteBuffer? {
        packet.buffer.getSlice(at: packet.buffer.readerIndex + offset, length: length)
    }
}

/// First-level parse of an SCTP packet: the common header checked, the CRC32c verified and every chunk framed, with
/// chunk bodies left undecoded until a handler needs them.
public struct RawPacket: Hashable, Sendable {
    public var header: CommonHeader
    public var chunks: [RawChunk]
    /// The whole packet, common header included.
    public var buffer: ByteBuffer

    public init(header: CommonHeader, chunks: [RawChunk], buffer: ByteBuffer) {
        self.header = header
        self.chunks = chunks
        self.buffer = buffer
    }

    /// Checks the header, the checksum and every chunk length. Decoding never traps: every length is checked
    /// against the bytes present before it is used.
    public static func parse(_ packet: ByteBuffer, verifyChecksum: Bool = true) throws(WireError) -> RawPacket {
        var chunks: [RawChunk] = []
        return try parse(packet, verifyChecksum: verifyChecksum, reusing: &chunks)
    }

    /// `parse` into the storage of `spare` (left empty), so that a receiver that hands each packet's array back
    /// after handling it allocates no array per packet.
    public static func parse(
        _ packet: ByteBuffer, verifyChecksum: Bool = true, reusing spare: inout [RawChunk]
    ) throws(WireError) -> RawPacket {
        var chunks: [RawChunk] = []
        swap(&chunks, &spare)
        chunks.removeAll(keepingCapacity: true)
        let header = try CommonHeader(at: packet)
        if verifyChecksum {
            // RFC 9260 §6.8: "If the received CRC32c value does not match the computed one, the receiver MUST
            // silently discard the packet." (Zero checksums of RFC 9653 are for the caller to allow.)
            let computed = CRC32c.packetChecksum(packet)
            guard computed == header.checksum else { throw .badChecksum(expected: computed, actual: header.checksum) }
        }
        // Offsets into `packet` rather than a reader over a copy of it: the only reference taken is each chunk's
        // value.
        let end = packet.readableBytes
        var offset = CommonHeader.size
        while offset < end {
            let available = end - offset
            guard
                let (type, flags, length16) = packet.readFields(
                    skipping: offset, length: 4, { ($0.get(UInt8.self), $0.get(UInt8.self), $0.get(UInt16.self)) })
            else { throw .chunkHeaderTruncated(offset: offset, remaining: available) }
            let length = Int(length16)
            // RFC 9260 §3.2: the Chunk Length "represents the size of the chunk in bytes, including the Chunk Type,
            // Chunk Flags, Chunk Length, and Chunk Value fields", so it is at least 4.
            guard length >= 4 else { throw .chunkLengthTooSmall(type: type, length: length) }
            guard length <= available,
                let value = packet.getSlice(at: packet.readerIndex + offset + 4, length: length - 4)
            else {
                throw .chunkExceedsPacket(type: type, offset: offset, length: length, available: available)
            }
            chunks.append(RawChunk(type: type, flags: flags, value: value, offset: offset, length: length))
            // Padding is up to 3 bytes that "the receiver MUST ignore" (RFC 9260 §3.2); the last chunk's may be
            // missing.
            offset = min(offset + paddedLength(length), end)
        }
        guard !chunks.isEmpty else { throw .noChunks }
        return RawPacket(header: header, chunks: chunks, buffer: packet)
    }

    /// Decodes every chunk.
    public func decodeChunks() throws(WireError) -> [Chunk] {
        var decoded: [Chunk] = []
        decoded.reserveCapacity(chunks.count)
        for raw in chunks { decoded.append(try Chunk(decoding: raw)) }
        return decoded
    }
}
