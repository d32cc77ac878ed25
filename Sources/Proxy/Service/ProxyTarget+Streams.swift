import SCTPEngine

// MARK: - Ingress vocabulary ↔ stream protocol

extension StreamTarget {
    /// The OPEN target for what a local application asked the ingress for.
    public init(_ target: ProxyTarget) {
        switch target {
        case .address(let ip, let port): self.init(host: .ip(ip), port: port)
        case .domain(let name, let port): self.init(host: .domain(name), port: port)
        }
    }
}

extension ProxyTarget {
    /// The ingress form of an OPEN target.
    public init(_ target: StreamTarget) {
        switch target.host {
        case .ip(let ip): self = .address(ip, port: target.port)
        case .domain(let name): self = .domain(name, port: target.port)
        }
    }
}

extension ProxyFailure {
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
