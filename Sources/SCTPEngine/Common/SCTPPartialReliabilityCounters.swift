/// What partial reliability (RFC 3758, RFC 7496) did since the endpoint started, summed over its associations: the
/// figures behind the daemons' PR-SCTP metrics.
public struct SCTPPartialReliabilityCounters: Sendable, Equatable {
    /// Messages abandoned before their first transmission (RFC 3758 §4.1 TR3): no TSN, no FORWARD-TSN needed.
    public var messagesAbandonedUnsent = 0
    /// Messages abandoned after they were sent at least once: their TSNs are skipped with FORWARD-TSN.
    public var messagesAbandonedSent = 0
    /// FORWARD-TSN chunks sent, retransmissions included.
    public var forwardTSNsSent = 0
    /// FORWARD-TSN chunks received on associations that negotiated PR-SCTP, stale ones included.
    public var forwardTSNsReceived = 0

    /// Every message abandoned, sent or not.
    public var messagesAbandoned: Int { messagesAbandonedUnsent + messagesAbandonedSent }

    public init() {}
}
