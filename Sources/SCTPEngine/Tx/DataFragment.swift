import NIOCore

/// One piece of a user message queued to become a DATA chunk: everything but the TSN, which `OutstandingData`
/// assigns when the fragment is first sent (a queued fragment has none yet: TSNs follow the order of sending), plus
/// the PR-SCTP rule the wire chunk does not carry. From then on the chunk is Wire's `DataChunk`.
struct DataFragment: Sendable {
    var streamID: StreamID
    /// The message's SSN; 0 for unordered messages, whose SSN the receiver ignores (RFC 9260 §3.3.1).
    var ssn: SSN
    var ppid: PPID
    var isUnordered = false
    /// B bit: the first fragment of the message.
    var isBeginning = true
    /// E bit: the last fragment of the message.
    var isEnding = true
    /// I bit (RFC 7053): ask the peer to SACK without delay.
    var isImmediate = false
    var payload: ByteBuffer
    /// PR-SCTP: when the message this fragment belongs to is given up on (RFC 7496).
    var abandonment = AbandonmentRule.never
}
