import CoreMetrics
import Prometheus

/// The proxy's own counters (connections by outcome, stream bytes relayed each way, authentications), kept through
/// swift-metrics in the daemon's Prometheus registry and mirrored as plain values for `/status.json`. Every
/// service owns one, so two daemons in one process (the demo, the tests) keep separate figures. Confined to the
/// service's event loop; the registry itself may be read from any thread.
public final class ProxyMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    /// The values so far, for the JSON snapshot (the UDP fields are the monitor's to fill).
    private(set) var values = StatusSnapshot.Counters()

    private let connections: [ConnectionOutcome: CoreMetrics.Counter]
    private let relayedUp: CoreMetrics.Counter
    private let relayedDown: CoreMetrics.Counter
    private let authenticated: CoreMetrics.Counter
    private let authenticationFailed: CoreMetrics.Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        var connections: [ConnectionOutcome: CoreMetrics.Counter] = [:]
        for outcome in ConnectionOutcome.allCases {
            connections[outcome] = CoreMetrics.Counter(
                label: "agg_proxy_connections_total", dimensions: [("outcome", outcome.rawValue)], factory: factory)
        }
        self.connections = connections
        relayedUp = CoreMetrics.Counter(
            label: "agg_proxy_relayed_bytes_total", dimensions: [("direction", "up")], factory: factory)
        relayedDown = CoreMetrics.Counter(
            label: "agg_proxy_relayed_bytes_total", dimensions: [("direction", "down")], factory: factory)
        authenticated = CoreMetrics.Counter(
            label: "agg_associations_total", dimensions: [("outcome", "authenticated")], factory: factory)
        authenticationFailed = CoreMetrics.Counter(
            label: "agg_associations_total", dimensions: [("outcome", "auth_failure")], factory: factory)
    }

    /// A proxied connection's open ended with `outcome`.
    func recordConnection(_ outcome: ConnectionOutcome) {
        connections[outcome]?.increment()
        values.connections[outcome.rawValue, default: 0] += 1
    }

    /// Stream payload relayed toward the server (`up`) or toward the client.
    func recordRelayed(_ bytes: Int, up: Bool) {
        guard bytes > 0 else { return }
        if up {
            relayedUp.increment(by: Int64(bytes))
            values.bytesUp += bytes
        } else {
            relayedDown.increment(by: Int64(bytes))
            values.bytesDown += bytes
        }
    }

    /// An association passed or failed authentication.
    func recordAuthentication(succeeded: Bool) {
        if succeeded {
            authenticated.increment()
            values.associationsAuthenticated += 1
        } else {
            authenticationFailed.increment()
            values.authenticationFailures += 1
        }
    }
}
