import AggProtocol
import AggTransport
import NIOCore
import NIOPosix
import SCTPEngine

extension EgressConnector {
    /// The address a UDP flow's datagrams go to: the port and every candidate address checked against the policy
    /// as for a TCP connection, a name resolved through the same `PolicyResolver` and `LookupScheduler` (A and
    /// AAAA; the first allowed IPv4 address, else the first allowed IPv6 one). Fails with `EgressError` only.
    public func resolveDatagramDestination(
        _ target: StreamTarget, on loop: any EventLoop, owner: LookupScheduler.Owner = LookupScheduler.noOwner
    ) -> EventLoopFuture<SocketAddress> {
        switch checkedLiteral(target) {
        case .failure(let error): return loop.makeFailedFuture(error)
        case .success(let literal?): return loop.makeSucceededFuture(literal)
        case .success(nil): break
        }
        guard case .domain(let name) = target.host else { preconditionFailure("IP targets are literals") }
        let resolver = PolicyResolver(loop: loop, policy: policy, scheduler: lookups, owner: owner)
        let port = Int(target.port)
        let v4 = resolver.initiateAQuery(host: name, port: port).map { Result<[SocketAddress], any Error>.success($0) }
            .recover { .failure($0) }
        let v6 = resolver.initiateAAAAQuery(host: name, port: port).map {
            Result<[SocketAddress], any Error>.success($0)
        }.recover { .failure($0) }
        return v4.and(v6).flatMapThrowing { v4, v6 in
            if let first = ((try? v4.get()) ?? []).first ?? ((try? v6.get()) ?? []).first { return first }
            if let refused = resolver.refused.first {
                let list = resolver.refused.map { "\($0.address) is \($0.reason)" }.joined(separator: ", ")
                throw EgressError(
                    .notAllowed, "\(name) resolves only to refused addresses: \(list)", refusal: refused.refusal)
            }
            for case .failure(let error) in [v4, v6] {
                if let lookup = error as? LookupRefusal {
                    throw EgressError(.dnsFailure, "\(lookup)", refusal: lookup.refusal)
                }
                throw EgressError(.dnsFailure, "\(error)")
            }
            throw EgressError(.dnsFailure, "\(name) has no addresses")
        }
    }
}
