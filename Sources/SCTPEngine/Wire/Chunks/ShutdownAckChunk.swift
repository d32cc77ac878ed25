import NIOCore

/// SHUTDOWN ACK (RFC 9260 §3.3.9, type 8): answers a SHUTDOWN once all data is acknowledged.
public struct ShutdownAckChunk: ChunkBody {
    public static let type: UInt8 = 8

    public init() {}

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 0 }
    public func encodeValue(into buffer: inout ByteBuffer) {}
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {}
}
