import NIOCore

/// COOKIE ACK (RFC 9260 §3.3.12, type 11): confirms the COOKIE ECHO; the association is established.
public struct CookieAckChunk: ChunkBody {
    public static let type: UInt8 = 11

    public init() {}

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 0 }
    public func encodeValue(into buffer: inout ByteBuffer) {}
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {}
}
