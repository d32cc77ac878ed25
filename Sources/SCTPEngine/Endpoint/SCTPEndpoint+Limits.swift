/// The endpoint's counters for metrics: what resource limits refused and what partial reliability skipped.
extension SCTPEndpoint {
    /// Refusals at a resource limit since the endpoint started.
    public var limitRefusals: SCTPLimitRefusals { output.refusals }

    /// What partial reliability abandoned and skipped since the endpoint started (RFC 3758).
    public var partialReliabilityCounters: SCTPPartialReliabilityCounters { output.partialReliability }

    /// Whether both ends of the association announced Forward-TSN-Supported (RFC 3758 §3.3), so that messages sent
    /// with a `SCTPReliability` other than `.reliable` can be abandoned after their first transmission. False for an
    /// unknown association, and before the handshake completes.
    public func isPartialReliabilityNegotiated(_ id: SCTPAssociationID) -> Bool {
        associations[id]?.isPartialReliabilityNegotiated ?? false
    }
}
