import NIOCore

/// AUTH (RFC 4895 §4.2, type 15): an HMAC over the chunks that follow it in the packet.
public struct AuthChunk: ChunkBody {
    public static let type: UInt8 = 15
    /// Bytes from the start of the chunk header to the HMAC.
    public static let hmacOffset = 8

    public var sharedKeyID: UInt16
    public var hmacID: UInt16
    public var hmac: ByteBuffer

    public init(sharedKeyID: UInt16, hmacID: UInt16, hmac: ByteBuffer) {
        self.sharedKeyID = sharedKeyID
        self.hmacID = hmacID
        self.hmac = hmac
    }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 + hmac.readableBytes }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeInteger(sharedKeyID)
        buffer.writeInteger(hmacID)
        buffer.writeImmutableBuffer(hmac)
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        sharedKeyID = try reader.u16()
        hmacID = try reader.u16()
        hmac = reader.rest()
    }

    /// The bytes the HMAC covers (RFC 4895 §6.2): the AUTH chunk with its HMAC field set to zero, followed by every
    /// chunk after it in the packet, padding included. Nil when `authChunk` is not an AUTH chunk of `packet`.
    public static func authenticatedBytes(in packet: RawPacket, authChunk: RawChunk) -> ByteBuffer? {
        guard authChunk.type == type, authChunk.length >= hmacOffset, authChunk.offset >= CommonHeader.size,
            authChunk.offset + authChunk.length <= packet.buffer.readableBytes,
            var covered = packet.buffer.getSlice(
                at: packet.buffer.readerIndex + authChunk.offset,
                length: packet.buffer.readableBytes - authChunk.offset)
        else { return nil }
        // Copy so that zeroing the HMAC does not touch the received packet.
        var copy = ByteBufferAllocator().buffer(capacity: covered.readableBytes)
        copy.writeBuffer(&covered)
        let hmacLength = authChunk.length - hmacOffset
        copy.setRepeatingByte(0, count: hmacLength, at: copy.readerIndex + hmacOffset)
        return copy
    }

    /// The bytes the HMAC covers in a packet being built, with the AUTH chunk at `offset` (a position returned by
    /// `PacketBuilder.add`) and its HMAC field still zero.
    public static func authenticatedBytes(inBuilt packet: ByteBuffer, offset: Int) -> ByteBuffer? {
        packet.getSlice(at: packet.readerIndex + offset, length: packet.readableBytes - offset)
    }
}
