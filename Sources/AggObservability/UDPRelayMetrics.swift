import CoreMetrics
import Prometheus

/// The UDP relay's counters (flows, datagrams and bytes each way, drops by reason), in the daemon's Prometheus
/// registry beside `ProxyMetrics` and as plain values for status displays. Confined to the service's event loop.
public final class UDPRelayMetrics: @unchecked Sendable {
    /// Why a datagram was dropped.
    public enum Drop: String, CaseIterable, Sendable {
        /// From another address than the SOCKS5 client that made the UDP ASSOCIATE (RFC 1928 §7).
        case foreignSource = "foreign_source"
        /// FRAG other than 0 (RFC 1928 §7).
        case fragmented
        /// A malformed SOCKS5 UDP header or UDP relay message.
        case malformed
        /// No association to carry it.
        case noAssociation = "no_association"
        /// A flow limit or a queue limit refused it.
        case limit
        /// The egress policy or the resolver refused its destination.
        case refused
        /// A reply from another address than the flow's destination.
        case unexpectedSource = "unexpected_source"
        /// For a flow neither side knows (any more).
        case unknownFlow = "unknown_flow"
        /// The queue it would wait in was full: the association's send queue (a client that does not take what
        /// its flows receive) or the flow socket's write buffer (an uplink slower than the flow).
        case congested
        /// Router mode: aimed at aggclient's own tproxy socket, so it would come straight back in.
        case loop
    }

    /// Plain values for status displays.
    public struct Values: Equatable, Sendable {
        public var flowsOpened = 0
        public var datagramsUp = 0
        public var datagramsDown = 0
        public var bytesUp = 0
        public var bytesDown = 0
        public var dropped: [String: Int] = [:]
    }

    private(set) public var values = Values()
    private let flows: CoreMetrics.Counter
    private let datagramsUp: CoreMetrics.Counter
    private let datagramsDown: CoreMetrics.Counter
    private let bytesUp: CoreMetrics.Counter
    private let bytesDown: CoreMetrics.Counter
    private let drops: [Drop: CoreMetrics.Counter]
    private let expired: CoreMetrics.Counter
    private var expiredSynced = 0

    public init(registry: PrometheusCollectorRegistry) {
        let factory = PrometheusMetricsFactory(registry: registry)
        func counter(_ name: String, _ help: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
            let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
            return CoreMetrics.Counter(
                label: name, dimensions: dimensions,
                handler: registry.makeCounter(descriptor: descriptor, labels: dimensions), factory: factory)
        }
        flows = counter("agg_udp_relay_flows_total", "UDP flows opened (client port and destination).", [])
        let datagramsHelp = "UDP datagrams relayed toward the server side's destinations (up) and back (down)."
        datagramsUp = counter("agg_udp_relay_datagrams_total", datagramsHelp, [("direction", "up")])
        datagramsDown = counter("agg_udp_relay_datagrams_total", datagramsHelp, [("direction", "down")])
        let bytesHelp = "UDP payload bytes relayed up and down."
        bytesUp = counter("agg_udp_relay_bytes_total", bytesHelp, [("direction", "up")])
        bytesDown = counter("agg_udp_relay_bytes_total", bytesHelp, [("direction", "down")])
        var drops: [Drop: CoreMetrics.Counter] = [:]
        for reason in Drop.allCases {
            drops[reason] = counter(
                "agg_udp_relay_dropped_total", "UDP datagrams dropped by the relay, by reason.",
                [("reason", reason.rawValue)])
        }
        self.drops = drops
        expired = counter(
            "agg_udp_relay_expired_total",
            "UDP datagrams the association abandoned because their lifetime ran out (PR-SCTP).", [])
    }

    package func recordFlowOpened() {
        flows.increment()
        values.flowsOpened += 1
    }

    /// A datagram of `bytes` payload bytes relayed up (toward the destination) or down.
    package func recordDatagram(_ bytes: Int, up: Bool) {
        if up {
            datagramsUp.increment()
            bytesUp.increment(by: Int64(bytes))
            values.datagramsUp += 1
            values.bytesUp += bytes
        } else {
            datagramsDown.increment()
            bytesDown.increment(by: Int64(bytes))
            values.datagramsDown += 1
            values.bytesDown += bytes
        }
    }

    /// The engine's count of abandoned messages (only UDP datagrams are sent partially reliable); the counter
    /// takes what was added since the last call.
    func syncExpired(_ total: Int) {
        guard total > expiredSynced else { return }
        expired.increment(by: Int64(total - expiredSynced))
        expiredSynced = total
    }

    /// The figures for the status snapshot.
    func counters(expired: Int) -> StatusSnapshot.UDPCounters {
        var counters = StatusSnapshot.UDPCounters()
        counters.flows = values.flowsOpened
        counters.datagramsUp = values.datagramsUp
        counters.datagramsDown = values.datagramsDown
        counters.bytesUp = values.bytesUp
        counters.bytesDown = values.bytesDown
        counters.expired = expired
        counters.dropped = values.dropped
        return counters
    }

    package func recordDrop(_ reason: Drop) {
        drops[reason]?.increment()
        values.dropped[reason.rawValue, default: 0] += 1
    }
}
