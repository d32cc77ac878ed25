import AggProtocol
import AggTransport
import Prometheus
import SCTPEngine
import Testing

@testable import AggObservability
@testable import Proxy

/// The Prometheus exposition the exporter and the proxy counters produce, read back with a strict parser.
@Suite struct PrometheusExportTests {
    @Test func exportedSnapshotIsValidExpositionWithTheEngineFigures() throws {
        let metrics = ProxyMetrics()
        let exporter = MetricsExporter(registry: metrics.registry, role: "aggclient", version: "1.2.3")
        var snapshot = ObservabilityTests.sampleSnapshot()
        snapshot.counters.udpBytesSent = 5000
        snapshot.associations[0].paths[0].spuriousTimeouts = 1
        exporter.update(snapshot)
        metrics.recordConnection(.success)
        metrics.recordConnection(.dnsFailure)
        metrics.recordRelayed(1500, up: true)
        metrics.recordAuthentication(succeeded: false)

        let text = metrics.registry.emitToString()
        let parsed = try PrometheusTextParser(text)
        let first = [
            "association": "1", "client": "laptop", "path": "wlan0", "local": "127.0.0.1", "remote": "127.0.0.1",
        ]
        let second = [
            "association": "1", "client": "laptop", "path": "127.0.0.2", "local": "127.0.0.2", "remote": "127.0.0.2",
        ]
        #expect(parsed.values("agg_path_sent_bytes_total", first) == [30_000_000])
        #expect(parsed.values("agg_path_received_packets_total", second) == [1000])
        #expect(parsed.values("agg_path_timeouts_total", first) == [1])
        #expect(parsed.values("agg_path_spurious_timeouts_total", first) == [1])
        #expect(parsed.values("agg_path_spurious_timeouts_total", second) == [0])
        // One series per state, 1 for the current one: no number code to look up.
        for (labels, current) in [(first, "active"), (second, "potentially-failed")] {
            for state in ["unconfirmed", "active", "potentially-failed", "inactive"] {
                let values = parsed.values("agg_path_state", labels.merging(["state": state]) { $1 })
                #expect(values == [state == current ? 1 : 0], "\(labels["path"]!) \(state)")
            }
        }
        #expect(parsed.values("agg_path_srtt_seconds", second).map { abs($0 - 0.0236) < 1e-12 } == [true])
        #expect(parsed.values("agg_path_pmtu_bytes", first) == [1452])
        #expect(parsed.values("agg_path_remote_udp_port", second) == [40123])
        #expect(
            parsed.values("agg_association_state", ["association": "1", "client": "laptop", "state": "ready"]) == [1])
        #expect(parsed.values("agg_association_state", ["association": "1", "state": "connecting"]) == [0])
        #expect(parsed.values("agg_association_state", ["association": "1", "state": "authenticating"]) == [0])
        #expect(parsed.values("agg_build_info", ["role": "aggclient", "version": "1.2.3"]) == [1])
        // No made-up values: nothing negative anywhere.
        #expect(parsed.samples.allSatisfy { $0.value >= 0 }, "\(parsed.samples.filter { $0.value < 0 })")
        #expect(parsed.values("agg_association_buffered_bytes", ["association": "1"]) == [12288])
        #expect(parsed.values("agg_udp_bytes_total", ["direction": "sent"]) == [5000])
        #expect(parsed.values("agg_proxy_connections_total", ["outcome": "success"]) == [1])
        #expect(parsed.values("agg_proxy_connections_total", ["outcome": "dns_failure"]) == [1])
        #expect(parsed.values("agg_proxy_connections_total", ["outcome": "refused"]) == [0])
        #expect(parsed.values("agg_proxy_relayed_bytes_total", ["direction": "up"]) == [1500])
        #expect(parsed.values("agg_associations_total", ["outcome": "auth_failure"]) == [1])
        #expect(parsed.types["agg_path_sent_bytes_total"] == "counter")
        #expect(parsed.types["agg_path_cwnd_bytes"] == "gauge")
        for name in ["agg_proxy_connections_total", "agg_proxy_relayed_bytes_total", "agg_associations_total"] {
            #expect(parsed.help[name]?.isEmpty == false, "\(name) has no HELP")
            #expect(parsed.types[name] == "counter")
        }
        for (name, _) in MetricsExporter.pathGauges + MetricsExporter.pathCounters + [MetricsExporter.pathSRTT] {
            #expect(parsed.help[name]?.isEmpty == false, "\(name) has no HELP")
            #expect(parsed.values(name).count == 2, "\(name) should have one series per path")
        }
        // The JSON counters mirror what swift-metrics counted.
        #expect(metrics.values.connections == ["success": 1, "dns_failure": 1])
        #expect(metrics.values.bytesUp == 1500 && metrics.values.authenticationFailures == 1)
    }

    @Test func anRTTNotMeasuredYetHasNoSeries() throws {
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(registry: registry)
        var snapshot = ObservabilityTests.sampleSnapshot()
        snapshot.associations[0].paths[1].srttMilliseconds = nil
        exporter.update(snapshot)
        var parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_srtt_seconds", ["local": "127.0.0.2"]).isEmpty)
        #expect(parsed.values("agg_path_srtt_seconds", ["local": "127.0.0.1"]).count == 1)
        snapshot.associations[0].paths[1].srttMilliseconds = 5
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_srtt_seconds", ["local": "127.0.0.2"]) == [0.005])
    }

    /// bbr's estimates (bandwidth, propagation round trip, pacing rate) are series of their own, present only on a
    /// path whose controller has them, and gone with the path.
    @Test func bbrEstimatesAreExportedWhereTheControllerHasThem() throws {
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(registry: registry)
        var snapshot = ObservabilityTests.sampleSnapshot()
        snapshot.associations[0].paths[0].bandwidthEstimateBitsPerSecond = 19_250_000
        snapshot.associations[0].paths[0].minRTTMilliseconds = 20.5
        snapshot.associations[0].paths[0].pacingRateBitsPerSecond = 19_057_500
        snapshot.associations[0].paths[0].congestionPhase = "competing"
        exporter.update(snapshot)
        var parsed = try PrometheusTextParser(registry.emitToString())
        let first = ["local": "127.0.0.1"]
        #expect(parsed.values("agg_path_bbr_phase", first).count == SCTPCongestionPhase.allCases.count)
        #expect(parsed.values("agg_path_bbr_phase", first.merging(["phase": "competing"]) { $1 }) == [1])
        #expect(parsed.values("agg_path_bbr_phase", first.merging(["phase": "probe-bandwidth"]) { $1 }) == [0])
        #expect(parsed.values("agg_path_bbr_phase", ["local": "127.0.0.2"]).isEmpty)
        #expect(parsed.values("agg_association_send_queue_delay_seconds").isEmpty)
        snapshot.associations[0].sendQueueDelayMilliseconds = 12.5
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_association_send_queue_delay_seconds") == [0.0125])
        #expect(parsed.values("agg_path_bandwidth_estimate_bits_per_second", first) == [19_250_000])
        #expect(parsed.values("agg_path_min_rtt_seconds", first).map { abs($0 - 0.0205) < 1e-12 } == [true])
        #expect(parsed.values("agg_path_pacing_rate_bits_per_second", first) == [19_057_500])
        for (name, _) in MetricsExporter.pathEstimates {
            #expect(parsed.help[name]?.isEmpty == false, "\(name) has no HELP")
            #expect(parsed.values(name, ["local": "127.0.0.2"]).isEmpty, "\(name) on a path without estimates")
        }
        snapshot.associations[0].paths.removeFirst()
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_bandwidth_estimate_bits_per_second").isEmpty)
        #expect(parsed.values("agg_path_bbr_phase").isEmpty)
    }

    /// What the SCTP engine dropped on input is counted by reason, every reason present from the start at 0, and
    /// advances by what grew since the last sample.
    @Test func sctpDropsAreCountedByReason() throws {
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(registry: registry)
        var snapshot = ObservabilityTests.sampleSnapshot()
        exporter.update(snapshot)
        var parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_sctp_dropped_total").count == SCTPDropReason.allCases.count)
        #expect(parsed.values("agg_sctp_dropped_total").allSatisfy { $0 == 0 })
        snapshot.counters.sctpDropped = [
            SCTPDropReason.malformedPacket.rawValue: 3, SCTPDropReason.outOfTheBlue.rawValue: 1,
        ]
        exporter.update(snapshot)
        snapshot.counters.sctpDropped[SCTPDropReason.malformedPacket.rawValue] = 5
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_sctp_dropped_total", ["reason": "malformed packet"]) == [5])
        #expect(parsed.values("agg_sctp_dropped_total", ["reason": "out of the blue"]) == [1])
        #expect(parsed.values("agg_sctp_dropped_total", ["reason": "bad verification tag"]) == [0])
        #expect(parsed.types["agg_sctp_dropped_total"] == "counter")
    }

    /// Datagrams the driver dropped for being too large for its read slot are exported and add up over shards.
    @Test func truncatedDatagramsAreExportedAndAddUp() throws {
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(registry: registry)
        var snapshot = ObservabilityTests.sampleSnapshot()
        exporter.update(snapshot)
        var parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_udp_datagrams_truncated_total") == [0])
        var shard = StatusSnapshot.Counters()
        shard.truncatedDatagrams = 2
        snapshot.counters.truncatedDatagrams = 1
        snapshot.counters.add(shard)
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_udp_datagrams_truncated_total") == [3])
        #expect(parsed.types["agg_udp_datagrams_truncated_total"] == "counter")
        var statistics = SCTPDriver.Statistics()
        statistics.truncatedDatagrams = 4
        var other = SCTPDriver.Statistics()
        other.truncatedDatagrams = 5
        statistics.add(other)
        #expect(statistics.truncatedDatagrams == 9)
    }

    /// A merged (sharded) snapshot adds the shards' drops.
    @Test func shardsDropsAddUp() {
        var one = StatusSnapshot.Counters()
        one.sctpDropped = ["malformed packet": 2]
        var two = StatusSnapshot.Counters()
        two.sctpDropped = ["malformed packet": 3, "out of the blue": 1]
        one.add(two)
        #expect(one.sctpDropped == ["malformed packet": 5, "out of the blue": 1])
    }

    @Test func seriesFollowTheClientNameOnceTheServerLearnsIt() throws {
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(registry: registry)
        var snapshot = ObservabilityTests.sampleSnapshot()
        snapshot.associations[0].client = nil
        snapshot.associations[0].state = "authenticating"
        exporter.update(snapshot)
        var parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_sent_bytes_total", ["path": "wlan0"]) == [30_000_000])
        #expect(parsed.samples.allSatisfy { $0.labels["client"] == nil })

        snapshot.associations[0].client = "laptop"
        snapshot.associations[0].state = "ready"
        snapshot.associations[0].paths[0].bytesSent += 100
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        // The unlabelled series are gone; the labelled ones carry the whole count, not only what grew since.
        #expect(parsed.values("agg_path_sent_bytes_total", ["path": "wlan0"]) == [30_000_100])
        #expect(parsed.values("agg_path_sent_bytes_total", ["path": "wlan0", "client": "laptop"]) == [30_000_100])
        #expect(parsed.values("agg_association_state", ["state": "ready"]) == [1])
        #expect(parsed.values("agg_association_state", ["state": "authenticating"]) == [0])
    }

    @Test func countersAdvanceByTheEnginesGrowthAndGoneSeriesDisappear() throws {
        let registry = PrometheusCollectorRegistry()
        let exporter = MetricsExporter(registry: registry)
        var snapshot = ObservabilityTests.sampleSnapshot()
        exporter.update(snapshot)
        snapshot.associations[0].paths[0].bytesSent += 1234
        snapshot.associations[0].paths[0].cwnd = 99999
        exporter.update(snapshot)
        var parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_sent_bytes_total", ["local": "127.0.0.1"]) == [30_001_234])
        #expect(parsed.values("agg_path_cwnd_bytes", ["local": "127.0.0.1"]) == [99999])

        // Path 2 went away: its series go; a counter that restarted lower is not decreased.
        snapshot.associations[0].paths.removeLast()
        snapshot.associations[0].paths[0].bytesSent = 10
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_cwnd_bytes", ["local": "127.0.0.2"]).isEmpty)
        #expect(parsed.values("agg_path_sent_bytes_total", ["local": "127.0.0.1"]) == [30_001_234])
        snapshot.associations[0].paths[0].bytesSent = 110
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(parsed.values("agg_path_sent_bytes_total", ["local": "127.0.0.1"]) == [30_001_334])

        // The association closed: nothing of it is left.
        snapshot.associations = []
        exporter.update(snapshot)
        parsed = try PrometheusTextParser(registry.emitToString())
        #expect(!parsed.samples.contains { $0.name.hasPrefix("agg_path_") || $0.name.hasPrefix("agg_association_") })
    }

    /// The parser must reject what Prometheus would, or the tests above prove nothing.
    @Test(arguments: [
        "agg_x 1",  // no final newline
        "agg-x 1\n",  // bad metric name
        "agg_x{a=\"1\" 1\n",  // unclosed labels
        "agg_x{a=1} 1\n",  // unquoted label value
        "agg_x{1a=\"1\"} 1\n",  // bad label name
        "agg_x{a=\"1\",a=\"2\"} 1\n",  // label twice
        "agg_x one\n",  // bad value
        "agg_x 1 2 3\n",  // extra field
        "agg_x{a=\"\\q\"} 1\n",  // bad escape
        "agg_x 1\nagg_x 2\n",  // duplicate series
        "# TYPE agg_x counter\nagg_x -1\n",  // negative counter
        "agg_x 1\n# TYPE agg_x gauge\n",  // TYPE after samples
        "# TYPE agg_x gauge\n# TYPE agg_x gauge\nagg_x 1\n",  // TYPE twice
        "agg_x{a=\"1\"} 1\nagg_y 1\nagg_x{a=\"2\"} 1\n",  // family not contiguous
        "# TYPE agg_x speed\nagg_x 1\n",  // unknown type
    ])
    func parserRejectsMalformedExposition(_ text: String) {
        #expect(throws: PrometheusTextParser.Failure.self) { try PrometheusTextParser(text) }
    }

    @Test func parserReadsEscapesSpecialValuesAndTimestamps() throws {
        let parsed = try PrometheusTextParser(
            "# HELP agg_x Some help.\n# TYPE agg_x gauge\nagg_x{a=\"q\\\"\\\\\\n\"} +Inf 1700000000000\n\nagg_y NaN\n")
        #expect(parsed.samples.count == 2)
        #expect(parsed.samples[0].labels["a"] == "q\"\\\n")
        #expect(parsed.samples[0].value == .infinity)
        #expect(parsed.samples[1].value.isNaN)
        #expect(parsed.help["agg_x"] == "Some help.")
    }
}
