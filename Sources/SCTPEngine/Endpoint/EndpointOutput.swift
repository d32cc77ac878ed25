import DequeModule

/// The queues an endpoint and its associations fill and the driver drains: datagrams to send and application
/// events. Shared by reference so each association appends without copying.
final class EndpointOutput {
    var datagrams = Deque<SCTPDatagram>()
    var events = Deque<SCTPEvent>()
    /// Packets dropped on input, by reason, for metrics.
    var dropped: [SCTPDropReason: Int] = [:]
    /// Requests refused because a limit was reached, for metrics.
    var refusals = SCTPLimitRefusals()
    /// What PR-SCTP abandoned and skipped, for metrics.
    var partialReliability = SCTPPartialReliabilityCounters()

    func drop(_ reason: SCTPDropReason) { dropped[reason, default: 0] += 1 }
}
