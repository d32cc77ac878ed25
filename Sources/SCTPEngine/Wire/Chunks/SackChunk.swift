import NIOCore

/// A Gap Ack Block: TSNs cumulativeTSNAck+start through cumulativeTSNAck+end were received (RFC 9260 §3.3.4).
public struct GapAckBlock: Hashable, Sendable {
    /// Offset of the first received TSN from the cumulative TSN ack, as on the wire.
    public var start: UInt16
    /// Offset of the last received TSN from the cumulative TSN ack, as on the wire.
    public var end: UInt16

    public init(start: UInt16, end: UInt16) {
        self.start = start
        self.end = end
    }
}

/// SACK (RFC 9260 §3.3.4, type 3): acknowledges received DATA and reports gaps and duplicates.
public struct SackChunk: ChunkBody {
    public static let type: UInt8 = 3

    public var cumulativeTSNAck: TSN
    public var advertisedReceiverWindowCredit: UInt32
    public var gapAckBlocks: [GapAckBlock]
    public var duplicateTSNs: [TSN]
    /// CMT's DAC: how many DATA packets this SACK covers (1 to 3), or 0 when not reported. Carried in the flags,
    /// which RFC 9260 leaves reserved; see `DelayedAckFlags`.
    public var delayedAckPacketCount: UInt8

    public init(
        cumulativeTSNAck: TSN, advertisedReceiverWindowCredit: UInt32, gapAckBlocks: [GapAckBlock] = [],
        duplicateTSNs: [TSN] = [], delayedAckPacketCount: UInt8 = 0
    ) {
        self.cumulativeTSNAck = cumulativeTSNAck
        self.advertisedReceiverWindowCredit = advertisedReceiverWindowCredit
        self.gapAckBlocks = gapAckBlocks
        self.duplicateTSNs = duplicateTSNs
        self.delayedAckPacketCount = min(delayedAckPacketCount, 3)
    }

    public var flags: UInt8 { DelayedAckFlags.encode(delayedAckPacketCount) }
    public var valueLength: Int { 12 + 4 * gapAckBlocks.count + 4 * duplicateTSNs.count }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeFields(length: valueLength) { fields in
            fields.put(cumulativeTSNAck.rawValue)
            fields.put(advertisedReceiverWindowCredit)
            fields.put(UInt16(gapAckBlocks.count))
            fields.put(UInt16(duplicateTSNs.count))
            SackLists.put(gapAckBlocks, into: &fields)
            for tsn in duplicateTSNs { fields.put(tsn.rawValue) }
        }
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        delayedAckPacketCount = DelayedAckFlags.decode(flags)
        var reader = Self.reader(value)
        cumulativeTSNAck = TSN(try reader.u32())
        advertisedReceiverWindowCredit = try reader.u32()
        let gapCount = Int(try reader.u16())
        let duplicateCount = Int(try reader.u16())
        // The counts must describe exactly the bytes that follow.
        guard reader.remaining == 4 * (gapCount + duplicateCount) else {
            throw Self.malformed(
                "\(gapCount) gap blocks and \(duplicateCount) duplicates do not fill \(reader.remaining) bytes")
        }
        gapAckBlocks = try SackLists.readBlocks(&reader, count: gapCount)
        duplicateTSNs = try SackLists.readTSNs(&reader, count: duplicateCount)
    }
}

/// The flag bits of SACK and NR-SACK that carry CMT's DAC packet count, as usrsctp does: bit 0x80 says the count
/// is present, bits 0x60 hold it (1 to 3). Peers that do not do CMT ignore reserved flags (RFC 9260 §3.2).
public enum DelayedAckFlags {
    static let present: UInt8 = 0x80

    static func encode(_ count: UInt8) -> UInt8 {
        count == 0 ? 0 : present | (min(count, 3) << 5)
    }

    static func decode(_ flags: UInt8) -> UInt8 {
        flags & present == 0 ? 0 : (flags >> 5) & 0x3
    }
}

/// Gap block and duplicate TSN lists of SACK and NR-SACK.
enum SackLists {
    static func put(_ blocks: [GapAckBlock], into fields: inout FieldWriter) {
        for block in blocks {
            fields.put(block.start)
            fields.put(block.end)
        }
    }

    /// Reads `count` blocks; callers have checked that the bytes are present.
    static func readBlocks(_ reader: inout WireReader, count: Int) throws(WireError) -> [GapAckBlock] {
        guard count * 4 <= reader.remaining else { throw reader.truncated }
        var blocks: [GapAckBlock] = []
        blocks.reserveCapacity(count)
        for _ in 0..<count {
            let start = try reader.u16()
            blocks.append(GapAckBlock(start: start, end: try reader.u16()))
        }
        return blocks
    }

    static func readTSNs(_ reader: inout WireReader, count: Int) throws(WireError) -> [TSN] {
        guard count * 4 <= reader.remaining else { throw reader.truncated }
        var tsns: [TSN] = []
        tsns.reserveCapacity(count)
        for _ in 0..<count { tsns.append(TSN(try reader.u32())) }
        return tsns
    }
}
