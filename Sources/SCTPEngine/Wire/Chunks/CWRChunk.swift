import NIOCore

/// CWR, Congestion Window Reduced (RFC 9260 Appendix A, type 13): answers an ECNE once cwnd has been reduced.
public struct CWRChunk: ChunkBody {
    public static let type: UInt8 = 13

    /// The lowest TSN sent when the window was reduced.
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
