import NIOCore

/// What every known chunk struct provides so `Chunk` can encode and decode it: its type, flags and value.
public protocol ChunkBody: Hashable, Sendable {
    /// The chunk type on the wire.
    static var type: UInt8 { get }
    /// The chunk flags byte.
    var flags: UInt8 { get }
    /// The chunk length field minus the 4-byte header: no chunk padding, and no padding after a final parameter.
    var valueLength: Int { get }
    /// Writes exactly `valueLength` bytes.
    func encodeValue(into buffer: inout ByteBuffer)
    /// Decodes a chunk body from its flags and value (the chunk without header and padding).
    init(flags: UInt8, value: ByteBuffer) throws(WireError)
}

extension ChunkBody {
    /// Header, value and padding: what the chunk occupies in a packet.
    public var encodedLength: Int { paddedLength(4 + valueLength) }

    /// Writes the chunk header, value and zero padding to a 4-byte boundary (RFC 9260 §3.2). Building a chunk longer
    /// than the 16-bit length field allows is a programming error and traps; decoding never does.
    public func encode(into buffer: inout ByteBuffer) {
        let length = 4 + valueLength
        let flags = flags
        buffer.writeFields(length: 4) { fields in
            fields.put(Self.type)
            fields.put(flags)
            fields.put(UInt16(length))
        }
        encodeValue(into: &buffer)
        buffer.writePadding(after: length)
    }

    /// Decodes a raw chunk known to be of this type.
    public init(decoding raw: RawChunk) throws(WireError) {
        guard raw.type == Self.type else { throw .unexpectedChunkType(expected: Self.type, actual: raw.type) }
        try self.init(flags: raw.flags, value: raw.value)
    }

    /// The error for a value that is too short or otherwise malformed.
    static func malformed(_ reason: String) -> WireError { .malformed(chunk: type, reason: reason) }

    /// A reader over `value` that reports truncation against this chunk type.
    static func reader(_ value: ByteBuffer) -> WireReader {
        WireReader(chunkValue: value, chunkType: type)
    }
}
