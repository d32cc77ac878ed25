/// A gap ack block of a SACK: TSN offsets from the cumulative TSN ack, inclusive (RFC 9260 §3.3.4).
typealias GapBlock = (start: UInt16, end: UInt16)

/// The content of a SACK or NR-SACK in the engine's own terms, both as the data tracker builds it and as the
/// retransmission queue consumes it; the association maps Wire's `SackChunk` onto it and back.
struct SackInfo: Sendable {
    var cumulativeTSNAck: TSN
    /// a_rwnd: the receiver's free buffer space in bytes.
    var advertisedReceiverWindowCredit: UInt32
    /// Blocks of TSNs received above the cumulative ack, ascending.
    var gapAckBlocks: [GapBlock]
    /// NR-SACK: blocks of TSNs the receiver will not renege (already delivered); empty in a plain SACK.
    var nrGapAckBlocks: [GapBlock]
    var duplicateTSNs: [TSN]
    /// CMT DAC: how many DATA packets the receiver got since its previous SACK (1 when not reported).
    var packetsSinceLastSack: Int

    init(
        cumulativeTSNAck: TSN, advertisedReceiverWindowCredit: UInt32, gapAckBlocks: [GapBlock] = [],
        nrGapAckBlocks: [GapBlock] = [], duplicateTSNs: [TSN] = [], packetsSinceLastSack: Int = 1
    ) {
        self.cumulativeTSNAck = cumulativeTSNAck
        self.advertisedReceiverWindowCredit = advertisedReceiverWindowCredit
        self.gapAckBlocks = gapAckBlocks
        self.nrGapAckBlocks = nrGapAckBlocks
        self.duplicateTSNs = duplicateTSNs
        self.packetsSinceLastSack = packetsSinceLastSack
    }
}
