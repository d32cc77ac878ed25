/// When the sender gives up on a message (RFC 3758 §3.4 "abandoned"): the `SCTPReliability` of a `send`, turned
/// into what the send and retransmission queues evaluate.
enum AbandonmentRule: Sendable, Equatable {
    /// Fully reliable.
    case never
    /// Timed reliability: abandoned unless it can arrive before this instant.
    case deadline(SCTPTime)
    /// Limited retransmissions: abandoned rather than sent more than `1 + n` times.
    case afterRetransmissions(Int)

    init(_ reliability: SCTPReliability, now: SCTPTime) {
        switch reliability {
        case .reliable: self = .never
        case .timed(let lifetime): self = .deadline(now + lifetime)
        case .limitedRetransmissions(let n): self = .afterRetransmissions(max(0, n))
        }
    }

    /// RFC 3758 §4.1 TR4: "Before transmitting or retransmitting a message for which a TSN is already assigned, the
    /// SCTP sender MUST evaluate the lifetime of the message"; RFC 7496 §4.2: a message is abandoned once it would
    /// be retransmitted more often than allowed. `transmissions` counts the ones already made.
    func abandonsRetransmission(transmissions: Int, arrival: SCTPTime) -> Bool {
        switch self {
        case .never: return false
        case .deadline(let deadline): return deadline <= arrival
        case .afterRetransmissions(let n): return transmissions > n
        }
    }
}
