import NIOCore

/// A chunk of a type this implementation does not decode, kept as it arrived.
public struct UnknownChunk: Hashable, Sendable {
    public var type: UInt8
    public var flags: UInt8
    public var value: ByteBuffer

    public init(type: UInt8, flags: UInt8, value: ByteBuffer) {
        self.type = type
        self.flags = flags
        self.value = value
    }

    /// What the receiver must do with it (RFC 9260 §3.2).
    public var action: UnrecognizedAction { UnrecognizedAction(chunkType: type) }

    public var encodedLength: Int { paddedLength(4 + value.readableBytes) }

    public func encode(into buffer: inout ByteBuffer) {
        let length = 4 + value.readableBytes
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeInteger(UInt16(length))
        buffer.writeImmutableBuffer(value)
        buffer.writePadding(after: length)
    }
}
