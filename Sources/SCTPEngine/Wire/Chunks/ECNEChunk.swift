import NIOCore

/// ECNE, ECN Echo (RFC 9260 Appendix A, type 12): tells the sender a packet was marked Congestion Experienced.
public struct ECNEChunk: ChunkBody {
    public static let type: UInt8 = 12

    /// The lowest TSN of the packet that carried the CE mark.
    public var lowestTSN: TSN

    public init(lowestTSN: TSN) { self.lowestTSN = lowestTSN }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 }
    public func encodeValue(into buffer: inout ByteBuffer) { buffer.writeInteger(lowestTSN.rawValue) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        lowestTSN = TSN(try reader.u32())
    }
}
