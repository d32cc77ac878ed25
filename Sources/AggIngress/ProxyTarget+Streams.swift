import AggProtocol
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
