import NIOCore

/// SHUTDOWN COMPLETE (RFC 9260 §3.3.13, type 14): ends a graceful close.
public struct ShutdownCompleteChunk: ChunkBody {
    public static let type: UInt8 = 14

    /// T: the verification tag is the sender's own tag, reflected (RFC 9260 §8.5.1).
    public var isTagReflected: Bool

    public init(isTagReflected: Bool = false) { self.isTagReflected = isTagReflected }

    public var flags: UInt8 { isTagReflected ? 0x01 : 0 }
    public var valueLength: Int { 0 }
    public func encodeValue(into buffer: inout ByteBuffer) {}
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        isTagReflected = flags & 0x01 != 0
    }
}
