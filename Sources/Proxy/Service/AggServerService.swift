import AggConfig
import AggEgress
import AggObservability
import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import Prometheus
import SCTPEngine

/// aggserver's core: one SCTP endpoint listening on every configured UDP address, each association authenticated
/// against the key file (HELLO, AUTH, AUTH-OK), then every OPEN checked against the egress policy, connected with
/// `EgressConnector` and relayed with backpressure both ways. Everything runs on the driver's event loop, the
/// egress connections included.
public final class AggServerService: @unchecked Sendable {
    /// The SCTP port aggserver's endpoint uses (the UDP port is the listen address's).
    public static let sctpPort: UInt16 = 9899

    public struct Configuration: Sendable {
        /// UDP addresses to listen on; the non-wildcard ones are advertised in INIT-ACK.
        public var listen: [SCTPSocketAddress]
        /// Every client's key.
        public var keys: [PreSharedKey]
        public var egress: EgressConnector
        public var limits = StreamLimits()
        public var sctp = SCTPConfiguration()
        /// Also accept plain RFC 6951 datagrams (`--allow-plaintext`).
        public var allowPlaintext = false
        /// UDP segmentation offload on the driver's sockets (`SCTPDriver.Options.segmentationOffload`).
        public var segmentationOffload = true
        /// The UDP relay (SOCKS5 UDP ASSOCIATE on the client): datagram lifetime, idle timeout, per-key limits.
        public var udp = UDPRelaySettings()
        /// Which shard of a sharded server this service is (`ServerShards`): its session ids, verification tags
        /// and association ids steer to it, and its sockets join SO_REUSEPORT groups when there is more than one.
        public var shard = SCTPShard.single

        public init(listen: [SCTPSocketAddress], keys: [PreSharedKey], egress: EgressConnector = EgressConnector()) {
            self.listen = listen
            self.keys = keys
            self.egress = egress
        }
    }

    /// One client's association: its state machine (`ServerSession`) and what the glue keeps for it.
    private final class Session: StreamSessionHolder {
        /// Authentication, its deadline, PING replies, the streams: every decision about the association's life.
        var machine: ServerSession
        /// The one timer at `machine.nextDeadline` (the authentication deadline, then the streams').
        var timer = DeadlineTimer()
        /// The streams' sockets, once authenticated (the streams themselves are `machine`'s).
        var streams: StreamSessionHost?
        /// Whether the service is performing `machine`'s actions: a re-entrant call leaves them to that loop.
        var isPerforming = false
        /// Whether the service still holds the session (`sessions` has it): checked after every batch of actions,
        /// where looking the id up hashed it a dozen times per connection.
        var isHeld = true
        /// The service's loop over `machine`'s actions.
        var perform: () -> Void = {}
        /// The association's UDP flows, once authenticated.
        var udp: ServerUDPRelay?
        /// The client can change paths on every packet (a new source port each time): their log lines are limited.
        var pathLog = LogRateLimiter()
        let outbound: UInt16
        let inbound: UInt16
        /// The engine's owner: the key whose datagram session created the association (`.unauthenticated` in
        /// plaintext).
        let owner: SCTPOwner
        /// The key the client proved on stream 0; its removal or change (SIGHUP) ends the association.
        var key: PreSharedKey?

        init(machine: ServerSession, outbound: UInt16, inbound: UInt16, owner: SCTPOwner) {
            self.machine = machine
            self.outbound = outbound
            self.inbound = inbound
            self.owner = owner
        }

        /// The association ended: its streams' sockets are reset, its timer and flows go.
        func end() {
            machine.handleClosed()
            perform()
            timer.cancel()
            udp?.associationLost()
        }

        func withStreams<R>(_ body: (inout StreamSession) -> R) -> R? { machine.withStreams(body) }

        func performActions() { perform() }
    }

    public let configuration: Configuration
    public let driver: SCTPDriver
    /// Connections by outcome, bytes relayed, authentications: for the status endpoint. The shards of one server
    /// share its Prometheus registry, whose counters add up every shard's.
    public let metrics: ProxyMetrics
    /// UDP flows, datagrams and bytes relayed, drops by reason.
    public let udpMetrics: UDPRelayMetrics
    /// The UDP flows and waiting datagrams of every key.
    let udpBudget: UDPKeyBudget
    public var eventLoop: any EventLoop { driver.eventLoop }
    let logger: Logger
    /// Every client's key by name; `reloadKeys(_:)` replaces it, so a removed client is refused on its next
    /// association while its current one stays.
    private var keys: [String: PreSharedKey]
    private var sessions: [SCTPAssociationID: Session] = [:]
    /// How many associations proved each key on stream 0 (the plaintext per-key limit), kept as they come and go
    /// so that an authentication does not walk every association.
    private var provedKeys: [String: Int] = [:]
    /// Graceful stop (`drainAndStop`): when the streams are done, when to shut the associations down, when the
    /// stop is complete.
    private var stopping = GracefulStop<SCTPAssociationID>()
    /// The timer at `stopping.nextDeadline`.
    private var stopTimer = DeadlineTimer()
    /// Completed with the sockets' close once `stopping` finishes.
    private var stopPromise: EventLoopPromise<Void>?
    private var isPerformingStop = false
    /// The configuration's connector, whose policy `refreshOwnAddresses` keeps up to date.
    private var egress: EgressConnector
    /// Path lines of associations without a session (before `established`).
    private var unknownPathLog = LogRateLimiter()
    private var isStopped = false
    /// When a version mismatch was last logged, per key.
    private var versionWarnings: [String: NIODeadline] = [:]

    /// Called on the event loop when an association comes up or goes down or a path changes state (the daemon
    /// refreshes its systemd status line).
    public var onStateChange: (() -> Void)?

    /// Associations authenticated since start, for status and tests.
    public private(set) var associationsAuthenticated = 0

    private init(
        configuration: Configuration, driver: SCTPDriver, registry: PrometheusCollectorRegistry, logger: Logger
    ) {
        self.configuration = configuration
        self.driver = driver
        self.logger = logger
        self.metrics = ProxyMetrics(registry: registry)
        self.keys = Self.keyTable(configuration.keys)
        self.egress = configuration.egress
        self.udpMetrics = UDPRelayMetrics(registry: metrics.registry)
        self.udpBudget = UDPKeyBudget(settings: configuration.udp)
    }

    private static func keyTable(_ list: [PreSharedKey]) -> [String: PreSharedKey] {
        var keys: [String: PreSharedKey] = [:]
        for key in list { keys[key.name] = key }
        return keys
    }

    /// Binds every listen address and starts accepting associations.
    public static func start(
        configuration: Configuration, on eventLoop: any EventLoop, logger: Logger = Logger(label: "aggserver"),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) -> EventLoopFuture<AggServerService> {
        var generator = SystemRandomNumberGenerator()
        var sctp = configuration.sctp
        sctp.localPort = sctpPort
        sctp.maxPathsPerAssociation = configuration.limits.pathsPerAssociation
        sctp.cookieSecret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        sctp.maxAssociationsPerOwner = configuration.limits.associationsPerKey
        // Every stream id SCTP has: the proxy's own limit decides how many are used (`streamLimit`).
        sctp.outboundStreams = .max
        sctp.maxInboundStreams = .max
        sctp.shard = configuration.shard
        // The peer is agg, which sets the I bit whenever it cannot send more: a SACK every fourth packet halves the
        // acknowledgements a download sends up the uplink (and the datagrams each end handles for them).
        sctp.packetsPerSack = SCTPConfiguration.packetsPerSackWithThisEngine
        // Offered only in answer to an INIT that arrived sealed (a plaintext client keeps its CRC32c both ways).
        sctp.zeroChecksumMethod = SecureDatagram.errorDetectionMethod
        let advertised = configuration.listen.map(\.ip).filter { !$0.isWildcard }
        var options = SCTPDriver.Options()
        options.segmentationOffload = configuration.segmentationOffload
        options.reusePort = configuration.shard.count > 1
        // Hundreds of associations' pacers and timers: fired together within a millisecond.
        options.timerStep = .milliseconds(1)
        return SCTPDriver.bind(
            localAddresses: configuration.listen, configuration: sctp, seed: generator.next(),
            advertisedAddresses: advertised, options: options, protection: configuration.protection, on: eventLoop,
            logger: logger
        ).map { driver in
            let service = AggServerService(
                configuration: configuration, driver: driver, registry: registry, logger: logger)
            driver.onEvent = { [unowned service] event in service.handle(event) }
            driver.onSecurityEvent = { [unowned service] event in service.handleSecurityEvent(event) }
            return service
        }
    }

    /// The bound UDP addresses (ephemeral ports resolved).
    public var localAddresses: EventLoopFuture<[SCTPSocketAddress]> {
        eventLoop.submit { self.driver.localAddresses }
    }

    /// Aborts every association (their connections are reset) and closes the sockets.
    public func stop() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.isStopped = true
            self.abortAll(reason: "server stopping")
            return self.driver.close()
        }
    }

    /// Replaces the key table (SIGHUP). Every association of a key that is gone or changed ends at once, in
    /// encrypted mode (its datagram sessions and owner) and in plaintext mode (the key it proved on stream 0) alike:
    /// it is aborted while its session can still seal the ABORT, then the key's sessions are forgotten.
    public func reloadKeys(_ keys: [PreSharedKey]) -> EventLoopFuture<Void> {
        eventLoop.submit {
            let removed = Set(self.keys.keys).subtracting(keys.map(\.name))
            let table = Self.keyTable(keys)
            let revokedOwners = Set(self.driver.revokedOwners(by: keys))
            var ended = 0
            for (id, session) in self.sessions.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                let proved = session.key.map { table[$0.name]?.key == $0.key } ?? true
                guard revokedOwners.contains(session.owner) || !proved else { continue }
                self.metrics.recordAssociationRevoked()
                self.fail(id, "key revoked")
                ended += 1
            }
            self.keys = table
            self.driver.replaceSecurityKeys(keys)
            self.logger.info(
                "keys reloaded",
                metadata: ["keys": "\(keys.count)", "removed": "\(removed.sorted())", "associations ended": "\(ended)"])
            self.onStateChange?()
        }
    }

    /// The egress policy in force (the configuration's, with the own addresses of the last refresh). On the loop.
    var egressPolicy: EgressPolicy { egress.policy }

    /// Replaces the addresses egress refuses as the server's own (SIGHUP re-reads the interfaces).
    public func refreshOwnAddresses(_ addresses: Set<SCTPIPAddress>) -> EventLoopFuture<Void> {
        eventLoop.submit {
            let before = self.egress.policy.localAddresses
            self.egress.policy.localAddresses = addresses.filter { !EgressPolicy.isLoopback($0) }
            if self.egress.policy.localAddresses != before {
                self.logger.info(
                    "own addresses refused by egress",
                    metadata: ["addresses": "\(self.egress.policy.localAddresses.map(\.description).sorted())"])
            }
        }
    }

    /// Graceful stop: refuses new associations, lets running streams finish until `deadline`, then shuts every
    /// association down (SCTP SHUTDOWN), waits up to `closeTimeout` for them to close, aborts what is left and
    /// closes the sockets.
    public func drainAndStop(deadline: NIODeadline, closeTimeout: TimeAmount = .seconds(2)) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if let promise = self.stopPromise { return promise.futureResult }
            self.isStopped = true
            self.onStateChange = nil
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.stopPromise = promise
            let ids = self.sessions.keys.sorted { $0.rawValue < $1.rawValue }
            let draining = ids.filter { self.sessions[$0]?.machine.isReady == true }
            self.stopping.begin(
                associations: ids, withStreams: Set(draining), streamsDeadline: deadline, closeTimeout: closeTimeout,
                now: .now())
            for id in draining {
                guard let session = self.sessions[id] else { continue }
                session.machine.handleDrain()
                self.perform(session, id: id)
            }
            self.performStop()
            return promise.futureResult
        }
    }

    /// Performs what the graceful stop asks, then re-arms its timer. Reentrant calls (an association ended while
    /// an action runs) leave their actions to the outer loop.
    private func performStop() {
        guard !isPerformingStop else { return }
        isPerformingStop = true
        defer { isPerformingStop = false }
        while let action = stopping.pollAction() {
            switch action {
            case .shutDown(let id):
                driver.shutdown(id)
            case .streamsDeadlinePassed:
                logger.warning("shutdown deadline passed", metadata: ["streams": "\(activeStreams)"])
            case .finish:
                abortAll(reason: "server stopping")
                stopPromise?.completeWith(driver.close())
            }
        }
        stopTimer.arm(at: stopping.nextDeadline, on: eventLoop) { [self] in
            stopTimer.fired()
            stopping.handleTimeout(now: .now())
            performStop()
        }
    }

    /// Every association with its open streams (nil while it authenticates) and the key it authenticated with,
    /// for the status endpoint.
    func sessionStreams() -> [(id: SCTPAssociationID, streams: Int?, streamLimit: Int, client: String?)] {
        sessions.sorted { $0.key.rawValue < $1.key.rawValue }.map { id, session in
            (id, session.streams?.activeStreams, session.streams?.streamLimit ?? 0, session.machine.keyName)
        }
    }

    /// Streams the client of association `id` has opened since it authenticated. Call on the event loop.
    func streamsOpened(on id: SCTPAssociationID) -> Int {
        sessions[id]?.streams?.streamsOpened ?? 0
    }

    /// The number of streams open on every association.
    public var activeStreams: Int {
        sessions.values.reduce(0) { $0 + ($1.streams?.activeStreams ?? 0) }
    }

    /// DATA bytes received from clients and not yet accepted by target sockets, per association (its cap is
    /// `StreamLimits.bufferedBytesPerAssociation`). Call on the event loop.
    var bufferedBytes: [SCTPAssociationID: Int] {
        sessions.compactMapValues { $0.streams?.bufferedBytes }
    }

    /// Bytes read from targets and not yet sent, per association: in the engine's send queue or waiting for a
    /// stream's credit (`SendRoom`; what sizes the egress reads). Call on the event loop.
    var unsentReads: [SCTPAssociationID: Int] {
        var unsent: [SCTPAssociationID: Int] = [:]
        for (id, session) in sessions {
            guard let streams = session.streams else { continue }
            unsent[id] = driver.queuedAmount(id) + streams.unsentReadBytes
        }
        return unsent
    }

    /// Aborts every association now, as a crash or a lost network would end it; the service keeps listening.
    public func abortAssociations() -> EventLoopFuture<Void> {
        eventLoop.submit { self.abortAll(reason: "aborted by operator") }
    }

    private func abortAll(reason: String) {
        let ended = sessions
        sessions.removeAll()
        for session in ended.values { session.isHeld = false }
        provedKeys.removeAll()
        for (id, session) in ended {
            session.end()
            driver.abort(id, reason: reason)
            stopping.handleClosed(id, now: .now())
        }
        performStop()
    }

    // MARK: - Events

    func handle(_ event: SCTPEvent) {
        switch event {
        case .established(let id, let outbound, let inbound):
            established(id, outbound: outbound, inbound: inbound)
        case .message(let id, let message):
            guard let session = sessions[id] else { return }
            if message.stream.rawValue == 0, UDPMessage.isUDP(message.ppid) {
                receiveUDP(message, session: session, id: id)
            } else if message.stream.rawValue == 0 {
                receiveControl(message, session: session, id: id)
            } else {
                session.streams?.prepareToReceive(message)
                session.machine.handleStreamMessage(message, now: .now())
                perform(session, id: id)
            }
        case .writable(let id):
            sessions[id]?.streams?.resumeWriting()
        case .pathStateChanged(let id, let remote, let state):
            if let heldBack = admitPathLog(id) {
                logger.info(
                    "path \(state)",
                    metadata: ["association": "\(id)", "remote": "\(remote)", "held_back": "\(heldBack)"])
            }
            onStateChange?()
        case .pathRemoteChanged(let id, let from, let to):
            if let heldBack = admitPathLog(id) {
                logger.info(
                    "path moved",
                    metadata: ["association": "\(id)", "from": "\(from)", "to": "\(to)", "held_back": "\(heldBack)"])
            }
        case .shutdownReceived:
            break
        case .associationRefused(let owner, let remote):
            metrics.recordAssociationRefused()
            logger.warning(
                "association refused: the key holds its limit of associations",
                metadata: [
                    "key": "\(driver.keyName(of: owner) ?? "\(owner)")", "remote": "\(remote)",
                    "limit": "\(configuration.limits.associationsPerKey)",
                ])
        case .closed(let id, let reason):
            guard let session = forget(id) else { return }
            session.end()
            logger.info("association closed", metadata: ["association": "\(id)", "reason": "\(reason)"])
            onStateChange?()
        }
    }

    /// Whether a path line of association `id` may be logged now (nil: held back), and how many were held back.
    private func admitPathLog(_ id: SCTPAssociationID) -> Int? {
        guard let session = sessions[id] else { return unknownPathLog.admit(now: .now()) }
        return session.pathLog.admit(now: .now())
    }

    /// A client speaking another handshake version is told so by the datagram layer (VERSION) and logged here, at
    /// most once a minute per key.
    func handleSecurityEvent(_ event: DatagramSecurityEvent) {
        guard case .clientVersionMismatch(let name, let version) = event else { return }
        let now = NIODeadline.now()
        if let last = versionWarnings[name], now - last < .seconds(60) { return }
        versionWarnings[name] = now
        let message =
            "client \(name) speaks datagram protocol version \(version), this aggserver versions "
            + "\(SecureDatagram.supportedVersions.lowerBound) to \(SecureDatagram.supportedVersions.upperBound); "
            + "it was told so: install the same agg release on both sides"
        logger.warning("\(message)", metadata: ["key": "\(name)"])
    }

    /// The most streams an association may have open at once: the configured limit, within the SCTP stream counts
    /// the association negotiated (stream 0 is the control stream). HELLO tells the client this number.
    static func streamLimit(_ limits: StreamLimits, outbound: UInt16, inbound: UInt16) -> Int {
        max(0, min(limits.streamsPerAssociation, Int(outbound) - 1, Int(inbound) - 1))
    }

    private func established(_ id: SCTPAssociationID, outbound: UInt16, inbound: UInt16) {
        guard !isStopped else {
            driver.abort(id, reason: "server stopping")
            return
        }
        var generator = SystemRandomNumberGenerator()
        let challenge = (0..<AggLimits.authFieldLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let limits = configuration.limits
        let owner = driver.endpoint.owner(of: id) ?? .unauthenticated
        let streams = SessionStreamSettings(
            streamLimit: Self.streamLimit(limits, outbound: outbound, inbound: inbound),
            streamCredit: limits.streamCredit, idleTimeout: TimeAmount(limits.streamIdleTimeout),
            associationIdleTimeout: TimeAmount(limits.associationIdleTimeout),
            bufferedBytesLimit: limits.bufferedBytesPerAssociation, logger: logger, metrics: metrics)
        let machine = ServerSession(
            challenge: challenge, streams: streams,
            datagramKeyName: owner == .unauthenticated ? nil : driver.keyName(of: owner),
            authenticationTimeout: TimeAmount(limits.authenticationTimeout), now: .now())
        let session = Session(machine: machine, outbound: outbound, inbound: inbound, owner: owner)
        session.perform = { [unowned self, unowned session] in perform(session, id: id) }
        sessions[id] = session
        perform(session, id: id)
        logger.info("association established", metadata: ["association": "\(id)"])
    }

    // MARK: - Performing an association's actions

    /// Performs what association `id`'s session asks, its streams' actions included, then re-arms its one timer
    /// at its next deadline. Re-entrant calls (an action that ends the association, a write that fails at once)
    /// leave their actions to the outer loop.
    private func perform(_ session: Session, id: SCTPAssociationID) {
        guard !session.isPerforming else { return }
        session.isPerforming = true
        while let action = session.machine.pollAction() {
            switch action {
            case .stream(let action):
                session.streams?.perform(action)
            case .send(let message):
                driver.send(message, on: id)
            case .authenticated(let name):
                authenticated(session, id: id, keyName: name)
            case .authenticationFailed:
                metrics.recordAuthentication(succeeded: false)
            case .pongRefused:
                metrics.recordRefusal(.controlReplies)
            case .drained:
                stopping.handleStreamsDrained(id, now: .now())
                performStop()
            case .abort(let reason):
                fail(id, reason)
            }
        }
        session.isPerforming = false
        let next = session.isHeld ? session.machine.readNextDeadline() : nil
        guard !session.timer.isArmed(at: next) else { return }
        session.timer.arm(at: next, on: eventLoop) { [self] in
            session.timer.fired()
            guard session.isHeld else { return }
            session.machine.handleTimeout(now: .now())
            perform(session, id: id)
        }
    }

    private func receiveControl(_ message: SCTPMessage, session: Session, id: SCTPAssociationID) {
        session.machine.handleControlMessage(message, now: .now()) { self.keys[$0] }
        perform(session, id: id)
    }

    /// The client proved key `name`: the per-key limit of plaintext associations is checked, then the stream
    /// session and the UDP relay start.
    private func authenticated(_ session: Session, id: SCTPAssociationID, keyName name: String) {
        // Plaintext associations are only told apart by the key they prove: the per-key limit applies here.
        let sameKey = provedKeys[name, default: 0]
        session.key = keys[name]
        if session.key != nil { provedKeys[name, default: 0] += 1 }
        if session.owner == .unauthenticated, sameKey >= configuration.limits.associationsPerKey {
            metrics.recordAssociationRefused()
            fail(id, "key \(name) holds \(sameKey) associations already")
            return
        }
        let limits = configuration.limits
        let streams = StreamSessionHost(driver: driver, association: id, holder: session)
        streams.onIdle = { [unowned self] in
            // UDP flows keep an association without streams: its idle clock starts again.
            if let session = sessions[id], let udp = session.udp, !udp.flows.isEmpty {
                session.streams?.restartIdleClock()
                return
            }
            logger.info("association idle", metadata: ["association": "\(id)"])
            forget(id)?.end()
            driver.abort(id, reason: "no stream for \(limits.associationIdleTimeout)")
            onStateChange?()
        }
        streams.onConnect = { [unowned self, unowned streams] connection, target in
            open(connection, target: target, association: id, host: streams)
        }
        session.streams = streams
        let lifetime = configuration.udp.lifetime
        session.udp = ServerUDPRelay(
            eventLoop: eventLoop, association: id, keyName: name, budget: udpBudget, metrics: udpMetrics,
            logger: logger, egress: { [unowned self] in egress },
            // Stream 0's own room: a light flow's datagrams (DNS, a call) go while a download fills the queue.
            isWritable: { [unowned self] in driver.takesDatagram(id, on: StreamID(0)) },
            send: { [unowned self] message in
                do {
                    try driver.send(message, on: id, lifetime: lifetime)
                } catch {
                    logger.debug("UDP send failed", metadata: ["association": "\(id)", "error": "\(error)"])
                }
            })
        associationsAuthenticated += 1
        metrics.recordAuthentication(succeeded: true)
        logger.info("client authenticated", metadata: ["association": "\(id)", "key": "\(name)"])
        onStateChange?()
    }

    /// Removes association `id`'s session, if any, from the tables; a graceful stop counts it as closed.
    private func forget(_ id: SCTPAssociationID) -> Session? {
        guard let session = sessions.removeValue(forKey: id) else { return nil }
        session.isHeld = false
        if let name = session.key?.name {
            provedKeys[name, default: 1] -= 1
            if provedKeys[name]! <= 0 { provedKeys[name] = nil }
        }
        stopping.handleClosed(id, now: .now())
        performStop()
        return session
    }

    private func fail(_ id: SCTPAssociationID, _ reason: String) {
        logger.warning("aborting association", metadata: ["association": "\(id)", "reason": "\(reason)"])
        forget(id)?.end()
        driver.abort(id, reason: reason)
    }

    // MARK: - UDP

    /// A UDP relay message on stream 0: like a stream message, it closes an association that has not authenticated
    /// (PROTOCOL.md); a malformed one is dropped and counted.
    private func receiveUDP(_ message: SCTPMessage, session: Session, id: SCTPAssociationID) {
        guard session.machine.handleUDPMessage(now: .now()), let udp = session.udp else {
            perform(session, id: id)
            return
        }
        do {
            udp.receive(try UDPMessage.decode(message))
        } catch {
            udpMetrics.recordDrop(.malformed)
            logger.debug("undecodable UDP message", metadata: ["association": "\(id)", "error": "\(error)"])
        }
    }

    // MARK: - Egress

    private func open(
        _ connection: ConnectionID, target: StreamTarget, association: SCTPAssociationID, host: StreamSessionHost
    ) {
        let permit = ReadPermit()
        let reads = RelayReadAllocator.egress(host.sendRoom, permit: permit)
        // The connector leaves the read allocator to this initializer.
        egress.connect(
            to: target, on: eventLoop, owner: association.rawValue,
            configure: { channel in
                let options = channel.syncOptions
                try options?.setOption(.recvAllocator, value: reads)
                try options?.setOption(.maxMessagesPerRead, value: UInt(TCPReads.relayReadsPerEvent))
            },
            completion: { [weak host] result in
                switch result {
                case .success(let channel):
                    self.metrics.recordConnection(.success)
                    guard let host else {
                        channel.close(promise: nil)
                        return
                    }
                    host.targetConnected(connection, channel: channel, permit: permit)
                case .failure(let failure):
                    self.metrics.recordConnection(ConnectionOutcome(failure.code))
                    if let refusal = failure.refusal { self.metrics.recordRefusal(refusal) }
                    host?.targetFailed(connection, failure)
                }
            })
    }

    // MARK: - Status

    /// Authenticated associations, their paths in the active state and open streams, for the systemd status line.
    /// Call on the event loop.
    public func summary() -> (associations: Int, activePaths: Int, streams: Int) {
        var associations = 0
        var activePaths = 0
        for (id, session) in sessions where session.streams != nil {
            associations += 1
            activePaths += driver.endpoint.paths(of: id).filter { $0.state == .active }.count
        }
        return (associations, activePaths, activeStreams)
    }

    /// One line per association and path, for the metrics endpoint. Call on the event loop.
    package func statusLines() -> [String] {
        var lines: [String] = []
        for (id, session) in sessions.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            if let streams = session.streams {
                lines.append(
                    "association \(id) streams=\(streams.activeStreams)/\(streams.streamLimit) opened=\(streams.streamsOpened) "
                        + "bytes_up=\(streams.bytesReceived) bytes_down=\(streams.bytesSent)")
            } else {
                lines.append("association \(id) authenticating")
            }
            for path in driver.endpoint.paths(of: id) {
                lines.append(
                    "path local=\(path.local?.description ?? "-") remote=\(path.remote) state=\(path.state) "
                        + "cwnd=\(path.cwnd)\(path.srtt.map { " srtt_ms=\($0.milliseconds)" } ?? "") "
                        + "bytes_sent=\(path.bytesSent)")
            }
        }
        let stats = driver.statistics
        lines.append(
            "udp datagrams_sent=\(stats.datagramsSent) datagrams_received=\(stats.datagramsReceived) "
                + "send_failures=\(stats.sendFailures) truncated=\(stats.truncatedDatagrams)")
        return lines
    }
}
