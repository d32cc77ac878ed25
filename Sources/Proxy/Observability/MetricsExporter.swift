import Prometheus

/// Keeps the daemon's Prometheus registry in step with the engine: per-path gauges (state, srtt, rto, cwnd,
/// ssthresh, flight size, PMTU, remote UDP port) and counters (bytes and packets each way, retransmissions, fast
/// retransmissions, timeouts), per-association gauges (streams, buffered bytes, state) and the UDP driver's
/// counters. It is fed snapshots taken on the driver's event loop; the engine's cumulative counters become
/// Prometheus counters by adding what grew since the previous snapshot. Series of paths and associations that are
/// gone are unregistered. Confined to the service's event loop.
final class MetricsExporter {
    /// The series of one path.
    private struct PathSeries {
        var gauges: [Gauge]
        var counters: [Counter]
        var last: [Int]
    }

    /// The series of one association.
    private struct AssociationSeries {
        var gauges: [Gauge]
    }

    let registry: PrometheusCollectorRegistry
    private var paths: [String: PathSeries] = [:]
    private var associations: [Int: AssociationSeries] = [:]
    private let udpCounters: [Counter]
    private var udpLast: [Int]

    // MARK: - Names and help, in the order the series arrays hold them

    static let pathGauges: [(String, String)] = [
        ("agg_path_state", "Path state: 0 unconfirmed, 1 active, 2 potentially failed, 3 inactive."),
        ("agg_path_srtt_seconds", "Smoothed round-trip time of the path (-1 before the first measurement)."),
        ("agg_path_rto_seconds", "Retransmission timeout of the path."),
        ("agg_path_cwnd_bytes", "Congestion window of the path."),
        ("agg_path_ssthresh_bytes", "Slow-start threshold of the path."),
        ("agg_path_flight_size_bytes", "Bytes in flight on the path."),
        ("agg_path_pmtu_bytes", "Path MTU: the largest SCTP packet sent on the path."),
        ("agg_path_remote_udp_port", "The peer's UDP port on the path (the NAT's public port as the server sees it)."),
    ]
    static let pathCounters: [(String, String)] = [
        ("agg_path_sent_bytes_total", "SCTP bytes sent on the path."),
        ("agg_path_received_bytes_total", "SCTP bytes received on the path."),
        ("agg_path_sent_packets_total", "SCTP packets sent on the path."),
        ("agg_path_received_packets_total", "SCTP packets received on the path."),
        ("agg_path_retransmissions_total", "DATA chunks retransmitted on the path."),
        ("agg_path_fast_retransmissions_total", "DATA chunks fast-retransmitted on the path."),
        ("agg_path_timeouts_total", "Retransmission timer (T3-rtx) expiries on the path."),
    ]
    static let associationGauges: [(String, String)] = [
        ("agg_association_state", "Association state: 0 connecting, 1 authenticating, 2 ready."),
        ("agg_association_streams", "Streams (proxied connections) open on the association."),
        ("agg_association_buffered_bytes", "Bytes queued or in flight on the association, not yet acknowledged."),
    ]
    static let udpSeries: [(String, String, [(String, String)])] = [
        ("agg_udp_datagrams_total", "UDP datagrams of the driver.", [("direction", "sent")]),
        ("agg_udp_datagrams_total", "UDP datagrams of the driver.", [("direction", "received")]),
        ("agg_udp_bytes_total", "UDP payload bytes of the driver.", [("direction", "sent")]),
        ("agg_udp_bytes_total", "UDP payload bytes of the driver.", [("direction", "received")]),
        ("agg_udp_send_failures_total", "Datagrams the kernel refused or no socket could carry.", []),
    ]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        udpCounters = Self.udpSeries.map { Self.counter(in: registry, ($0.0, $0.1), labels: $0.2) }
        udpLast = Array(repeating: 0, count: Self.udpSeries.count)
    }

    /// Brings every series to the values of `snapshot`.
    func update(_ snapshot: StatusSnapshot) {
        var seenPaths = Set<String>()
        var seenAssociations = Set<Int>()
        for association in snapshot.associations {
            seenAssociations.insert(association.id)
            let series = associations[association.id] ?? makeSeries(association.id)
            associations[association.id] = series
            series.gauges[0].set(Double(Self.stateCode(association.state)))
            series.gauges[1].set(Double(association.streams))
            series.gauges[2].set(Double(association.bufferedBytes))
            for path in association.paths {
                seenPaths.insert(path.id)
                var series = paths[path.id] ?? makeSeries(path)
                let gaugeValues: [Double] = [
                    Double(Self.stateCode(path.state)), path.srttMilliseconds.map { $0 / 1000 } ?? -1,
                    path.rtoMilliseconds / 1000, Double(path.cwnd), Double(path.ssthresh), Double(path.flightSize),
                    Double(path.pmtu), Double(path.remotePort),
                ]
                for (gauge, value) in zip(series.gauges, gaugeValues) { gauge.set(value) }
                let counterValues = [
                    path.bytesSent, path.bytesReceived, path.packetsSent, path.packetsReceived, path.retransmissions,
                    path.fastRetransmissions, path.timeouts,
                ]
                Self.advance(series.counters, last: &series.last, to: counterValues)
                paths[path.id] = series
            }
        }
        for (id, series) in paths where !seenPaths.contains(id) {
            for gauge in series.gauges { registry.unregisterGauge(gauge) }
            for counter in series.counters { registry.unregisterCounter(counter) }
            paths[id] = nil
        }
        for (id, series) in associations where !seenAssociations.contains(id) {
            for gauge in series.gauges { registry.unregisterGauge(gauge) }
            associations[id] = nil
        }
        let counters = snapshot.counters
        Self.advance(
            udpCounters, last: &udpLast,
            to: [
                counters.datagramsSent, counters.datagramsReceived, counters.udpBytesSent, counters.udpBytesReceived,
                counters.sendFailures,
            ])
    }

    /// Adds to each counter what its source value grew by since `last`; a value that went down (a counter that
    /// restarted) is taken as the new baseline.
    private static func advance(_ counters: [Counter], last: inout [Int], to values: [Int]) {
        for index in counters.indices {
            let delta = values[index] - last[index]
            if delta > 0 { counters[index].increment(by: Int64(delta)) }
            last[index] = values[index]
        }
    }

    private func makeSeries(_ path: StatusSnapshot.Path) -> PathSeries {
        let labels = [("association", String(path.association)), ("local", path.local), ("remote", path.remote)]
        return PathSeries(
            gauges: Self.pathGauges.map { Self.gauge(in: registry, $0, labels: labels) },
            counters: Self.pathCounters.map { Self.counter(in: registry, $0, labels: labels) },
            last: Array(repeating: 0, count: Self.pathCounters.count))
    }

    private func makeSeries(_ association: Int) -> AssociationSeries {
        let labels = [("association", String(association))]
        return AssociationSeries(
            gauges: Self.associationGauges.map { Self.gauge(in: registry, $0, labels: labels) })
    }

    private static func gauge(
        in registry: PrometheusCollectorRegistry, _ spec: (name: String, help: String), labels: [(String, String)]
    ) -> Gauge {
        registry.makeGauge(
            descriptor: MetricNameDescriptor(metricName: spec.name, unitName: "", helpText: spec.help), labels: labels)
    }

    private static func counter(
        in registry: PrometheusCollectorRegistry, _ spec: (name: String, help: String), labels: [(String, String)]
    ) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: spec.name, unitName: "", helpText: spec.help), labels: labels)
    }

    /// The numeric code of a path or association state name, as the gauges' help describes.
    static func stateCode(_ state: String) -> Int {
        switch state {
        case "unconfirmed", "connecting": return 0
        case "active", "authenticating": return 1
        case "potentially-failed", "ready": return 2
        case "inactive": return 3
        default: return -1
        }
    }
}
