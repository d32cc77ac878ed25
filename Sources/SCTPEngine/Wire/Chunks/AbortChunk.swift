import NIOCore

/// ABORT (RFC 9260 §3.3.7, type 6): closes the association at once, with optional causes.
public struct AbortChunk: ChunkBody {
    public static let type: UInt8 = 6

    /// T: the verification tag is the sender's own tag, reflected (RFC 9260 §8.5.1).
    public var isTagReflected: Bool
    public var causes: [ErrorCause]

    public init(isTagReflected: Bool = false, causes: [ErrorCause] = []) {
        self.isTagReflected = isTagReflected
        self.causes = causes
    }

    public var flags: UInt8 { isTagReflected ? 0x01 : 0 }
    public var valueLength: Int { ErrorCause.listLength(causes) }
    public func encodeValue(into buffer: inout ByteBuffer) { ErrorCause.encodeList(causes, into: &buffer) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        isTagReflected = flags & 0x01 != 0
        causes = try ErrorCause.decodeList(value)
    }
}
