import NIOCore

/// HEARTBEAT ACK (RFC 9260 §3.3.6, type 5): echoes a HEARTBEAT's info back to its sender.
public struct HeartbeatAckChunk: ChunkBody {
    public static let type: UInt8 = 5

    /// The info of the HEARTBEAT being answered.
    public var info: ByteBuffer

    public init(info: ByteBuffer) { self.info = info }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 + info.readableBytes }
    public func encodeValue(into buffer: inout ByteBuffer) { HeartbeatInfoParameter.encode(info, into: &buffer) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        info = try HeartbeatInfoParameter.decode(value, chunkType: Self.type)
    }
}
