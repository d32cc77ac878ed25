import AggConfig
import AggTransport
import NIOCore
import SCTPEngine

/// Watches one daemon from its event loop. Once a second it reads the engine's paths, the service's associations
/// and the counters into a `StatusSnapshot`, turns counter deltas into rates, brings the Prometheus registry up to
/// date and keeps the sample in a bounded history (five minutes by default). It names each path (configured name,
/// else its local interface) and adds up the bytes of paths that are gone, so a path's total counts from the
/// daemon's start. The engine is only ever read on the driver's event loop: the HTTP endpoint asks through
/// `eventLoop.submit`.
///
/// A sharded aggserver has several sources (one per event loop, `ServerShards`): each is read on its own loop at
/// every sample and the parts are added up on the first one's; a request takes a sample of its own first
/// (`freshen`), so what it shows is as current as with one source (a script that checks the status right after an
/// association came up sees it).
final class StatusMonitor: @unchecked Sendable {
    let sources: [any StatusSource]
    /// The first source: its loop is the monitor's, its role and counters' registry the daemon's.
    var source: any StatusSource { sources[0] }
    let exporter: MetricsExporter
    var eventLoop: any EventLoop { source.eventLoop }
    /// The newest merged figures and status lines of every source (several sources only).
    private var merged: (snapshot: StatusSnapshot, lines: [String])?
    /// A sample of several sources waits for their answers: the next one is skipped, so samples stay in order.
    private var isSampling = false
    /// Requests waiting for a sample that starts after they arrived (`freshen`).
    private var freshWaiters: [EventLoopPromise<Void>] = []

    private var meter = PathRateMeter()
    private var history: SampleHistory<StatusSnapshot.Sample>
    private var latest: StatusSnapshot?
    private let started = NIODeadline.now()
    private var task: RepeatedTask?
    /// Local IP addresses by the interface that holds them, read with getifaddrs when an address is missing (at
    /// most every `interfaceRereadInterval`).
    private var interfaceNames: [SCTPIPAddress: String] = [:]
    private var interfacesRead: NIODeadline?
    static let interfaceRereadInterval = TimeAmount.seconds(10)
    private var totals = PathTotals()

    /// `historyLength`: how many per-second samples to keep.
    convenience init(source: any StatusSource, historyLength: Int = 300) {
        self.init(sources: [source], historyLength: historyLength)
    }

    /// Watches several sources (the shards of one server, sharing one registry) as one daemon.
    init(sources: [any StatusSource], historyLength: Int = 300) {
        precondition(!sources.isEmpty)
        self.sources = sources
        let source = sources[0]
        self.exporter = MetricsExporter(registry: source.metrics.registry, role: source.roleName)
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

    /// Takes a sample: rates since the previous one, the registry, the history. With several sources, once every
    /// one has answered on its loop.
    func sample() {
        guard sources.count > 1 else {
            record(collect())
            return
        }
        guard !isSampling else { return }
        isSampling = true
        let waiting = freshWaiters
        freshWaiters = []
        let parts = sources.map { source in
            source.eventLoop.submit { (Self.part(of: source), source.statusLines()) }
        }
        EventLoopFuture.whenAllSucceed(parts, on: eventLoop).assumeIsolated().whenComplete { result in
            self.isSampling = false
            defer {
                for promise in waiting { promise.succeed() }
                // Requests that came while this sample was on its way want one that started after them.
                if !self.freshWaiters.isEmpty { self.sample() }
            }
            guard case .success(let parts) = result else { return }
            let snapshot = self.merge(parts.map(\.0))
            // Each shard's lines end with its own UDP counters: one line with the sums replaces them.
            let counters = snapshot.counters
            let lines =
                parts.flatMap { $0.1.filter { !$0.hasPrefix("udp ") } }
                + [
                    "udp datagrams_sent=\(counters.datagramsSent) datagrams_received=\(counters.datagramsReceived) "
                        + "send_failures=\(counters.sendFailures) truncated=\(counters.truncatedDatagrams)"
                ]
            self.merged = (snapshot, lines)
            self.record(snapshot)
        }
    }

    /// With several sources: a sample taken after this call, merged, before the returned future succeeds; nil with
    /// one source (it is read at once). On the event loop.
    func freshen() -> EventLoopFuture<Void>? {
        guard sources.count > 1 else { return nil }
        let promise = eventLoop.makePromise(of: Void.self)
        freshWaiters.append(promise)
        sample()
        return promise.futureResult
    }

    private func record(_ collected: StatusSnapshot) {
        var snapshot = collected
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
        if latest == nil, sources.count == 1 { sample() }
        var snapshot = current()
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
        if sources.count == 1 { exporter.update(collect()) }
        return exporter.registry.emitToString()
    }

    /// The figures now (one source), or as last sampled (several), rates left at zero.
    func current() -> StatusSnapshot {
        guard sources.count > 1 else { return collect() }
        return merged?.snapshot
            ?? StatusSnapshot(role: source.roleName, uptime: 0, associations: [], counters: .init())
    }

    /// One source's associations with their paths, and its counters: read on that source's loop.
    struct Part: Sendable {
        var associations:
            [(state: AssociationState, bufferedBytes: Int, sendQueueDelay: SCTPDuration?, paths: [SCTPPathInfo])]
        var counters: StatusSnapshot.Counters
    }

    /// What `source` holds now. On its event loop.
    static func part(of source: any StatusSource) -> Part {
        source.eventLoop.preconditionInEventLoop()
        let driver = source.driver
        let associations = source.associationStates().map { association in
            (
                association, driver.bufferedAmount(association.id), driver.endpoint.sendQueueDelay(association.id),
                driver.endpoint.paths(of: association.id)
            )
        }
        source.metrics.syncEngineRefusals(driver.endpoint.limitRefusals)
        var counters = source.metrics.values
        let statistics = driver.statistics
        counters.datagramsSent = statistics.datagramsSent
        counters.datagramsReceived = statistics.datagramsReceived
        counters.udpBytesSent = statistics.bytesSent
        counters.udpBytesReceived = statistics.bytesReceived
        counters.sendFailures = statistics.sendFailures
        counters.truncatedDatagrams = statistics.truncatedDatagrams
        for (reason, count) in driver.endpoint.droppedPackets { counters.sctpDropped[reason.rawValue] = count }
        let expired = driver.endpoint.partialReliabilityCounters.messagesAbandoned
        source.udpMetrics.syncExpired(expired)
        counters.udp = source.udpMetrics.counters(expired: expired)
        return Part(associations: associations, counters: counters)
    }

    /// The engine's and the service's figures now, rates left at zero. One source only.
    func collect() -> StatusSnapshot {
        eventLoop.preconditionInEventLoop()
        return merge([Self.part(of: source)])
    }

    /// The sources' parts as one daemon's snapshot: associations side by side (their ids are unique across
    /// shards), counters added up. On the monitor's loop.
    func merge(_ parts: [Part]) -> StatusSnapshot {
        eventLoop.preconditionInEventLoop()
        var associations: [StatusSnapshot.Association] = []
        var counters = StatusSnapshot.Counters()
        for (index, part) in parts.enumerated() {
            for (association, bufferedBytes, sendQueueDelay, infos) in part.associations {
                let id = association.id
                let paths = Self.paths(infos, association: id.rawValue) { local in
                    if let name = source.configuredPathName(local: local) { return (name, true) }
                    return interfaceName(of: local).map { ($0, false) }
                }
                var snapshot = StatusSnapshot.Association(
                    id: id.rawValue, state: association.state, client: association.client,
                    streams: association.streams, streamLimit: association.streamLimit,
                    bufferedBytes: bufferedBytes, paths: paths)
                snapshot.sendQueueDelayMilliseconds = sendQueueDelay.map { Double($0.nanoseconds) / 1e6 }
                associations.append(snapshot)
            }
            if index == 0 { counters = part.counters } else { counters.add(part.counters) }
        }
        totals.update(&associations)
        let uptime = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        return StatusSnapshot(role: source.roleName, uptime: uptime, associations: associations, counters: counters)
    }

    /// The name of the interface that holds `ip` (nil for the wildcard, or an address no interface has).
    func interfaceName(of ip: SCTPIPAddress) -> String? {
        guard !ip.isWildcard else { return nil }
        if let name = interfaceNames[ip] { return name }
        let now = NIODeadline.now()
        if let read = interfacesRead, now - read < Self.interfaceRereadInterval { return nil }
        interfacesRead = now
        interfaceNames = [:]
        for (name, addresses) in InterfaceAddresses.current().byInterface {
            for address in addresses { interfaceNames[address] = name }
        }
        return interfaceNames[ip]
    }

    /// The engine's paths as snapshot paths. A path's identity is its local and remote IP; when two paths of the
    /// association share both, the remote port tells them apart. `name` finds a path's name (`names(locals:name:)`).
    static func paths(
        _ infos: [SCTPPathInfo], association: Int,
        name: (SCTPIPAddress) -> (name: String, configured: Bool)? = { _ in nil }
    ) -> [StatusSnapshot.Path] {
        func ipPair(_ info: SCTPPathInfo) -> String {
            "\(info.local.map { $0.ip.isWildcard ? "*" : $0.ip.description } ?? "*")/\(info.remote.ip)"
        }
        var seen: [String: Int] = [:]
        for info in infos { seen[ipPair(info), default: 0] += 1 }
        let pathNames = names(locals: infos.map { $0.local?.ip }, name: name)
        return zip(infos, pathNames).map { info, pathName in
            let local = info.local.map { $0.ip.isWildcard ? "*" : $0.ip.description } ?? "*"
            let remote = seen[ipPair(info)]! > 1 ? info.remote.description : info.remote.ip.description
            var path = StatusSnapshot.Path(
                id: "\(association)/\(local)/\(remote)", association: association, name: pathName, local: local,
                remote: remote, remotePort: Int(info.remote.port), state: stateName(info.state),
                srttMilliseconds: info.srtt.map { Double($0.nanoseconds) / 1e6 },
                rtoMilliseconds: Double(info.rto.nanoseconds) / 1e6, cwnd: info.cwnd, ssthresh: info.ssthresh,
                flightSize: info.flightSize, pmtu: info.pmtu, bytesSent: info.bytesSent,
                bytesReceived: info.bytesReceived, packetsSent: info.packetsSent,
                packetsReceived: info.packetsReceived, retransmissions: info.retransmissions,
                fastRetransmissions: info.fastRetransmissions, timeouts: info.timeouts)
            path.spuriousTimeouts = info.spuriousTimeouts
            path.mode = info.policy.mode.rawValue
            path.standby = info.isStandby
            path.rateLimitBitsPerSecond = info.policy.sendRateLimit.map { $0 * 8 }
            path.bandwidthEstimateBitsPerSecond = info.bandwidthEstimate.map { $0 * 8 }
            path.minRTTMilliseconds = info.minRTT.map { Double($0.nanoseconds) / 1e6 }
            path.pacingRateBitsPerSecond = info.pacingRate.map { $0 * 8 }
            path.congestionPhase = info.congestionPhase?.rawValue
            return path
        }
    }

    /// The name of each path of an association, given the local address each sends from: `name(local)` returns
    /// the path's configured name (`configured` true) or the interface that holds the address. An interface name
    /// that paths with different local addresses would share (127.0.0.1 and 127.0.0.2 are both on lo) names
    /// neither of them; a path with no name is called by its local IP, or "*" for the wildcard address.
    static func names(
        locals: [SCTPIPAddress?], name: (SCTPIPAddress) -> (name: String, configured: Bool)?
    ) -> [String] {
        let found = locals.map { local in local.flatMap { $0.isWildcard ? nil : name($0) } }
        var interfaceLocals: [String: Set<SCTPIPAddress>] = [:]
        for (local, found) in zip(locals, found) {
            guard let local, let found, !found.configured else { continue }
            interfaceLocals[found.name, default: []].insert(local)
        }
        return zip(locals, found).map { local, found in
            if let found, found.configured || interfaceLocals[found.name]?.count == 1 { return found.name }
            guard let local, !local.isWildcard else { return "*" }
            return local.description
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

    func statusLines() -> [String] {
        sources.count == 1 ? source.statusLines() : merged?.lines ?? []
    }

    func recordRefusedRequest() { source.metrics.recordRefusal(.statusRequest) }

    func changePath(name: String, query: [String: String]) -> StatusRequestHandler.Response {
        guard let control = source.pathControl else {
            return .text(.notFound, "only aggclient has run-time path control")
        }
        let change: PathPolicyChange
        do {
            change = try PathPolicyChange.parse(mode: query["mode"], priority: query["priority"], rate: query["rate"])
        } catch {
            return .text(.badRequest, "\(error)")
        }
        do {
            let policy = try control(name, change)
            return .text(.ok, "path \(name) is now \(policy)")
        } catch {
            return .text(.notFound, "\(error)")
        }
    }
}
