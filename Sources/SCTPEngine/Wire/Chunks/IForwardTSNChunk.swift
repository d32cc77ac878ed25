import NIOCore

/// I-FORWARD-TSN (RFC 8260 §2.3, type 194): FORWARD TSN for I-DATA, naming skipped messages by MID.
public struct IForwardTSNChunk: ChunkBody {
    public static let type: UInt8 = 194

    /// A stream, whether the skipped messages were unordered, and the largest MID skipped.
    public struct Entry: Hashable, Sendable {
        public var streamID: StreamID
        public var isUnordered: Bool
        public var mid: MID

        public init(streamID: StreamID, isUnordered: Bool, mid: MID) {
            self.streamID = streamID
            self.isUnordered = isUnordered
            self.mid = mid
        }
    }

    public var newCumulativeTSN: TSN
    public var entries: [Entry]

    public init(newCumulativeTSN: TSN, entries: [Entry] = []) {
        self.newCumulativeTSN = newCumulativeTSN
        self.entries = entries
    }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 + 8 * entries.count }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeInteger(newCumulativeTSN.rawValue)
        for entry in entries {
            buffer.writeInteger(entry.streamID.rawValue)
            // RFC 8260 §2.3: 15 reserved bits, then U.
            buffer.writeInteger(UInt16(entry.isUnordered ? 1 : 0))
            buffer.writeInteger(entry.mid.rawValue)
        }
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        newCumulativeTSN = TSN(try reader.u32())
        guard reader.remaining % 8 == 0 else { throw Self.malformed("entry list of \(reader.remaining) bytes") }
        var entries: [Entry] = []
        entries.reserveCapacity(reader.remaining / 8)
        while reader.remaining > 0 {
            let id = StreamID(try reader.u16())
            let unordered = try reader.u16() & 1 != 0
            entries.append(Entry(streamID: id, isUnordered: unordered, mid: MID(try reader.u32())))
        }
        self.entries = entries
    }
}
