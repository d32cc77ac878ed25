/// Why a daemon refused something a peer or a local application asked for, as the `reason` label of
/// `agg_refusals_total`. Each defence that turns a request away counts it here, so an operator sees an attack (or a
/// misconfiguration) in the metrics rather than only in the log.
public enum Refusal: String, CaseIterable, Sendable {
    /// The status endpoint refused a request: malformed, a body too large, not complete in time, a method other
    /// than GET or HEAD.
    case statusRequest = "status_request"
    /// Egress to an address in a range the policy refuses (loopback, private, link-local, the cloud wire server, …).
    case egressAddress = "egress_address"
    /// Egress to one of the server's own addresses.
    case egressOwnAddress = "egress_own_address"
    /// Egress to a destination port on the deny list (`egress-deny-port`).
    case egressPort = "egress_port"
    /// A name lookup refused because its association's, or the server's, lookups in progress and queued were at
    /// their limit.
    case resolverBusy = "resolver_busy"
    /// A name lookup that did not start or finish within its timeout.
    case resolverTimeout = "resolver_timeout"
    /// A SOCKS5 or HTTP proxy client that presented no credentials or wrong ones.
    case proxyAuthentication = "proxy_authentication"
    /// A SOCKS4 or SOCKS4a request while the proxy requires credentials (SOCKS4 carries no password).
    case socks4WithoutPassword = "socks4_without_password"
    /// A transparent connection (nftables `redirect` or `tproxy`) aimed at one of aggclient's own listeners: a loop.
    case transparentLoop = "transparent_loop"
    /// A transparent connection whose original destination could not be read (not redirected by the kernel).
    case transparentDestination = "transparent_destination"

    // MARK: - Resource limits

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
