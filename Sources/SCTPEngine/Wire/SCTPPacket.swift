import NIOCore

/// A whole packet decoded in one go: the convenience over `RawPacket` and `PacketBuilder` for tests and tools.
public struct SCTPPacket: Hashable, Sendable {
    public var header: CommonHeader
    public var chunks: [Chunk]

    public init(header: CommonHeader, chunks: [Chunk]) {
        self.header = header
        self.chunks = chunks
    }

    /// Parses, verifies the checksum and decodes every chunk.
    public static func decode(_ buffer: ByteBuffer, verifyChecksum: Bool = true) throws(WireError) -> SCTPPacket {
        let raw = try RawPacket.parse(buffer, verifyChecksum: verifyChecksum)
        return SCTPPacket(header: raw.header, chunks: try raw.decodeChunks())
    }

    /// Encodes header and chunks and fills in the CRC32c.
    public func encode() -> ByteBuffer {
        var builder = PacketBuilder(
            header: header, capacity: CommonHeader.size + chunks.reduce(0) { $0 + $1.encodedLength })
        for chunk in chunks { builder.add(chunk) }
        return builder.finish()
    }
}
