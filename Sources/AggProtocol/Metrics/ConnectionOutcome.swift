/// How a proxied connection's open ended, as the `outcome` label of `agg_proxy_connections_total`.
public enum ConnectionOutcome: String, CaseIterable, Sendable {
    case success
    case refused
    case networkUnreachable = "network_unreachable"
    case hostUnreachable = "host_unreachable"
    case dnsFailure = "dns_failure"
    case timeout
    case notAllowed = "not_allowed"
    case tooManyStreams = "too_many_streams"
    case serverUnavailable = "server_unavailable"
    case generalFailure = "general_failure"

    /// The server's view: the OPEN-RESULT it answered.
    package init(_ code: OpenResultCode) {
        switch code {
        case .ok: self = .success
        case .generalFailure: self = .generalFailure
        case .notAllowed: self = .notAllowed
        case .networkUnreachable: self = .networkUnreachable
        case .hostUnreachable: self = .hostUnreachable
        case .refused: self = .refused
        case .timeout: self = .timeout
        case .dnsFailure: self = .dnsFailure
        case .tooManyStreams: self = .tooManyStreams
        }
    }
}
