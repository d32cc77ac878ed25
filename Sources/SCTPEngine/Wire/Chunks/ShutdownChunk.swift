import NIOCore

/// SHUTDOWN (RFC 9260 §3.3.8, type 7): starts a graceful close and acknowledges data up to a TSN.
public struct ShutdownChunk: ChunkBody {
    public static let type: UInt8 = 7

    public var cumulativeTSNAck: TSN

    public init(cumulativeTSNAck: TSN) { self.cumulativeTSNAck = cumulativeTSNAck }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 }
    public func encodeValue(into buffer: inout ByteBuffer) { buffer.writeInteger(cumulativeTSNAck.rawValue) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        cumulativeTSNAck = TSN(try reader.u32())
    }
}
