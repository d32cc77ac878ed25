import NIOCore

/// One piece of a user message ready to become a DATA chunk: everything but the TSN, which `OutstandingData`
/// assigns when the fragment is sent.
struct DataFragment: Sendable {
    var streamID: StreamID
    /// The message's SSN; 0 for unordered messages, whose SSN the receiver ignores (RFC 9260 §3.3.1).
    var ssn: SSN
    var ppid: PPID
    var isUnordered: Bool
    /// B bit: the first fragment of the message.
    var isBeginning: Bool
    /// E bit: the last fragment of the message.
    var isEnding: Bool
    /// I bit (RFC 7053): ask the peer to SACK without delay.
    var isImmediate: Bool
    var payload: ByteBuffer
    /// PR-SCTP: when the message this fragment belongs to is given up on (RFC 7496).
    var abandonment: AbandonmentRule

    init(
        streamID: StreamID, ssn: SSN, ppid: PPID, isUnordered: Bool = false, isBeginning: Bool = true,
        isEnding: Bool = true, isImmediate: Bool = false, payload: ByteBuffer, abandonment: AbandonmentRule = .never
    ) {
        self.streamID = streamID
        self.ssn = ssn
        self.ppid = ppid
        self.isUnordered = isUnordered
        self.isBeginning = isBeginning
        self.isEnding = isEnding
        self.isImmediate = isImmediate
        self.payload = payload
        self.abandonment = abandonment
    }
}

/// A DATA chunk as sent (and resent): a fragment with its TSN. The association maps it onto Wire's `DataChunk`.
struct OutgoingDataChunk: Sendable {
    var tsn: TSN
    var fragment: DataFragment

    var streamID: StreamID { fragment.streamID }
    var ssn: SSN { fragment.ssn }
    var ppid: PPID { fragment.ppid }
    var isUnordered: Bool { fragment.isUnordered }
    var isBeginning: Bool { fragment.isBeginning }
    var isEnding: Bool { fragment.isEnding }
    var isImmediate: Bool { fragment.isImmediate }
    var payload: ByteBuffer { fragment.payload }
}
