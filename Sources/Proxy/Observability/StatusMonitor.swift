import NIOCore
import SCTPEngine

/// Watches one daemon from its event loop. Once a second it reads the engine's paths, the service's associations
/// and the counters into a `StatusSnapshot`, turns counter deltas into rates, brings the Prometheus registry up to
/// date and keeps the sample in a bounded history (five minutes by default). The engine is only ever read on the
/// driver's event loop: the HTTP endpoint asks through `eventLoop.submit`.
final class StatusMonitor: @unchecked Sendable {
    let source: any StatusSource
    let exporter: MetricsExporter
    var eventLoop: any EventLoop { source.eventLoop }

    private var meter = PathRateMeter()
    private var history: SampleHistory<StatusSnapshot.Sample>
    private var latest: StatusSnapshot?
    private let started = NIODeadline.now()
    private var task: RepeatedTask?

    /// `historyLength`: how many per-second samples to keep.
    init(source: any StatusSource, historyLength: Int = 300) {
        self.source = source
        self.exporter = MetricsExporter(registry: source.metrics.registry)
        self.history = SampleHistory(capacity: historyLength)
    }

    /// Samples every `interval` until `stop()`.
    func start(interval: TimeAmount = .seconds(1)) {
        eventLoop.execute {
            self.task?.cancel()
            self.task = self.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { _ in
                self.sample()
            }
        }
    }

    func stop() {
        eventLoop.execute {
            self.task?.cancel()
            self.task = nil
        }
    }

    // MARK: - On the event loop

    /// Takes a sample: rates since the previous one, the registry, the history.
    func sample() {
        var snapshot = collect()
        meter.update(&snapshot.associations, at: snapshot.uptime)
        exporter.update(snapshot)
        history.append(
            StatusSnapshot.Sample(uptime: snapshot.uptime, paths: snapshot.paths.map(StatusSnapshot.PathSample.init)))
        latest = snapshot
    }

    /// The figures now with the rates of the latest sample, and the newest `historySeconds` samples of the history
    /// (all when nil).
    func snapshot(historySeconds: Int? = nil) -> StatusSnapshot {
        eventLoop.preconditionInEventLoop()
        if latest == nil { sample() }
        var snapshot = collect()
        var rates: [String: StatusSnapshot.Path] = [:]
        for path in latest?.paths ?? [] { rates[path.id] = path }
        for a in snapshot.associations.indices {
            for p in snapshot.associations[a].paths.indices {
                guard let sampled = rates[snapshot.associations[a].paths[p].id] else { continue }
                snapshot.associations[a].paths[p].sendRate = sampled.sendRate
                snapshot.associations[a].paths[p].receiveRate = sampled.receiveRate
                snapshot.associations[a].paths[p].lossRate = sampled.lossRate
                snapshot.associations[a].paths[p].share = sampled.share
            }
        }
        snapshot.history = historySeconds.map { history.suffix($0) } ?? history.all
        return snapshot
    }

    /// The Prometheus text exposition, with the gauges read from the engine now.
    func prometheusText() -> String {
        eventLoop.preconditionInEventLoop()
        exporter.update(collect())
        return exporter.registry.emitToString()
    }

    /// The engine's and the service's figures now, rates left at zero.
    func collect() -> StatusSnapshot {
        eventLoop.preconditionInEventLoop()
        let driver = source.driver
        var associations: [StatusSnapshot.Association] = []
        for (id, state, streams) in source.associationStates() {
            let paths = Self.paths(driver.endpoint.paths(of: id), association: id.rawValue)
            associations.append(
                StatusSnapshot.Association(
                    id: id.rawValue, state: state, streams: streams, bufferedBytes: driver.bufferedAmount(id),
                    paths: paths))
        }
        source.metrics.syncEngineRefusals(driver.endpoint.limitRefusals)
        var counters = source.metrics.values
        let statistics = driver.statistics
        counters.datagramsSent = statistics.datagramsSent
        counters.datagramsReceived = statistics.datagramsReceived
        counters.udpBytesSent = statistics.bytesSent
        counters.udpBytesReceived = statistics.bytesReceived
        counters.sendFailures = statistics.sendFailures
        let uptime = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        return StatusSnapshot(role: source.roleName, uptime: uptime, associations: associations, counters: counters)
    }

    /// The engine's paths as snapshot paths. A path is named by its local and remote IP; when two paths of the
    /// association share both, the remote port tells them apart.
    static func paths(_ infos: [SCTPPathInfo], association: Int) -> [StatusSnapshot.Path] {
        func ipPair(_ info: SCTPPathInfo) -> String {
            "\(info.local.map { $0.ip.isWildcard ? "*" : $0.ip.description } ?? "*")/\(info.remote.ip)"
        }
        var seen: [String: Int] = [:]
        for info in infos { seen[ipPair(info), default: 0] += 1 }
        return infos.map { info in
            let local = info.local.map { $0.ip.isWildcard ? "*" : $0.ip.description } ?? "*"
            let remote = seen[ipPair(info)]! > 1 ? info.remote.description : info.remote.ip.description
            return StatusSnapshot.Path(
                id: "\(association)/\(local)/\(remote)", association: association, local: local, remote: remote,
                remotePort: Int(info.remote.port), state: stateName(info.state),
                srttMilliseconds: info.srtt.map { Double($0.nanoseconds) / 1e6 },
                rtoMilliseconds: Double(info.rto.nanoseconds) / 1e6, cwnd: info.cwnd, ssthresh: info.ssthresh,
                flightSize: info.flightSize, pmtu: info.pmtu, bytesSent: info.bytesSent,
                bytesReceived: info.bytesReceived, packetsSent: info.packetsSent,
                packetsReceived: info.packetsReceived, retransmissions: info.retransmissions,
                fastRetransmissions: info.fastRetransmissions, timeouts: info.timeouts)
        }
    }

    static func stateName(_ state: SCTPPathState) -> String {
        switch state {
        case .unconfirmed: return "unconfirmed"
        case .active: return "active"
        case .potentiallyFailed: return "potentially-failed"
        case .inactive: return "inactive"
        }
    }
}

extension StatusMonitor: StatusResponder {
    func snapshotJSON(historySeconds: Int?) throws -> [UInt8] {
        try snapshot(historySeconds: historySeconds).jsonBytes()
    }

    func statusLines() -> [String] { source.statusLines() }

    func recordRefusedRequest() { source.metrics.recordRefusal(.statusRequest) }
}
