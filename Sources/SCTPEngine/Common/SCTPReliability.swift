/// How hard the engine tries to deliver one message: fully reliable (RFC 9260), or partially reliable with one of
/// the PR-SCTP policies of RFC 7496, under which the sender gives the message up ("abandons" it, RFC 3758 §3.4) and
/// tells the receiver to skip it with FORWARD-TSN.
///
/// A policy other than `.reliable` takes effect only on an association where both ends announced
/// Forward-TSN-Supported (RFC 3758 §3.3; see `SCTPConfiguration.partialReliability`), except that a timed message
/// whose lifetime ends before it was first sent is dropped in any case (RFC 3758 §4.1 TR3: no TSN was assigned, so
/// nothing needs skipping). On an association without PR-SCTP a message that was sent once is delivered reliably.
public enum SCTPReliability: Sendable, Equatable {
    /// Retransmitted until acknowledged.
    case reliable
    /// RFC 7496 §4.1 (timed reliability, RFC 3758 §4.1): sent and retransmitted only while it can still arrive
    /// within `lifetime` of the `send` call; after that it is abandoned. When even the fastest path takes more than
    /// half of `lifetime` to deliver it, its first transmission may arrive up to half the lifetime after that path
    /// would deliver it (a path slower than the lifetime would otherwise carry none), so it may arrive after it.
    case timed(lifetime: SCTPDuration)
    /// RFC 7496 §4.2 (limited retransmissions): sent at most `1 + maxRetransmissions` times; 0 sends it once.
    case limitedRetransmissions(Int)
}
