import NIOCore

/// Assembles one outgoing packet: the common header, then chunks appended in order, then the CRC32c.
public struct PacketBuilder: Sendable {
    public private(set) var buffer: ByteBuffer
    public private(set) var chunkCount = 0

    /// Starts a packet with `header`; its checksum is ignored and computed by `finish`.
    public init(header: CommonHeader, capacity: Int = 1500) {
        self.init(header: header, buffer: ByteBufferAllocator().buffer(capacity: max(capacity, CommonHeader.size)))
    }

    /// Starts a packet with `header` in `buffer`, which must be empty (`EndpointOutput.packetBuffer`). Taken over,
    /// not copied: a second reference would make its first write allocate fresh storage.
    init(header: CommonHeader, buffer: consuming ByteBuffer) {
        self.buffer = consume buffer
        var header = header
        header.checksum = 0
        header.encode(into: &self.buffer)
    }

    /// Bytes written so far, common header included.
    public var size: Int { buffer.readableBytes }

    public var isEmpty: Bool { chunkCount == 0 }

    /// Appends a chunk with its padding and returns its offset in the packet (for AUTH, see
    /// `AuthChunk.authenticatedBytes(inBuilt:offset:)`).
    @discardableResult
    public mutating func add(_ chunk: Chunk) -> Int {
        let offset = buffer.readableBytes
        chunk.encode(into: &buffer)
        chunkCount += 1
        return offset
    }

    /// Appends a DATA chunk, the one every full packet carries, without wrapping it in a `Chunk`: taking it back
    /// out of the enum copied it (a retain and a release of its payload per chunk).
    public mutating func add(data chunk: DataChunk) {
        chunk.encodeChunk(into: &buffer)
        chunkCount += 1
    }

    /// Whether `chunk` still fits when the packet may be at most `mtuPayload` bytes (common header included).
    public func fits(_ chunk: Chunk, mtuPayload: Int) -> Bool {
        size + chunk.encodedLength <= mtuPayload
    }

    /// Overwrites bytes at `offset` in the packet, such as an AUTH chunk's HMAC once computed.
    public mutating func patch(_ bytes: some Collection<UInt8>, at offset: Int) {
        buffer.setBytes(bytes, at: buffer.readerIndex + offset)
    }

    /// Fills in the CRC32c (RFC 9260 §6.8) and returns the packet. With `checksum: false` the field stays zero, as
    /// RFC 9653 allows once the peer has announced Zero Checksum Acceptable.
    public mutating func finish(checksum: Bool = true) -> ByteBuffer {
        // The header went in with a zero checksum field: only a computed one is stored.
        if checksum {
            buffer.setInteger(CRC32c.packetChecksum(buffer), at: buffer.readerIndex + 8, endianness: .little)
        }
        return buffer
    }
}
