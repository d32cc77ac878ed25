/// A resource limit that refused something, as the `limit` label of `agg_limit_refusals_total`.
public enum ResourceLimit: String, CaseIterable, Sendable {
    /// An OPEN beyond `limits.streams-per-association` (refused with OPEN-RESULT "too many streams").
    case streamsPerAssociation = "streams_per_association"
    /// DATA that would take an association past `limits.buffered-bytes-per-association` (its stream is reset), or an
    /// OPEN while the association is at it (refused).
    case bufferedBytesPerAssociation = "buffered_bytes_per_association"
    /// A path beyond `limits.paths-per-association`: an ASCONF Add IP refused or an INIT-ACK address ignored.
    case pathsPerAssociation = "paths_per_association"
    /// A DATA chunk that would open one more gap in the TSN sequence than the engine tracks (16,384): dropped
    /// unacknowledged.
    case tsnGaps = "tsn_gaps"
    /// A PONG beyond the control reply budget (`ControlReplyBudget`): the PING goes unanswered.
    case controlReplies = "control_replies"
    /// A new association of a key that holds `limits.associations-per-key` live ones (refused with ABORT).
    case associationsPerKey = "associations_per_key"
}
