import NIOCore

/// COOKIE ECHO (RFC 9260 §3.3.11, type 10): returns the state cookie of the INIT ACK.
public struct CookieEchoChunk: ChunkBody {
    public static let type: UInt8 = 10

    public var cookie: ByteBuffer

    public init(cookie: ByteBuffer) { self.cookie = cookie }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { cookie.readableBytes }
    public func encodeValue(into buffer: inout ByteBuffer) { buffer.writeImmutableBuffer(cookie) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) { cookie = value }
}
