import AggOperations
import Prometheus
import SCTPEngine

/// Keeps the daemon's Prometheus registry in step with the engine: per-path gauges (state, srtt, rto, cwnd,
/// ssthresh, flight size, PMTU, remote UDP port) and counters (bytes and packets each way, retransmissions, fast
/// retransmissions, timeouts), per-association gauges (state, streams, buffered bytes), the UDP driver's counters
/// and `agg_build_info`. It is fed snapshots taken on the driver's event loop; the engine's cumulative counters
/// become Prometheus counters by adding what grew since the previous snapshot. A state is one series per possible
/// value (1 for the current one, 0 for the others), and a figure that is not known yet (the RTT before the first
/// measurement) has no series rather than a made-up value. Series of paths and associations that are gone, or
/// whose labels changed (the server learns the client's key name once it authenticates), are unregistered.
/// Confined to the service's event loop.
final class MetricsExporter {
    /// The series of one path, and the labels they were made with.
    private struct PathSeries {
        var labels: [(String, String)]
        var states: [Gauge]
        var srtt: Gauge?
        /// The congestion controller's estimates (`pathEstimates`), made when the path first has them.
        var estimates: [Gauge?] = Array(repeating: nil, count: MetricsExporter.pathEstimates.count)
        /// `agg_path_bbr_phase`, one per phase, made when the path first has one.
        var phases: [Gauge]?
        var gauges: [Gauge]
        var counters: [Counter]
        var last: [Int]
    }

    /// The series of one association, and the labels they were made with.
    private struct AssociationSeries {
        var labels: [(String, String)]
        var states: [Gauge]
        var gauges: [Gauge]
        /// `associationSendQueueDelay`, made when the association first has one.
        var sendQueueDelay: Gauge?
    }

    let registry: PrometheusCollectorRegistry
    private var paths: [String: PathSeries] = [:]
    private var associations: [Int: AssociationSeries] = [:]
    private let udpCounters: [Counter]
    private var udpLast: [Int]
    /// `agg_sctp_dropped_total{reason}`, one series per `SCTPDropReason` from the start (a reason never seen is 0).
    private let dropCounters: [Counter]
    private var dropLast: [Int]
    static let sctpDropped = (
        "agg_sctp_dropped_total",
        "SCTP packets and chunks dropped on input, by reason (malformed, bad tag, out of the blue, limits, ...)."
    )

    // MARK: - Names and help, in the order the series arrays hold them

    static let pathStates = ["unconfirmed", "active", "potentially-failed", "inactive"]
    static let pathState = ("agg_path_state", "1 for the path's state (label state), 0 for the others.")
    static let pathSRTT = (
        "agg_path_srtt_seconds", "Smoothed round-trip time of the path; absent before the first measurement."
    )
    /// Present only with `congestion-control = "bbr"`, once the controller has them.
    static let pathEstimates: [(String, String)] = [
        ("agg_path_bandwidth_estimate_bits_per_second", "bbr's estimate of the path's bottleneck bandwidth."),
        ("agg_path_min_rtt_seconds", "bbr's estimate of the path's propagation round trip (smallest RTT of 10 s)."),
        ("agg_path_pacing_rate_bits_per_second", "The rate bbr paces new data at on the path."),
    ]
    static let pathPhase = (
        "agg_path_bbr_phase",
        "With bbr: 1 for what drives the path's sending now (label phase: startup, drain, probe-bandwidth, "
            + "queue-held, probe-rtt, competing), 0 for the others."
    )
    static let pathGauges: [(String, String)] = [
        ("agg_path_rto_seconds", "Retransmission timeout of the path."),
        ("agg_path_cwnd_bytes", "Congestion window of the path."),
        ("agg_path_ssthresh_bytes", "Slow-start threshold of the path."),
        ("agg_path_flight_size_bytes", "Bytes in flight on the path."),
        ("agg_path_pmtu_bytes", "Path MTU: the largest SCTP packet sent on the path."),
        ("agg_path_remote_udp_port", "The peer's UDP port on the path (the NAT's public port as the server sees it)."),
        ("agg_path_backup", "1 when the path is a backup (data only while no active path works), 0 when active."),
        ("agg_path_standby", "1 while a backup path stands by because an active path works."),
        ("agg_path_rate_limit_bits_per_second", "The path's send-rate cap; 0 for none."),
    ]
    static let pathCounters: [(String, String)] = [
        ("agg_path_sent_bytes_total", "SCTP bytes sent on the path."),
        ("agg_path_received_bytes_total", "SCTP bytes received on the path."),
        ("agg_path_sent_packets_total", "SCTP packets sent on the path."),
        ("agg_path_received_packets_total", "SCTP packets received on the path."),
        ("agg_path_retransmissions_total", "DATA chunks retransmitted on the path."),
        ("agg_path_fast_retransmissions_total", "DATA chunks fast-retransmitted on the path."),
        ("agg_path_timeouts_total", "Retransmission timer (T3-rtx) expiries on the path."),
        (
            "agg_path_spurious_timeouts_total",
            "T3-rtx expiries on the path found spurious afterwards (late SACKs, nothing lost) and undone."
        ),
    ]
    static let associationStates = ["connecting", "authenticating", "ready"]
    static let associationState = (
        "agg_association_state", "1 for the association's state (label state), 0 for the others."
    )
    static let associationGauges: [(String, String)] = [
        ("agg_association_streams", "Streams (proxied connections) open on the association."),
        ("agg_association_buffered_bytes", "Bytes queued or in flight on the association, not yet acknowledged."),
        (
            "agg_association_stream_limit",
            "Streams the association may have open at once: the smaller of both daemons' limits."
        ),
    ]
    static let associationSendQueueDelay = (
        "agg_association_send_queue_delay_seconds",
        "How long data queued now waits in the association's send queue before it is first sent (the unsent bytes "
            + "over the paths' sending rate); absent while no path has a rate."
    )
    static let udpSeries: [(String, String, [(String, String)])] = [
        ("agg_udp_datagrams_total", "UDP datagrams of the driver.", [("direction", "sent")]),
        ("agg_udp_datagrams_total", "UDP datagrams of the driver.", [("direction", "received")]),
        ("agg_udp_bytes_total", "UDP payload bytes of the driver.", [("direction", "sent")]),
        ("agg_udp_bytes_total", "UDP payload bytes of the driver.", [("direction", "received")]),
        ("agg_udp_send_failures_total", "Datagrams the kernel refused or no socket could carry.", []),
        ("agg_udp_datagrams_truncated_total", "Datagrams received too large for the driver's read slot, dropped.", []),
    ]
    static let buildInfo = ("agg_build_info", "Always 1; the labels say which build runs (version) and as what (role).")

    /// `role` and `version` label `agg_build_info`.
    init(registry: PrometheusCollectorRegistry, role: String = "", version: String = BuildInfo.version) {
        self.registry = registry
        udpCounters = Self.udpSeries.map { Self.counter(in: registry, ($0.0, $0.1), labels: $0.2) }
        udpLast = Array(repeating: 0, count: Self.udpSeries.count)
        dropCounters = SCTPDropReason.allCases.map {
            Self.counter(in: registry, Self.sctpDropped, labels: [("reason", $0.rawValue)])
        }
        dropLast = Array(repeating: 0, count: SCTPDropReason.allCases.count)
        Self.gauge(in: registry, Self.buildInfo, labels: [("role", role), ("version", version)]).set(1.0)
    }

    /// Brings every series to the values of `snapshot`.
    func update(_ snapshot: StatusSnapshot) {
        var seenPaths = Set<String>()
        var seenAssociations = Set<Int>()
        for association in snapshot.associations {
            seenAssociations.insert(association.id)
            var labels = [("association", String(association.id))]
            if let client = association.client { labels.append(("client", client)) }
            var series = associationSeries(association.id, labels: labels)
            Self.setState(series.states, Self.associationStates, association.state)
            series.gauges[0].set(Double(association.streams))
            series.gauges[1].set(Double(association.bufferedBytes))
            series.gauges[2].set(Double(association.streamLimit))
            if let delay = association.sendQueueDelayMilliseconds {
                if series.sendQueueDelay == nil {
                    series.sendQueueDelay = Self.gauge(in: registry, Self.associationSendQueueDelay, labels: labels)
                    associations[association.id] = series
                }
                series.sendQueueDelay?.set(delay / 1000)
            }
            for path in association.paths {
                seenPaths.insert(path.id)
                var series = pathSeries(path.id, labels: Self.labels(path, client: association.client))
                Self.setState(series.states, Self.pathStates, path.state)
                if let srtt = path.srttMilliseconds {
                    if series.srtt == nil {
                        series.srtt = Self.gauge(in: registry, Self.pathSRTT, labels: series.labels)
                    }
                    series.srtt?.set(srtt / 1000)
                }
                let estimates = [
                    path.bandwidthEstimateBitsPerSecond, path.minRTTMilliseconds.map { $0 / 1000 },
                    path.pacingRateBitsPerSecond,
                ]
                for (i, value) in estimates.enumerated() {
                    guard let value else { continue }
                    if series.estimates[i] == nil {
                        series.estimates[i] = Self.gauge(in: registry, Self.pathEstimates[i], labels: series.labels)
                    }
                    series.estimates[i]?.set(value)
                }
                if let phase = path.congestionPhase {
                    if series.phases == nil {
                        series.phases = SCTPCongestionPhase.allCases.map {
                            Self.gauge(in: registry, Self.pathPhase, labels: series.labels + [("phase", $0.rawValue)])
                        }
                    }
                    Self.setState(series.phases ?? [], SCTPCongestionPhase.allCases.map(\.rawValue), phase)
                }
                let gaugeValues: [Double] = [
                    path.rtoMilliseconds / 1000, Double(path.cwnd), Double(path.ssthresh), Double(path.flightSize),
                    Double(path.pmtu), Double(path.remotePort), path.mode == "backup" ? 1 : 0,
                    path.standby == true ? 1 : 0, Double(path.rateLimitBitsPerSecond ?? 0),
                ]
                for (gauge, value) in zip(series.gauges, gaugeValues) { gauge.set(value) }
                let counterValues = [
                    path.bytesSent, path.bytesReceived, path.packetsSent, path.packetsReceived, path.retransmissions,
                    path.fastRetransmissions, path.timeouts, path.spuriousTimeouts ?? 0,
                ]
                Self.advance(series.counters, last: &series.last, to: counterValues)
                paths[path.id] = series
            }
        }
        for (id, series) in paths where !seenPaths.contains(id) {
            unregister(series)
            paths[id] = nil
        }
        for (id, series) in associations where !seenAssociations.contains(id) {
            unregister(series)
            associations[id] = nil
        }
        let counters = snapshot.counters
        Self.advance(
            udpCounters, last: &udpLast,
            to: [
                counters.datagramsSent, counters.datagramsReceived, counters.udpBytesSent, counters.udpBytesReceived,
                counters.sendFailures, counters.truncatedDatagrams,
            ])
        Self.advance(
            dropCounters, last: &dropLast,
            to: SCTPDropReason.allCases.map { counters.sctpDropped[$0.rawValue] ?? 0 })
    }

    /// A path's labels: the association, the client's key name when known, the path's name, and its local and
    /// remote IP (which, with the association, tell two paths apart).
    static func labels(_ path: StatusSnapshot.Path, client: String?) -> [(String, String)] {
        var labels = [("association", String(path.association))]
        if let client { labels.append(("client", client)) }
        labels += [("path", path.name), ("local", path.local), ("remote", path.remote)]
        return labels
    }

    /// Sets the gauge of `state` to 1 and the others to 0; `names` lists the states in the gauges' order.
    private static func setState(_ gauges: [Gauge], _ names: [String], _ state: String) {
        for (gauge, name) in zip(gauges, names) { gauge.set(name == state ? 1.0 : 0.0) }
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

    /// The path's series, made anew (counting from zero, so the first update adds the whole cumulative value) when
    /// they do not exist or were made with other labels.
    private func pathSeries(_ id: String, labels: [(String, String)]) -> PathSeries {
        if let series = paths[id] {
            if series.labels.elementsEqual(labels, by: ==) { return series }
            unregister(series)
        }
        let stateSpec = (Self.pathState.0, Self.pathState.1)
        return PathSeries(
            labels: labels,
            states: Self.pathStates.map { Self.gauge(in: registry, stateSpec, labels: labels + [("state", $0)]) },
            srtt: nil,
            gauges: Self.pathGauges.map { Self.gauge(in: registry, $0, labels: labels) },
            counters: Self.pathCounters.map { Self.counter(in: registry, $0, labels: labels) },
            last: Array(repeating: 0, count: Self.pathCounters.count))
    }

    private func associationSeries(_ id: Int, labels: [(String, String)]) -> AssociationSeries {
        if let series = associations[id] {
            if series.labels.elementsEqual(labels, by: ==) { return series }
            unregister(series)
        }
        let stateSpec = (Self.associationState.0, Self.associationState.1)
        let series = AssociationSeries(
            labels: labels,
            states: Self.associationStates.map {
                Self.gauge(in: registry, stateSpec, labels: labels + [("state", $0)])
            },
            gauges: Self.associationGauges.map { Self.gauge(in: registry, $0, labels: labels) })
        associations[id] = series
        return series
    }

    private func unregister(_ series: AssociationSeries) {
        for gauge in series.states + series.gauges { registry.unregisterGauge(gauge) }
        if let gauge = series.sendQueueDelay { registry.unregisterGauge(gauge) }
    }

    private func unregister(_ series: PathSeries) {
        for gauge in series.states + series.gauges { registry.unregisterGauge(gauge) }
        if let srtt = series.srtt { registry.unregisterGauge(srtt) }
        for case let gauge? in series.estimates { registry.unregisterGauge(gauge) }
        for gauge in series.phases ?? [] { registry.unregisterGauge(gauge) }
        for counter in series.counters { registry.unregisterCounter(counter) }
    }

    @discardableResult
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
}
