/// Counts of what the endpoint refused because a resource limit was reached, since it started: the figures behind
/// the daemons' `agg_refusals_total` metric.
public struct SCTPLimitRefusals: Sendable, Equatable {
    /// Paths refused at `SCTPConfiguration.maxPathsPerAssociation`: INIT-ACK addresses ignored and ASCONF Add IP
    /// Address requests answered with "Operation Refused Due to Resource Shortage".
    public var paths = 0
    /// DATA chunks refused because they would open one more gap in the TSN sequence than the data tracker holds
    /// (16,384 ranges): dropped unacknowledged, the peer sends them again.
    public var tsnGaps = 0

    public init() {}
}
