import AggProtocol

/// The outcome label of a connection the client's ingress opened, from the `ProxyFailure` its connector reported.
extension ConnectionOutcome {
    /// The client's view: how its connector's future completed.
    package init(_ result: Result<Void, any Error>) {
        guard case .failure(let error) = result else {
            self = .success
            return
        }
        switch error as? ProxyFailure {
        case .refused: self = .refused
        case .unreachable: self = .networkUnreachable
        case .hostUnreachable: self = .hostUnreachable
        case .dnsFailure: self = .dnsFailure
        case .timeout: self = .timeout
        case .notAllowed: self = .notAllowed
        case .serverUnavailable: self = .serverUnavailable
        case .tooManyStreams: self = .tooManyStreams
        case .generalFailure, nil: self = .generalFailure
        }
    }
}
