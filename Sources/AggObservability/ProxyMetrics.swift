import AggProtocol
import CoreMetrics
import Prometheus
import SCTPEngine

/// The proxy's own counters (connections by outcome, stream bytes relayed each way, authentications, refusals by
/// reason), kept through
/// swift-metrics in the daemon's Prometheus registry and mirrored as plain values for `/status.json`. Every
/// service owns one, so two daemons in one process (the demo, the tests) keep separate figures. Confined to the
/// service's event loop; the registry itself may be read from any thread.
public final class ProxyMetrics: StreamSessionMetrics, @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    /// The values so far, for the JSON snapshot (the UDP fields are the monitor's to fill).
    private(set) var values = StatusSnapshot.Counters()

    private let connections: [ConnectionOutcome: CoreMetrics.Counter]
    private let relayedUp: CoreMetrics.Counter
    private let relayedDown: CoreMetrics.Counter
    private let authenticated: CoreMetrics.Counter
    private let authenticationFailed: CoreMetrics.Counter
    private let associationsRevoked: CoreMetrics.Counter
    private let streamWaits: CoreMetrics.Counter
    private var groupChanges: (failover: CoreMetrics.Counter, back: CoreMetrics.Counter, inUse: Prometheus.Gauge)?
    private let refusalCounters: [Refusal: CoreMetrics.Counter]
    /// Refusals so far by reason, for tests, the log and status displays.
    private(set) var refusals: [Refusal: Int] = [:]
    /// The engine's own refusal counts when last synchronised (`syncEngineRefusals`).
    private var engineRefusals = SCTPLimitRefusals()

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        // swift-metrics counters whose handlers the registry makes with a HELP text (the factory alone gives none).
        func counter(_ name: String, _ help: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
            let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
            return CoreMetrics.Counter(
                label: name, dimensions: dimensions,
                handler: registry.makeCounter(descriptor: descriptor, labels: dimensions), factory: factory)
        }
        let connectionsHelp = "Proxied connections by how their open ended."
        var connections: [ConnectionOutcome: CoreMetrics.Counter] = [:]
        for outcome in ConnectionOutcome.allCases {
            connections[outcome] = counter(
                "agg_proxy_connections_total", connectionsHelp, [("outcome", outcome.rawValue)])
        }
        self.connections = connections
        let relayedHelp = "Stream payload bytes relayed toward the server (up) and toward the client (down)."
        relayedUp = counter("agg_proxy_relayed_bytes_total", relayedHelp, [("direction", "up")])
        relayedDown = counter("agg_proxy_relayed_bytes_total", relayedHelp, [("direction", "down")])
        let associationsHelp = "Associations that passed or failed authentication."
        authenticated = counter("agg_associations_total", associationsHelp, [("outcome", "authenticated")])
        authenticationFailed = counter("agg_associations_total", associationsHelp, [("outcome", "auth_failure")])
        associationsRevoked = counter("agg_associations_total", associationsHelp, [("outcome", "key_revoked")])
        streamWaits = counter(
            "agg_stream_waits_total", "New connections that found every stream in use and waited for one.", [])
        let refusalsHelp = "Requests a defence refused, by reason."
        var refusalCounters: [Refusal: CoreMetrics.Counter] = [:]
        for reason in Refusal.allCases {
            refusalCounters[reason] = counter("agg_refusals_total", refusalsHelp, [("reason", reason.rawValue)])
        }
        self.refusalCounters = refusalCounters
    }

    /// A new association was refused: its key holds `limits.associations-per-key` already.
    package func recordAssociationRefused() {
        recordRefusal(.associationsPerKey)
    }

    /// An association ended because its key was removed or changed.
    package func recordAssociationRevoked() {
        associationsRevoked.increment()
        values.associationsRevoked += 1
    }

    /// A defence or a resource limit refused `count` requests for `reason`.
    package func recordRefusal(_ reason: Refusal, count: Int = 1) {
        guard count > 0 else { return }
        refusalCounters[reason]?.increment(by: Int64(count))
        refusals[reason, default: 0] += count
    }

    /// A proxied connection's open ended with `outcome`.
    package func recordConnection(_ outcome: ConnectionOutcome) {
        connections[outcome]?.increment()
        values.connections[outcome.rawValue, default: 0] += 1
    }

    /// Stream payload relayed toward the server (`up`) or toward the client.
    package func recordRelayed(_ bytes: Int, up: Bool) {
        guard bytes > 0 else { return }
        if up {
            relayedUp.increment(by: Int64(bytes))
            values.bytesUp += bytes
        } else {
            relayedDown.increment(by: Int64(bytes))
            values.bytesDown += bytes
        }
    }

    /// Adds what the engine refused since the previous call (the engine keeps running totals).
    func syncEngineRefusals(_ engine: SCTPLimitRefusals) {
        recordRefusal(.pathsPerAssociation, count: engine.paths - engineRefusals.paths)
        recordRefusal(.tsnGaps, count: engine.tsnGaps - engineRefusals.tsnGaps)
        engineRefusals = engine
    }

    /// A new connection found every stream in use and waits for one.
    package func recordStreamWait() {
        streamWaits.increment()
        values.streamWaits += 1
    }

    /// aggclient with `count` server groups: their metrics exist from now on (`agg_server_group_changes_total`,
    /// `agg_server_group_in_use`).
    package func configureServerGroups(count: Int) {
        guard count > 1, groupChanges == nil else { return }
        let factory = PrometheusMetricsFactory(registry: registry)
        let help = "Moves to another server group: failover (the one in use stopped answering) or return."
        func counter(_ reason: String) -> CoreMetrics.Counter {
            let descriptor = MetricNameDescriptor(
                metricName: "agg_server_group_changes_total", unitName: "", helpText: help)
            let dimensions = [("reason", reason)]
            return CoreMetrics.Counter(
                label: "agg_server_group_changes_total", dimensions: dimensions,
                handler: registry.makeCounter(descriptor: descriptor, labels: dimensions), factory: factory)
        }
        let gauge = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "agg_server_group_in_use", unitName: "",
                helpText: "The server group taking new connections, from 0 in order of preference; -1: none."))
        gauge.set(Double(-1))
        groupChanges = (counter("failover"), counter("return"), gauge)
        var groups = StatusSnapshot.ServerGroupCounters()
        groups.count = count
        values.serverGroups = groups
    }

    /// The server group in use changed (nil: none), with its first address.
    package func recordServerGroup(_ group: Int?, server: String?) {
        guard groupChanges != nil else { return }
        groupChanges?.inUse.set(Double(group ?? -1))
        values.serverGroups?.inUse = group
        values.serverGroups?.server = server
    }

    /// The server in use stopped answering: the client moves to the next group.
    package func recordFailover() {
        groupChanges?.failover.increment()
        values.serverGroups?.failovers += 1
    }

    /// A more preferred server answered again and takes new connections.
    package func recordReturn() {
        groupChanges?.back.increment()
        values.serverGroups?.returns += 1
    }

    /// An association passed or failed authentication.
    package func recordAuthentication(succeeded: Bool) {
        if succeeded {
            authenticated.increment()
            values.associationsAuthenticated += 1
        } else {
            authenticationFailed.increment()
            values.authenticationFailures += 1
        }
    }
}
