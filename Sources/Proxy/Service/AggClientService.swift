import Logging
import NIOCore
import NIOPosix
import SCTPEngine

/// aggclient's core: keeps one authenticated association to aggserver up at all times (connect, HELLO/AUTH,
/// reconnect with exponential backoff), adds every extra path to it, and opens one stream per proxied TCP connection
/// through `connector`. Everything runs on the driver's event loop, the proxy listeners included, so a connection,
/// its stream and the association never cross threads.
public final class AggClientService: @unchecked Sendable {
    /// What the service needs; `ClientSettings` plus resolution fill it.
    public struct Configuration: Sendable {
        /// The server's UDP addresses; the first is dialled, the others are extra paths' destinations.
        public var servers: [SCTPSocketAddress]
        /// Local addresses to send from, one path each; the first with an address carries the handshake. nil for
        /// a path whose interface (in `pathInterfaces`) has no address yet: it joins once it gets one.
        public var paths: [SCTPIPAddress?]
        /// The interface each path was named by (`--path IFACE`), by index; nil or missing for an address. Such a
        /// path's socket is bound to the interface too (SO_BINDTODEVICE) and follows the interface's address.
        public var pathInterfaces: [String?] = []
        /// What the status page, `aggclient status` and the metrics call each path, by index: the name given in
        /// `--path NAME=…`, else the interface it was given as; nil for a bare address (the status monitor then
        /// names it after the interface that holds the address).
        public var pathNames: [String?] = []
        /// Each path's policy by index (`--path wwan0,backup,rate=5mbit`); missing means active and uncapped.
        /// Changed at run time by `changePath` (`aggclient path NAME ...`).
        public var pathPolicies: [SCTPPathPolicy] = []
        public var key: PreSharedKey
        public var limits = StreamLimits()
        /// How long a new connection waits for the association before it fails with `.serverUnavailable`.
        public var serverWait: TimeAmount = .seconds(10)
        /// How long the handshake and authentication may take before the attempt is abandoned.
        public var handshakeTimeout: TimeAmount = .seconds(10)
        /// How long an OPEN waits for its OPEN-RESULT (the server's connect timeout plus a margin).
        public var openTimeout: TimeAmount = .seconds(20)
        /// First and largest delay between reconnection attempts; the delay doubles after each failure.
        public var reconnectDelay: TimeAmount = .milliseconds(250)
        public var maxReconnectDelay: TimeAmount = .seconds(30)
        public var sctp = SCTPConfiguration()
        /// Plain RFC 6951 datagrams instead of the encryption layer (`--plaintext`).
        public var plaintext = false
        /// UDP segmentation offload on the driver's sockets (`SCTPDriver.Options.segmentationOffload`).
        public var segmentationOffload = true
        /// The server endpoint's SCTP port (not the UDP port).
        public var serverSCTPPort: UInt16 = AggServerService.sctpPort
        /// The UDP relay (SOCKS5 UDP ASSOCIATE): datagram lifetime, idle timeout, flow limit.
        public var udp = UDPRelaySettings()

        public init(servers: [SCTPSocketAddress], paths: [SCTPIPAddress?], key: PreSharedKey) {
            self.servers = servers
            self.paths = paths
            self.key = key
        }
    }

    /// The association as the service sees it.
    enum Link {
        case down
        case connecting(SCTPAssociationID)
        case authenticating(SCTPAssociationID, ClientAuthenticator, outbound: UInt16, inbound: UInt16)
        case ready(SCTPAssociationID, StreamSessionHost)
        case stopped
    }

    /// A connection waiting for the association.
    private struct Waiter {
        var callback: (StreamSessionHost?) -> Void
        var timer: Scheduled<Void>
    }

    public let configuration: Configuration
    public let driver: SCTPDriver
    /// Connections by outcome, bytes relayed, authentications: for the status endpoint.
    public let metrics = ProxyMetrics()
    /// UDP flows, datagrams and bytes relayed, drops by reason.
    public let udpMetrics: UDPRelayMetrics
    public var eventLoop: any EventLoop { driver.eventLoop }
    let logger: Logger
    /// The SOCKS5 UDP relays and their flows; made in `start`.
    private(set) var udp: ClientUDPRelays!

    private(set) var link = Link.down
    /// DATA bytes received from the server and not yet accepted by local sockets (capped by
    /// `StreamLimits.bufferedBytesPerAssociation`); 0 without an association. Call on the event loop.
    var bufferedBytes: Int {
        if case .ready(_, let streams) = link { return streams.bufferedBytes }
        return 0
    }
    private var waiters: [Int: Waiter] = [:]
    private var nextWaiter = 0
    private var reconnectTask: Scheduled<Void>?
    private var handshakeTimer: Scheduled<Void>?
    private var reconnectDelay: TimeAmount
    /// PONGs the server's PINGs may still get on the current association (`AggLimits.controlReplyBurst`).
    private var replyBudget = ControlReplyBudget()
    private var attempt = 0
    /// The local address each path sends from now, by path index (nil: its interface has no address); the
    /// addresses that were replaced wait in `retiringLocals` until no path of the engine uses them.
    var pathLocals: [SCTPSocketAddress?] = []
    var retiringLocals: [SCTPSocketAddress] = []
    /// The address a path had before its interface lost it, by path index: the one to replace when a new one comes.
    var lostLocals: [Int: SCTPSocketAddress] = [:]
    var addressWatcher: PathAddressWatcher?
    /// Each path's policy now, by index: the configured one until `changePath` changes it.
    var pathPolicies: [SCTPPathPolicy]
    /// The path the association was set up over.
    private(set) var connectedPath = 0
    private var listeners: [any Channel] = []
    private var readyPromises: [EventLoopPromise<Void>] = []
    /// Called when the association closes (graceful stop waits for its SHUTDOWN to complete).
    private var closeWaiters: [() -> Void] = []
    private var settledPromises: [EventLoopPromise<Void>] = []
    /// True once the first attempt authenticated or failed.
    private var hasSettled = false
    private var isDraining = false
    /// The key the next association authenticates with; `reloadKey(_:)` replaces it.
    private var key: PreSharedKey
    /// When a version mismatch was last logged.
    private var lastVersionWarning: NIODeadline?

    /// Called on the event loop when the association comes up or goes down or a path changes state (the daemon
    /// refreshes its systemd status line).
    public var onStateChange: (() -> Void)?

    /// Associations established and authenticated since start, for status and tests.
    public private(set) var associationsEstablished = 0

    private init(configuration: Configuration, driver: SCTPDriver, logger: Logger) {
        self.configuration = configuration
        self.driver = driver
        self.logger = logger
        self.reconnectDelay = configuration.reconnectDelay
        self.key = configuration.key
        self.pathPolicies = configuration.paths.indices.map {
            $0 < configuration.pathPolicies.count ? configuration.pathPolicies[$0] : .default
        }
        self.udpMetrics = UDPRelayMetrics(registry: metrics.registry)
    }

    /// Binds one UDP channel per path and starts connecting. The returned service runs until `stop()`.
    public static func start(
        configuration: Configuration, on eventLoop: any EventLoop,
        logger: Logger = Logger(label: "aggclient")
    ) -> EventLoopFuture<AggClientService> {
        precondition(!configuration.servers.isEmpty && !configuration.paths.isEmpty, "needs a server and a path")
        var generator = SystemRandomNumberGenerator()
        var sctp = configuration.sctp
        sctp.localPort = UInt16.random(in: 49152...65535, using: &generator)
        sctp.maxPathsPerAssociation = configuration.limits.pathsPerAssociation
        // Every stream id SCTP has: the proxy's own limits decide how many are used (`StreamTable.client`).
        sctp.outboundStreams = .max
        sctp.maxInboundStreams = .max
        sctp.cookieSecret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let locals = configuration.paths.compactMap { $0.map { SCTPSocketAddress(ip: $0, port: 0) } }
        var options = SCTPDriver.Options()
        options.segmentationOffload = configuration.segmentationOffload
        for (index, interface) in configuration.pathInterfaces.enumerated() where index < configuration.paths.count {
            if let interface, let ip = configuration.paths[index] { options.interfaces[ip] = interface }
        }
        return SCTPDriver.bind(
            localAddresses: locals, configuration: sctp, seed: generator.next(), options: options,
            protection: configuration.protection, on: eventLoop,
            logger: logger
        ).flatMapThrowing { driver in
            let service = AggClientService(configuration: configuration, driver: driver, logger: logger)
            driver.onEvent = { [unowned service] event in service.handle(event) }
            driver.onSecurityEvent = { [unowned service] event in service.handleSecurityEvent(event) }
            service.udp = ClientUDPRelays(
                eventLoop: eventLoop, settings: configuration.udp, metrics: service.udpMetrics, logger: logger,
                isWritable: { [unowned service] in service.isUDPWritable },
                send: { [unowned service] message in service.sendUDP(message) })
            service.followAddresses()
            service.connect()
            return service
        }
    }

    /// The connector the proxy listeners hand connections to.
    public var connector: SCTPStreamConnector { SCTPStreamConnector(service: self) }

    /// Binds a proxy listener on the service's event loop.
    public func listen(
        host: String, port: Int, protocols: ProxyProtocols = .all,
        ingress: ProxyIngressConfiguration = ProxyIngressConfiguration()
    ) -> EventLoopFuture<any Channel> {
        let listener = ProxyListener(
            host: host, port: port, protocols: protocols, configuration: ingress, connector: connector)
        return keepListener(listener.bind(group: eventLoop))
    }

    /// Serves proxy connections on an already listening TCP socket (one systemd passed), on the service's event
    /// loop. The channel owns `descriptor` from then on.
    public func listen(
        adopting descriptor: CInt, protocols: ProxyProtocols,
        ingress: ProxyIngressConfiguration = ProxyIngressConfiguration()
    ) -> EventLoopFuture<any Channel> {
        let listener = ProxyListener(protocols: protocols, configuration: ingress, connector: connector)
        return keepListener(listener.bind(group: eventLoop, adopting: descriptor))
    }

    /// Binds the transparent listener (router mode) on the service's event loop. `ownListeners` are the other
    /// listeners' bound addresses: a connection redirected to one of them is a loop and is refused.
    public func listenTransparent(
        host: String, port: Int, ingress: ProxyIngressConfiguration, ownListeners: [SCTPSocketAddress]
    ) -> EventLoopFuture<(any Channel, TransparentListener.Mode)> {
        var listener = TransparentListener(
            host: host, port: port, configuration: ingress, connector: connector, logger: logger)
        listener.ownListeners = ownListeners
        return keepTransparent(listener.bind(group: eventLoop))
    }

    /// Serves the transparent listener on an already listening TCP socket (one systemd passed).
    public func listenTransparent(
        adopting descriptor: CInt, ingress: ProxyIngressConfiguration, ownListeners: [SCTPSocketAddress]
    ) -> EventLoopFuture<(any Channel, TransparentListener.Mode)> {
        var listener = TransparentListener(
            host: "", port: 0, configuration: ingress, connector: connector, logger: logger)
        listener.ownListeners = ownListeners
        return keepTransparent(listener.bind(group: eventLoop, adopting: descriptor))
    }

    private func keepTransparent(
        _ bound: EventLoopFuture<(any Channel, TransparentListener.Mode)>
    ) -> EventLoopFuture<(any Channel, TransparentListener.Mode)> {
        bound.flatMap { bound in self.keepListener(self.eventLoop.makeSucceededFuture(bound.0)).map { _ in bound } }
    }

    private func keepListener(_ bound: EventLoopFuture<any Channel>) -> EventLoopFuture<any Channel> {
        bound.flatMap { channel in
            self.eventLoop.submit {
                self.listeners.append(channel)
                return channel
            }
        }
    }

    /// Succeeds once the first association attempt authenticated or failed (at once after that).
    public func whenFirstAttemptSettled() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if self.hasSettled { return self.eventLoop.makeSucceededVoidFuture() }
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.settledPromises.append(promise)
            return promise.futureResult
        }
    }

    private func settle() {
        hasSettled = true
        let promises = settledPromises
        settledPromises.removeAll()
        for promise in promises { promise.succeed() }
    }

    /// Uses `key` from the next association on (SIGHUP); the current association stays.
    public func reloadKey(_ key: PreSharedKey) -> EventLoopFuture<Void> {
        eventLoop.submit {
            self.key = key
            self.driver.replaceSecurityKey(key)
            self.logger.info("key reloaded", metadata: ["key": "\(key.name)"])
        }
    }

    /// Graceful stop: closes the listeners (no new connections), lets running streams finish until `deadline`,
    /// then shuts the association down (SCTP SHUTDOWN), waits up to `closeTimeout` for it to close and stops.
    public func drainAndStop(deadline: NIODeadline, closeTimeout: TimeAmount = .seconds(2)) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.isDraining = true
            self.onStateChange = nil
            self.reconnectTask?.cancel()
            let closes = self.listeners.map { $0.close().recover { _ in } }
            self.listeners.removeAll()
            let promise = self.eventLoop.makePromise(of: Void.self)
            EventLoopFuture.andAllComplete(closes, on: self.eventLoop).whenComplete { _ in
                self.whenStreamsDone(deadline: deadline) {
                    guard case .ready(let id, _) = self.link else {
                        promise.completeWith(self.stop())
                        return
                    }
                    self.driver.shutdown(id)
                    self.whenClosed(id, deadline: .now() + closeTimeout) {
                        promise.completeWith(self.stop())
                    }
                }
            }
            return promise.futureResult
        }
    }

    /// Calls `body` once the association's streams are all done (the session reports it), or at `deadline`.
    private func whenStreamsDone(deadline: NIODeadline, _ body: @escaping () -> Void) {
        guard case .ready(_, let streams) = link else {
            body()
            return
        }
        let once = OnceCallback(body)
        let timer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [logger] in
            logger.warning("shutdown deadline passed", metadata: ["streams": "\(streams.activeStreams)"])
            once.run()
        }
        streams.drain {
            timer.cancel()
            once.run()
        }
    }

    /// Calls `body` once association `id` has closed (`associationClosed` or `stop`), or at `deadline`.
    private func whenClosed(_ id: SCTPAssociationID, deadline: NIODeadline, _ body: @escaping () -> Void) {
        guard case .ready(let current, _) = link, current == id else {
            body()
            return
        }
        let once = OnceCallback(body)
        let timer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { once.run() }
        closeWaiters.append {
            timer.cancel()
            once.run()
        }
    }

    private func runCloseWaiters() {
        let waiters = closeWaiters
        closeWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    /// Succeeds once the association is authenticated (at once when it is).
    public func whenReady() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if case .ready = self.link { return self.eventLoop.makeSucceededVoidFuture() }
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.readyPromises.append(promise)
            return promise.futureResult
        }
    }

    /// Stops listening, resets every connection, aborts the association and closes the sockets.
    public func stop() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let previous = self.link
            self.link = .stopped
            self.addressWatcher?.stop()
            self.reconnectTask?.cancel()
            self.handshakeTimer?.cancel()
            for waiter in self.waiters.values {
                waiter.timer.cancel()
                waiter.callback(nil)
            }
            self.waiters.removeAll()
            for promise in self.readyPromises { promise.fail(ProxyFailure.serverUnavailable) }
            self.readyPromises.removeAll()
            self.settle()
            self.udp.closeAll()
            self.runCloseWaiters()
            switch previous {
            case .ready(let id, let streams):
                streams.associationLost()
                self.driver.abort(id, reason: "client stopping")
            case .connecting(let id), .authenticating(let id, _, _, _):
                self.driver.abort(id, reason: "client stopping")
            case .down, .stopped:
                break
            }
            let closes = self.listeners.map { $0.close().recover { _ in } }
            self.listeners.removeAll()
            return EventLoopFuture.andAllComplete(closes, on: self.eventLoop).flatMap { self.driver.close() }
        }
    }

    // MARK: - The association

    private func connect() {
        guard case .down = link else { return }
        let servers = configuration.servers
        let server = servers[attempt % servers.count]
        guard let path = pathLocals.firstIndex(where: { $0 != nil }), let local = pathLocals[path] else {
            // Counts as a failed first attempt (systemd hears READY=1 and the proxy answers "server unavailable");
            // the first path to get an address connects at once, and the backoff retries meanwhile.
            logger.warning("no path has an address; waiting for one")
            settle()
            scheduleReconnect()
            return
        }
        connectedPath = path
        logger.info("connecting", metadata: ["server": "\(server)", "from": "\(local.ip)"])
        let id = driver.connect(to: server, peerPort: configuration.serverSCTPPort, from: local)
        if case .down = link { link = .connecting(id) }
        applyPathPolicies(on: id)
        handshakeTimer?.cancel()
        handshakeTimer = eventLoop.assumeIsolated().scheduleTask(in: configuration.handshakeTimeout) { [self] in
            switch link {
            case .connecting(let current), .authenticating(let current, _, _, _):
                guard current == id else { return }
                logger.warning("no authenticated association in time", metadata: ["server": "\(server)"])
                driver.abort(id, reason: "handshake timed out")
                // Closing reports `.closed`, which schedules the next attempt; make sure one is scheduled.
                if case .connecting(let still) = link, still == id { associationClosed(id, reason: .handshakeTimedOut) }
            case .ready, .down, .stopped:
                return
            }
        }
    }

    /// The next attempt starts after the shortest delay, not the current backoff (a path just got an address).
    func reconnectSoon() {
        guard case .down = link, !isDraining else { return }
        reconnectDelay = configuration.reconnectDelay
        reconnectTask?.cancel()
        reconnectTask = eventLoop.assumeIsolated().scheduleTask(in: reconnectDelay) { [self] in connect() }
    }

    private func scheduleReconnect() {
        guard case .down = link, !isDraining else { return }
        attempt += 1
        let delay = reconnectDelay
        reconnectDelay = min(reconnectDelay * 2, configuration.maxReconnectDelay)
        logger.info("reconnecting", metadata: ["in": "\(delay.nanoseconds / 1_000_000) ms"])
        reconnectTask?.cancel()
        reconnectTask = eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in connect() }
    }

    func handle(_ event: SCTPEvent) {
        switch event {
        case .established(let id, let outbound, let inbound):
            guard case .connecting(let current) = link, current == id else { return }
            var nonce = [UInt8](repeating: 0, count: AggLimits.authFieldLength)
            var generator = SystemRandomNumberGenerator()
            for i in nonce.indices { nonce[i] = UInt8.random(in: .min ... .max, using: &generator) }
            link = .authenticating(
                id, ClientAuthenticator(key: key, nonce: nonce), outbound: outbound, inbound: inbound)
            logger.info("association established; authenticating", metadata: ["association": "\(id)"])
        case .message(let id, let message):
            if message.stream.rawValue == 0, UDPMessage.isUDP(message.ppid) {
                guard case .ready(let current, _) = link, current == id else { return }
                do {
                    udp.receive(
                        try UDPMessage.decode(
                            ppid: message.ppid, payload: message.payload, stream: message.stream,
                            unordered: message.isUnordered))
                } catch {
                    udpMetrics.recordDrop(.malformed)
                    logger.debug("undecodable UDP message", metadata: ["error": "\(error)"])
                }
            } else if message.stream.rawValue == 0 {
                receiveControl(message, on: id)
            } else if case .ready(let current, let streams) = link, current == id {
                streams.receive(message)
            }
        case .writable(let id):
            if case .ready(let current, let streams) = link, current == id { streams.resumeWriting() }
        case .pathStateChanged(let id, let remote, let state):
            logger.info("path \(state)", metadata: ["association": "\(id)", "remote": "\(remote)"])
            if state == .inactive { retireUnusedLocals() }
            onStateChange?()
        case .pathRemoteChanged(let id, let from, let to):
            logger.info("path moved", metadata: ["association": "\(id)", "from": "\(from)", "to": "\(to)"])
        case .shutdownReceived, .associationRefused:
            break
        case .closed(let id, let reason):
            associationClosed(id, reason: reason)
        }
    }

    /// The datagram layer's news: a server that lost the session (it restarted) takes the association with it, so
    /// it is ended here at once rather than after SCTP's failure thresholds; a version mismatch is logged, at most
    /// once a minute, in words the operator can act on.
    func handleSecurityEvent(_ event: DatagramSecurityEvent) {
        switch event {
        case .serverLostSession:
            switch link {
            case .ready(let id, _), .connecting(let id), .authenticating(let id, _, _, _):
                logger.warning(
                    "the server no longer knows this client's session (it restarted); starting a new association",
                    metadata: ["association": "\(id)"])
                driver.abort(id, reason: "server lost the session")
            case .down, .stopped:
                break
            }
        case .versionMismatch(let versions):
            let now = NIODeadline.now()
            if let last = lastVersionWarning, now - last < .seconds(60) { return }
            lastVersionWarning = now
            let spoken =
                versions.lowerBound == versions.upperBound
                ? "version \(versions.lowerBound)" : "versions \(versions.lowerBound) to \(versions.upperBound)"
            logger.error(
                "aggserver speaks datagram protocol \(spoken), this aggclient version \(SecureDatagram.version): install the same agg release on both sides"
            )
        case .clientVersionMismatch:
            break
        }
    }

    private func associationClosed(_ id: SCTPAssociationID, reason: SCTPCloseReason) {
        switch link {
        case .ready(let current, let streams) where current == id:
            streams.associationLost()
            udp.associationLost()
        case .connecting(let current) where current == id, .authenticating(let current, _, _, _) where current == id:
            break
        case .ready, .connecting, .authenticating, .down, .stopped:
            return
        }
        logger.log(
            level: isDraining ? .info : .warning, "association closed",
            metadata: ["association": "\(id)", "reason": "\(reason)"])
        handshakeTimer?.cancel()
        link = .down
        runCloseWaiters()
        settle()
        onStateChange?()
        scheduleReconnect()
    }

    private func receiveControl(_ message: SCTPMessage, on id: SCTPAssociationID) {
        guard case .authenticating(let current, var authenticator, let outbound, let inbound) = link, current == id
        else {
            if case .ready(let current, _) = link, current == id,
                case .control(.ping(let value))? = try? AggMessage.decode(message)
            {
                if replyBudget.mayReply(now: NIODeadline.now().uptimeNanoseconds) {
                    driver.send(ControlMessage.pong(value), on: id)
                } else {
                    metrics.recordRefusal(.controlReplies)
                }
            }
            return
        }
        do {
            guard case .control(let control) = try AggMessage.decode(message) else { return }
            let reply = try authenticator.receive(control)
            link = .authenticating(id, authenticator, outbound: outbound, inbound: inbound)
            if let reply { driver.send(reply, on: id) }
        } catch {
            logger.error("authentication failed", metadata: ["error": "\(error)"])
            metrics.recordAuthentication(succeeded: false)
            driver.abort(id, reason: "authentication failed")
            return
        }
        guard authenticator.isAuthenticated, let hello = authenticator.hello else { return }
        authenticated(id, hello: hello, outbound: outbound, inbound: inbound)
    }

    private func authenticated(_ id: SCTPAssociationID, hello: ControlMessage.Hello, outbound: UInt16, inbound: UInt16)
    {
        handshakeTimer?.cancel()
        replyBudget = ControlReplyBudget()
        var session = StreamSession(
            role: .client,
            table: .client(
                outboundStreams: outbound, inboundStreams: inbound, maxStreams: hello.maxStreams,
                ownLimit: configuration.limits.streamsPerAssociation),
            receiveCredit: configuration.limits.streamCredit, sendCredit: hello.streamCredit,
            idleTimeout: TimeAmount(configuration.limits.streamIdleTimeout),
            openTimeout: configuration.openTimeout,
            bufferedBytesLimit: configuration.limits.bufferedBytesPerAssociation, logger: logger, now: .now())
        session.metrics = metrics
        let streams = StreamSessionHost(driver: driver, association: id, session: session)
        streams.onFatalError = { [unowned self] reason in driver.abort(id, reason: reason) }
        link = .ready(id, streams)
        associationsEstablished += 1
        metrics.recordAuthentication(succeeded: true)
        reconnectDelay = configuration.reconnectDelay
        logger.info("authenticated", metadata: ["association": "\(id)", "key": "\(key.name)"])
        addExtraPaths(id)
        requestPeerPathPolicies(on: id)
        settle()
        onStateChange?()
        let waiting = waiters
        waiters.removeAll()
        for waiter in waiting.sorted(by: { $0.key < $1.key }).map(\.value) {
            waiter.timer.cancel()
            waiter.callback(streams)
        }
        let promises = readyPromises
        readyPromises.removeAll()
        for promise in promises { promise.succeed() }
    }

    /// Multipath: every path after the first joins the association with an ASCONF-ADD sent from its own address.
    private func addExtraPaths(_ id: SCTPAssociationID) {
        for index in pathLocals.indices where index != connectedPath {
            guard let local = pathLocals[index] else { continue }
            let toward = index < configuration.servers.count ? configuration.servers[index] : nil
            do {
                try driver.addLocalAddress(local, toward: toward, on: id)
                logger.info(
                    "adding path", metadata: ["local": "\(local)", "toward": "\(toward?.description ?? "any")"])
            } catch {
                logger.warning("cannot add path", metadata: ["local": "\(local)", "error": "\(error)"])
            }
        }
    }

    // MARK: - Streams

    /// Opens a stream for a proxied connection; see `SCTPStreamConnector`.
    func openStream(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { [metrics] in metrics.recordConnection(ConnectionOutcome($0)) }
        let limits = configuration.limits
        withStreams { streams in
            guard let streams else {
                promise.fail(ProxyFailure.serverUnavailable)
                return
            }
            streams.open(
                StreamTarget(target), initialData: initialData, inbound: inbound,
                waitingUpTo: TimeAmount(limits.streamWait), queueLimit: limits.streamWaitQueue, promise: promise)
        }
        return promise.futureResult
    }

    // MARK: - UDP

    /// Sets up a SOCKS5 UDP relay; see `ClientUDPRelays.associate`. Call on the event loop.
    func associateUDP(expectedSource: ProxyTarget, control: any Channel) -> EventLoopFuture<SocketAddress> {
        udp.associate(expectedSource: expectedSource, control: control)
    }

    /// Binds router mode's UDP socket (nftables `tproxy`, IP_TRANSPARENT) on `address`; see
    /// `ClientUDPRelays.startTransparent`. Fails without CAP_NET_RAW or CAP_NET_ADMIN.
    public func listenTransparentUDP(address: SCTPSocketAddress) -> EventLoopFuture<SCTPSocketAddress> {
        eventLoop.submit { try self.udp.startTransparent(address: address) }
    }

    /// Whether a UDP datagram would find room in the association's send queue (true without an association).
    private var isUDPWritable: Bool {
        guard case .ready(let id, _) = link else { return true }
        return driver.isWritable(id)
    }

    /// Sends a UDP relay message over the ready association; false without one.
    private func sendUDP(_ message: UDPMessage) -> Bool {
        guard case .ready(let id, _) = link else { return false }
        do {
            try driver.send(message, on: id, lifetime: configuration.udp.lifetime)
            return true
        } catch {
            logger.debug("UDP send failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Calls `body` with the ready streams, at once or when the association is up; with nil after
    /// `serverWait`.
    private func withStreams(_ body: @escaping (StreamSessionHost?) -> Void) {
        switch link {
        case .ready(_, let streams):
            body(streams)
        case .stopped:
            body(nil)
        case .down, .connecting, .authenticating:
            let key = nextWaiter
            nextWaiter += 1
            let timer = eventLoop.assumeIsolated().scheduleTask(in: configuration.serverWait) { [self] in
                guard let waiter = waiters.removeValue(forKey: key) else { return }
                waiter.callback(nil)
            }
            waiters[key] = Waiter(callback: body, timer: timer)
        }
    }

    // MARK: - Status

    /// The name of this client's key, which the server labels its association with.
    var keyName: String { key.name }

    /// The configured name of the path that sends from `local` now (`Configuration.pathNames`); nil for a path given
    /// as a bare address, or an address no path uses any more. Call on the event loop.
    func configuredPathName(local: SCTPIPAddress) -> String? {
        guard let index = pathLocals.firstIndex(where: { $0?.ip == local }), index < configuration.pathNames.count
        else { return nil }
        return configuration.pathNames[index]
    }

    /// Whether the association is authenticated, its paths in the active state and its open streams, for the
    /// systemd status line. Call on the event loop.
    public func summary() -> (isReady: Bool, activePaths: Int, streams: Int) {
        guard case .ready(let id, let streams) = link else { return (false, 0, 0) }
        let active = driver.endpoint.paths(of: id).filter { $0.state == .active }.count
        return (true, active, streams.activeStreams)
    }

    /// One line per path and the stream count, for the metrics endpoint and logs. Call on the event loop.
    func statusLines() -> [String] {
        var lines: [String] = []
        switch link {
        case .ready(let id, let streams):
            lines.append(
                "association \(id) ready streams=\(streams.activeStreams)/\(streams.streamLimit) opened=\(streams.streamsOpened) "
                    + "bytes_up=\(streams.bytesSent) bytes_down=\(streams.bytesReceived)")
            for path in driver.endpoint.paths(of: id) {
                lines.append(
                    "path local=\(path.local?.description ?? "-") remote=\(path.remote) state=\(path.state) "
                        + "cwnd=\(path.cwnd)\(path.srtt.map { " srtt_ms=\($0.milliseconds)" } ?? "") "
                        + "bytes_sent=\(path.bytesSent)")
            }
        case .connecting, .authenticating: lines.append("association connecting")
        case .down: lines.append("association down")
        case .stopped: lines.append("stopped")
        }
        let stats = driver.statistics
        lines.append(
            "udp datagrams_sent=\(stats.datagramsSent) datagrams_received=\(stats.datagramsReceived) "
                + "send_failures=\(stats.sendFailures)")
        return lines
    }
}

/// The `ProxyConnector` of aggclient: each connection becomes a stream of the association. OPEN leaves at once,
/// with any initial data right behind it (no extra round trip); the ingress learns the OPEN-RESULT. The inbound
/// channel must live on the service's event loop (`AggClientService.listen` binds there).
public struct SCTPStreamConnector: ProxyConnector {
    let service: AggClientService

    public func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void>
    {
        guard inbound.eventLoop === service.eventLoop else {
            return inbound.eventLoop.makeFailedFuture(ProxyFailure.generalFailure)
        }
        inbound.eventLoop.preconditionInEventLoop()
        return service.openStream(to: target, initialData: initialData, inbound: inbound)
    }

    public var supportsUDPAssociate: Bool { true }

    public func associateUDP(expectedSource: ProxyTarget, control: any Channel) -> EventLoopFuture<SocketAddress> {
        guard control.eventLoop === service.eventLoop else {
            return control.eventLoop.makeFailedFuture(ProxyFailure.generalFailure)
        }
        return service.associateUDP(expectedSource: expectedSource, control: control)
    }
}

extension TimeAmount {
    /// A Swift `Duration` as NIO time.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
