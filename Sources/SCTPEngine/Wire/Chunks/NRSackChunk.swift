import NIOCore

/// NR-SACK (draft-natarajan-tsvwg-sctp-nrsack §4.1, type 16): a SACK that also reports non-renegable gap blocks,
/// used by CMT so that data delivered out of order can leave the send buffer.
public struct NRSackChunk: ChunkBody {
    public static let type: UInt8 = 16
    /// A: all out-of-order data reported is non-renegable.
    static let allNonRenegableFlag: UInt8 = 0x01

    public var cumulativeTSNAck: TSN
    public var advertisedReceiverWindowCredit: UInt32
    public var gapAckBlocks: [GapAckBlock]
    public var nrGapAckBlocks: [GapAckBlock]
    public var duplicateTSNs: [TSN]
    public var isAllNonRenegable: Bool
    /// CMT's DAC packet count, as in `SackChunk`.
    public var delayedAckPacketCount: UInt8

    public init(
        cumulativeTSNAck: TSN, advertisedReceiverWindowCredit: UInt32, gapAckBlocks: [GapAckBlock] = [],
        nrGapAckBlocks: [GapAckBlock] = [], duplicateTSNs: [TSN] = [], isAllNonRenegable: Bool = false,
        delayedAckPacketCount: UInt8 = 0
    ) {
        self.delayedAckPacketCount = min(delayedAckPacketCount, 3)
        self.cumulativeTSNAck = cumulativeTSNAck
        self.advertisedReceiverWindowCredit = advertisedReceiverWindowCredit
        self.gapAckBlocks = gapAckBlocks
        self.nrGapAckBlocks = nrGapAckBlocks
        self.duplicateTSNs = duplicateTSNs
        self.isAllNonRenegable = isAllNonRenegable
    }

    public var flags: UInt8 {
        (isAllNonRenegable ? Self.allNonRenegableFlag : 0) | DelayedAckFlags.encode(delayedAckPacketCount)
    }
    public var valueLength: Int { 16 + 4 * (gapAckBlocks.count + nrGapAckBlocks.count + duplicateTSNs.count) }

    /// Cumulative TSN ack, a_rwnd, the three counts (gap blocks, NR gap blocks, duplicates), 16 reserved bits,
    /// then the gap blocks, the NR gap blocks and the duplicate TSNs.
    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeFields(length: valueLength) { fields in
            fields.put(cumulativeTSNAck.rawValue)
            fields.put(advertisedReceiverWindowCredit)
            fields.put(UInt16(gapAckBlocks.count))
            fields.put(UInt16(nrGapAckBlocks.count))
            fields.put(UInt16(duplicateTSNs.count))
            fields.put(UInt16(0))
            SackLists.put(gapAckBlocks, into: &fields)
            SackLists.put(nrGapAckBlocks, into: &fields)
            for tsn in duplicateTSNs { fields.put(tsn.rawValue) }
        }
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        delayedAckPacketCount = DelayedAckFlags.decode(flags)
        var reader = Self.reader(value)
        cumulativeTSNAck = TSN(try reader.u32())
        advertisedReceiverWindowCredit = try reader.u32()
        let gapCount = Int(try reader.u16())
        let nrGapCount = Int(try reader.u16())
        let duplicateCount = Int(try reader.u16())
        _ = try reader.u16()
        guard reader.remaining == 4 * (gapCount + nrGapCount + duplicateCount) else {
            throw Self.malformed(
                "\(gapCount) gap blocks, \(nrGapCount) NR gap blocks and \(duplicateCount) duplicates "
                    + "do not fill \(reader.remaining) bytes")
        }
        gapAckBlocks = try SackLists.readBlocks(&reader, count: gapCount)
        nrGapAckBlocks = try SackLists.readBlocks(&reader, count: nrGapCount)
        duplicateTSNs = try SackLists.readTSNs(&reader, count: duplicateCount)
        isAllNonRenegable = flags & Self.allNonRenegableFlag != 0
    }
}
