import NIOCore

/// HEARTBEAT (RFC 9260 §3.3.5, type 4): probes a path; `info` is the value of its Heartbeat Info parameter.
public struct HeartbeatChunk: ChunkBody {
    public static let type: UInt8 = 4

    /// The sender-specific data, echoed back unchanged in the HEARTBEAT ACK.
    public var info: ByteBuffer

    public init(info: ByteBuffer) { self.info = info }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 + info.readableBytes }
    public func encodeValue(into buffer: inout ByteBuffer) { HeartbeatInfoParameter.encode(info, into: &buffer) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        info = try HeartbeatInfoParameter.decode(value, chunkType: Self.type)
    }
}

/// The single Heartbeat Info parameter (type 1) that HEARTBEAT and HEARTBEAT ACK carry (RFC 9260 §3.3.5).
enum HeartbeatInfoParameter {
    static func encode(_ info: ByteBuffer, into buffer: inout ByteBuffer) {
        Parameter.heartbeatInfo(info).encodeUnpadded(into: &buffer)
    }

    static func decode(_ value: ByteBuffer, chunkType: UInt8) throws(WireError) -> ByteBuffer {
        let items = try splitTLVs(value, kind: .parameter)
        guard let first = items.first, first.type == 1 else {
            throw .malformed(chunk: chunkType, reason: "no Heartbeat Info parameter")
        }
        return first.value
    }
}
