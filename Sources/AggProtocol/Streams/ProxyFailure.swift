/// Why an upstream could not be opened, in the vocabulary shared by SOCKS5, SOCKS4 and HTTP replies.
public enum ProxyFailure: Error, Hashable, Sendable, CaseIterable {
    /// The target refused the connection (RST).
    case refused
    /// No route to the target's network.
    case unreachable
    /// The target host did not answer.
    case hostUnreachable
    /// The target's name did not resolve.
    case dnsFailure
    /// The connection attempt timed out.
    case timeout
    /// Policy forbids this target.
    case notAllowed
    /// Anything else went wrong.
    case generalFailure
    /// The aggregation server (or the association to it) is not available.
    case serverUnavailable
    /// Every stream of the association is in use, and none freed in time.
    case tooManyStreams

    /// The failure the ingress reports for a failed OPEN-RESULT; nil for `.ok`.
    public init?(_ code: OpenResultCode) {
        switch code {
        case .ok: return nil
        case .generalFailure: self = .generalFailure
        case .tooManyStreams: self = .tooManyStreams
        case .notAllowed: self = .notAllowed
        case .networkUnreachable: self = .unreachable
        case .hostUnreachable: self = .hostUnreachable
        case .refused: self = .refused
        case .timeout: self = .timeout
        case .dnsFailure: self = .dnsFailure
        }
    }
}
