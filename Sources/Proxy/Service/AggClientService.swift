import AggConfig
import AggIngress
import AggObservability
import AggProtocol
import AggTransport
import Logging
import NIOCore
import NIOPosix
import SCTPEngine

/// aggclient's core: the glue that performs `ClientLink`'s decisions (which server group, when to reconnect, fail
/// over and return) with one SCTP driver per server group, runs one `ClientSession` per attempt (handshake,
/// authentication, streams) with one timer each, adds every extra path to the association in use, and opens one
/// stream per proxied TCP connection through `connector`. Everything runs on one event loop, the proxy
/// listeners included, so a connection, its stream and the association never cross threads.
public final class AggClientService: @unchecked Sendable {
    /// What the service needs; `ClientSettings` plus resolution fill it.
    public struct Configuration: Sendable {
        /// The server's UDP addresses; the first is dialled, the others are extra paths' destinations. The first
        /// server group when `serverGroups` is empty.
        public var servers: [SCTPSocketAddress]
        /// Several servers in order of preference (`server-group`), each the addresses of one server and, if it
        /// has its own, the key it knows this client by; empty means one group, `servers` with `key`.
        public var serverGroups: [ServerGroup] = []
        /// With several groups: a server from which nothing authenticated came for this long is given up for the
        /// next group (`ClientLink.Configuration.serverTimeout`).
        public var serverTimeout: TimeAmount = .milliseconds(1500)
        /// The paths, one local address each; the first with an address carries the handshake.
        public var paths: [Path]
        public var key: PreSharedKey
        public var limits = StreamLimits()
        /// How long a new connection waits for the association before it fails with `.serverUnavailable`.
        public var serverWait: TimeAmount = .seconds(10)
        /// How long the handshake and authentication may take before the attempt is abandoned.
        public var handshakeTimeout: TimeAmount = .seconds(10)
        /// How long an OPEN waits for its OPEN-RESULT (the server's connect timeout plus a margin).
        public var openTimeout: TimeAmount = .seconds(20)
        /// When a proxied connection's application hears that its target is connected (`early-reply`).
        public var earlyReply = EarlyReply.known
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

        /// Paths from `paths`, bare addresses with the default policy.
        public init(servers: [SCTPSocketAddress], paths: [SCTPIPAddress?], key: PreSharedKey) {
            self.init(servers: servers, paths: paths.map { Path(address: $0) }, key: key)
        }

        public init(servers: [SCTPSocketAddress], paths: [Path], key: PreSharedKey) {
            self.servers = servers
            self.paths = paths
            self.key = key
        }

        /// The server groups in order of preference: `serverGroups`, or `servers` as the only one.
        var groups: [ServerGroup] { serverGroups.isEmpty ? [ServerGroup(addresses: servers)] : serverGroups }

        /// One configured path (`--path`): where it sends from, what it is called and its policy.
        public struct Path: Sendable, Equatable {
            /// The local address to send from; nil while the path's `interface` has no address: it joins once it
            /// gets one.
            public var address: SCTPIPAddress?
            /// The interface the path was named by (`--path IFACE`); nil for an address. Such a path's socket is
            /// bound to the interface too (SO_BINDTODEVICE) and follows the interface's address.
            public var interface: String?
            /// What the status page, `aggclient status` and the metrics call the path: the name given in
            /// `--path NAME=…`, else the interface it was given as; nil for a bare address (the status monitor then
            /// names it after the interface that holds the address).
            public var name: String?
            /// Its mode, priority and rate cap (`--path wwan0,backup,rate=5mbit`); changed at run time by
            /// `changePath` (`aggclient path NAME ...`).
            public var policy: SCTPPathPolicy

            public init(
                address: SCTPIPAddress?, interface: String? = nil, name: String? = nil,
                policy: SCTPPathPolicy = .default
            ) {
                self.address = address
                self.interface = interface
                self.name = name
                self.policy = policy
            }
        }
    }

    /// One server: its UDP addresses (the first dialled, the others extra paths' destinations, attempts rotating
    /// over them) and the key it knows this client by (nil: the configuration's `key`).
    public struct ServerGroup: Sendable, Equatable {
        public var addresses: [SCTPSocketAddress]
        public var key: PreSharedKey?

        public init(addresses: [SCTPSocketAddress], key: PreSharedKey? = nil) {
            self.addresses = addresses
            self.key = key
        }
    }

    /// One server group's driver: its own sockets (bound to the paths' addresses, ephemeral ports), its own
    /// datagram security session with the group's key, and the associations set up over it. Confined to the
    /// service's event loop.
    final class GroupDriver: @unchecked Sendable {
        let group: Int
        let driver: SCTPDriver
        let servers: [SCTPSocketAddress]
        /// The key this group's server knows the client by.
        var key: PreSharedKey
        /// The local address each path sends from on this driver now, by path index (nil: its interface has no
        /// address); the addresses that were replaced wait in `retiringLocals` until no path of the engine uses
        /// them.
        var pathLocals: [SCTPSocketAddress?] = []
        var retiringLocals: [SCTPSocketAddress] = []
        /// The address a path had before its interface lost it, by path index: the one to replace when a new one
        /// comes.
        var lostLocals: [Int: SCTPSocketAddress] = [:]
        /// The path the last association was set up over.
        var connectedPath = 0
        /// The link's attempt behind each association of this driver.
        var links: [SCTPAssociationID: ClientLinkID] = [:]
        /// The association the last message was for (`AggClientService.listed`): each connection brings several
        /// messages, nearly all for the association in use, and two dictionary lookups each cost more than this
        /// check.
        var recent: LinkAssociation?
        /// What the server sent that the driver authenticated (datagrams opened, or received in plaintext), when
        /// last looked at: a change is news of the server for `ClientSession.handleHeard`.
        var heardCount = 0

        init(group: Int, driver: SCTPDriver, servers: [SCTPSocketAddress], key: PreSharedKey) {
            self.group = group
            self.driver = driver
            self.servers = servers
            self.key = key
        }

        /// Datagrams from the server that proved to be its own so far.
        var authenticatedReceived: Int {
            driver.isEncrypted ? driver.securityStatistics.opened : driver.statistics.datagramsReceived
        }
    }

    /// An attempt or association of the link: its state machine (`ClientSession`), its group's driver and its id
    /// there, and what the glue keeps for it. The holder of its streams' `StreamSessionHost`.
    final class LinkAssociation: StreamSessionHolder {
        let group: GroupDriver
        let id: SCTPAssociationID
        /// The link's attempt this association is.
        let linkID: ClientLinkID
        /// Whether the service's `associations` holds this one under `linkID` (false once it is dropped): the
        /// test `associations[linkID] === self` without hashing the id.
        var isListed = false
        /// Handshake, authentication, PING replies, the streams: every decision about this association's life.
        var machine: ClientSession
        /// The one timer at `machine.nextDeadline` (the attempt's deadline, then the streams').
        var timer = DeadlineTimer()
        /// The streams' sockets, once the link made the association ready (the streams are `machine`'s).
        var streams: StreamSessionHost?
        /// A more preferred server took over: the association is shut down once its streams are done.
        var isRetired = false
        /// Whether the service is performing `machine`'s actions: a re-entrant call leaves them to that loop.
        var isPerforming = false
        /// The service's loop over `machine`'s actions.
        var perform: () -> Void = {}

        init(group: GroupDriver, id: SCTPAssociationID, linkID: ClientLinkID, machine: ClientSession) {
            self.group = group
            self.id = id
            self.linkID = linkID
            self.machine = machine
        }

        /// The service's `associations` dropped it (`group.recent` too, which would otherwise keep it and its group
        /// alive in a cycle).
        func unlist() {
            isListed = false
            if group.recent === self { group.recent = nil }
        }

        /// The association ended: its streams' sockets are reset, its timer goes.
        func end() {
            machine.handleClosed()
            perform()
            timer.cancel()
        }

        func withStreams<R>(_ body: (inout StreamSession) -> R) -> R? { machine.withStreams(body) }

        func performActions() { perform() }
    }

    public let configuration: Configuration
    /// The driver of the server group in use (or the last one used): what the status page and the metrics show.
    /// Call on the event loop once the service started.
    public var driver: SCTPDriver { shownGroup.driver }
    /// Connections by outcome, bytes relayed, authentications: for the status endpoint.
    public let metrics = ProxyMetrics()
    /// UDP flows, datagrams and bytes relayed, drops by reason.
    public let udpMetrics: UDPRelayMetrics
    public let eventLoop: any EventLoop
    let logger: Logger
    /// The SOCKS5 UDP relays and their flows; made in `start`.
    private(set) var udp: ClientUDPRelays!

    /// Where the association lifecycle stands; every change goes through `perform`.
    private(set) var link: ClientLink
    /// Each group's driver once an attempt needed it, by group index.
    private(set) var groupDrivers: [GroupDriver?]
    /// The group the status shows: the one in use, else the last one used.
    private var shownGroupIndex = 0
    /// Every attempt and association the link knows or retired, by attempt.
    private var associations: [ClientLinkID: LinkAssociation] = [:]
    private var isPerforming = false
    private var timer = DeadlineTimer()
    /// Connections waiting for the association, by the link's waiter id.
    private var waiters: [Int: (StreamSessionHost?) -> Void] = [:]
    private var isStopped = false
    /// Whether `stopping` was begun: before that it has no action and no deadline, and it is not asked (a generic
    /// type of another module, each call to it costs metadata look-ups, and `perform` runs for every message).
    private var isStopBegun = false

    /// DATA bytes received from the server and not yet accepted by local sockets (capped by
    /// `StreamLimits.bufferedBytesPerAssociation`); 0 without an association. Call on the event loop.
    var bufferedBytes: Int { currentStreams?.bufferedBytes ?? 0 }
    /// The configured paths with each one's policy now: the configured one until `changePath` changes it.
    var paths: [Configuration.Path]
    var addressWatcher: PathAddressWatcher?
    private var listeners: [any Channel] = []
    private var readyPromises: [EventLoopPromise<Void>] = []
    /// Graceful stop (`drainAndStop`): when the streams are done, when to shut the association down, when the
    /// stop is complete. Its deadlines share the link's timer.
    private var stopping = GracefulStop<ClientLinkID>()
    /// Completed with `stop()` once `stopping` finishes.
    private var stopPromise: EventLoopPromise<Void>?
    /// Callers of `whenFirstAttemptSettled` waiting for the link's `.settled`.
    private var settledPromises: [EventLoopPromise<Void>] = []
    /// The key the next association authenticates with (groups without their own key); `reloadKey(_:)` replaces
    /// it.
    private var key: PreSharedKey
    /// When a version mismatch was last logged.
    private var lastVersionWarning: NIODeadline?

    /// Called on the event loop when the association comes up or goes down or a path changes state (the daemon
    /// refreshes its systemd status line).
    public var onStateChange: (() -> Void)?

    /// Associations established and authenticated since start, for status and tests.
    public private(set) var associationsEstablished = 0

    private init(configuration: Configuration, first: GroupDriver, eventLoop: any EventLoop, logger: Logger) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.logger = logger
        self.key = configuration.key
        self.paths = configuration.paths
        self.udpMetrics = UDPRelayMetrics(registry: metrics.registry)
        var linkConfiguration = ClientLink.Configuration()
        linkConfiguration.groups = configuration.groups.map(\.addresses.count)
        linkConfiguration.serverWait = configuration.serverWait
        linkConfiguration.handshakeTimeout = configuration.handshakeTimeout
        linkConfiguration.reconnectDelay = configuration.reconnectDelay
        linkConfiguration.maxReconnectDelay = configuration.maxReconnectDelay
        linkConfiguration.serverTimeout = configuration.serverTimeout
        link = ClientLink(configuration: linkConfiguration)
        groupDrivers = configuration.groups.map { _ in nil }
        groupDrivers[0] = first
        metrics.configureServerGroups(count: configuration.groups.count)
    }

    /// Binds one UDP channel per path (for the preferred group) and starts connecting. The returned service runs
    /// until `stop()`.
    public static func start(
        configuration: Configuration, on eventLoop: any EventLoop,
        logger: Logger = Logger(label: "aggclient")
    ) -> EventLoopFuture<AggClientService> {
        let groups = configuration.groups
        precondition(
            !groups.isEmpty && groups.allSatisfy { !$0.addresses.isEmpty } && !configuration.paths.isEmpty,
            "needs a server and a path")
        let locals = configuration.paths.compactMap { $0.address.map { SCTPSocketAddress(ip: $0, port: 0) } }
        return bindDriver(
            configuration: configuration, locals: locals, key: groups[0].key ?? configuration.key,
            on: eventLoop, logger: logger
        ).flatMapThrowing { driver in
            let first = GroupDriver(
                group: 0, driver: driver, servers: groups[0].addresses, key: groups[0].key ?? configuration.key)
            let service = AggClientService(
                configuration: configuration, first: first, eventLoop: eventLoop, logger: logger)
            service.attach(first)
            service.udp = ClientUDPRelays(
                eventLoop: eventLoop, settings: configuration.udp, metrics: service.udpMetrics, logger: logger,
                isWritable: { [unowned service] in service.isUDPWritable },
                send: { [unowned service] message in service.sendUDP(message) })
            service.followAddresses()
            service.link.start(now: .now())
            service.perform()
            return service
        }
    }

    /// A driver for one server group, its sockets bound to `locals`.
    private static func bindDriver(
        configuration: Configuration, locals: [SCTPSocketAddress], key: PreSharedKey, on eventLoop: any EventLoop,
        logger: Logger
    ) -> EventLoopFuture<SCTPDriver> {
        var generator = SystemRandomNumberGenerator()
        var sctp = configuration.sctp
        sctp.localPort = UInt16.random(in: 49152...65535, using: &generator)
        sctp.maxPathsPerAssociation = configuration.limits.pathsPerAssociation
        // Every stream id SCTP has: the proxy's own limits decide how many are used (`StreamTable.client`).
        sctp.outboundStreams = .max
        sctp.maxInboundStreams = .max
        sctp.cookieSecret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        // The server is agg, which sets the I bit whenever it cannot send more: a SACK every fourth packet halves
        // the acknowledgements a download sends up the uplink (and the datagrams each end handles for them).
        sctp.packetsPerSack = SCTPConfiguration.packetsPerSackWithThisEngine
        var options = SCTPDriver.Options()
        options.segmentationOffload = configuration.segmentationOffload
        for path in configuration.paths {
            if let interface = path.interface, let ip = path.address { options.interfaces[ip] = interface }
        }
        let protection: DatagramProtection = configuration.plaintext ? .plaintext : .client(key: key)
        // Sealed packets need no CRC32c: offered to the server (RFC 9653), used when it offers it back.
        sctp.zeroChecksumMethod = configuration.plaintext ? nil : SecureDatagram.errorDetectionMethod
        return SCTPDriver.bind(
            localAddresses: locals, configuration: sctp, seed: generator.next(), options: options,
            protection: protection, on: eventLoop, logger: logger)
    }

    /// Routes a group driver's events to the service.
    private func attach(_ group: GroupDriver) {
        group.driver.onEvent = { [unowned self, unowned group] event in handle(event, from: group) }
        group.driver.onSecurityEvent = { [unowned self, unowned group] event in
            handleSecurityEvent(event, from: group)
        }
    }

    /// The group driver the status shows.
    var driverGroupShown: GroupDriver { shownGroup }

    private var shownGroup: GroupDriver {
        groupDrivers[shownGroupIndex] ?? groupDrivers.compactMap { $0 }[0]
    }

    /// The streams of the association in use.
    var currentStreams: StreamSessionHost? {
        link.current.flatMap { associations[$0]?.streams }
    }

    /// The streams' settings of a new attempt's session.
    private var streamSettings: SessionStreamSettings {
        let limits = configuration.limits
        return SessionStreamSettings(
            streamLimit: limits.streamsPerAssociation, streamCredit: limits.streamCredit,
            idleTimeout: TimeAmount(limits.streamIdleTimeout), openTimeout: configuration.openTimeout,
            bufferedBytesLimit: limits.bufferedBytesPerAssociation, earlyReply: configuration.earlyReply,
            logger: logger, metrics: metrics)
    }

    /// The group driver and association id of the association in use.
    var currentAssociation: (group: GroupDriver, id: SCTPAssociationID)? {
        guard let current = link.current, let association = associations[current] else { return nil }
        return (association.group, association.id)
    }

    /// Every group driver bound so far.
    var boundGroups: [GroupDriver] { groupDrivers.compactMap { $0 } }

    /// The association id of the link's attempt or association under way on `group`'s driver, if any, and its
    /// phase ("connecting", "authenticating", "ready").
    func linkAssociation(on group: GroupDriver) -> (id: SCTPAssociationID, phase: String)? {
        for (linkID, association) in associations where association.group === group && link.knows(linkID) {
            return (association.id, link.current == linkID ? "ready" : association.machine.phaseName)
        }
        return nil
    }

    /// The connector the proxy listeners hand connections to.
    public var connector: SCTPStreamConnector { SCTPStreamConnector(service: self) }
    /// The transparent listener's connector: its connections are answered early whatever `earlyReply` says, as
    /// there is no proxy reply to hold back (the kernel accepted the connection already): the application's first
    /// bytes follow the OPEN, and a target the server cannot reach ends the connection as it would anyway.
    var transparentConnector: SCTPStreamConnector { SCTPStreamConnector(service: self, earlyReply: .always) }

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
            host: host, port: port, configuration: ingress, connector: transparentConnector, logger: logger)
        listener.ownListeners = ownListeners
        return keepTransparent(listener.bind(group: eventLoop))
    }

    /// Serves the transparent listener on an already listening TCP socket (one systemd passed).
    public func listenTransparent(
        adopting descriptor: CInt, ingress: ProxyIngressConfiguration, ownListeners: [SCTPSocketAddress]
    ) -> EventLoopFuture<(any Channel, TransparentListener.Mode)> {
        var listener = TransparentListener(
            host: "", port: 0, configuration: ingress, connector: transparentConnector, logger: logger)
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
            if self.link.hasSettled { return self.eventLoop.makeSucceededVoidFuture() }
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.settledPromises.append(promise)
            return promise.futureResult
        }
    }

    private func settle() {
        let promises = settledPromises
        settledPromises.removeAll()
        for promise in promises { promise.succeed() }
    }

    /// Uses `key` from the next association on (SIGHUP), for every group without a key of its own; the current
    /// association stays.
    public func reloadKey(_ key: PreSharedKey) -> EventLoopFuture<Void> {
        eventLoop.submit {
            self.key = key
            for group in self.boundGroups where self.configuration.groups[group.group].key == nil {
                group.key = key
                group.driver.replaceSecurityKey(key)
            }
            self.logger.info("key reloaded", metadata: ["key": "\(key.name)"])
        }
    }

    /// Graceful stop: closes the listeners (no new connections), lets running streams finish until `deadline`,
    /// then shuts the association down (SCTP SHUTDOWN), waits up to `closeTimeout` for it to close and stops.
    public func drainAndStop(deadline: NIODeadline, closeTimeout: TimeAmount = .seconds(2)) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if let promise = self.stopPromise { return promise.futureResult }
            self.onStateChange = nil
            self.link.drain()
            self.perform()
            let closes = self.listeners.map { $0.close().recover { _ in } }
            self.listeners.removeAll()
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.stopPromise = promise
            EventLoopFuture.andAllComplete(closes, on: self.eventLoop).whenComplete { _ in
                self.beginStopping(streamsDeadline: deadline, closeTimeout: closeTimeout)
            }
            return promise.futureResult
        }
    }

    /// The listeners are closed: the association in use (if any) drains its streams, then is shut down.
    private func beginStopping(streamsDeadline: NIODeadline, closeTimeout: TimeAmount) {
        let current = link.current.flatMap { associations[$0] != nil ? $0 : nil }
        let draining = current.flatMap { associations[$0]?.machine.isReady == true ? $0 : nil }
        isStopBegun = true
        stopping.begin(
            associations: current.map { [$0] } ?? [], withStreams: Set(draining.map { [$0] } ?? []),
            streamsDeadline: streamsDeadline, closeTimeout: closeTimeout, now: .now())
        if let draining, let association = associations[draining] {
            // `.drained` (at once when no stream is open) tells the graceful stop.
            association.machine.handleDrain()
            perform(association, draining)
        }
        perform()
    }

    /// Succeeds once the association is authenticated (at once when it is).
    public func whenReady() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if self.link.current != nil { return self.eventLoop.makeSucceededVoidFuture() }
            let promise = self.eventLoop.makePromise(of: Void.self)
            self.readyPromises.append(promise)
            return promise.futureResult
        }
    }

    /// Stops listening, resets every connection, aborts every association and closes the sockets.
    public func stop() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            self.isStopped = true
            self.addressWatcher?.stop()
            self.link.stop()
            self.perform()
            self.timer.cancel()
            for promise in self.readyPromises { promise.fail(ProxyFailure.serverUnavailable) }
            self.readyPromises.removeAll()
            self.settle()
            self.udp.closeAll()
            // Retired associations still finishing their streams go too.
            let ended = self.associations
            self.associations.removeAll()
            // All unlisted before any ends: an event that ending one raises finds none of them listed.
            for association in ended.values { association.unlist() }
            for (id, association) in ended {
                association.end()
                association.group.driver.abort(association.id, reason: "client stopping")
                self.stopping.handleClosed(id, now: .now())
            }
            self.performStop()
            let closes = self.listeners.map { $0.close().recover { _ in } }
            self.listeners.removeAll()
            let drivers = self.boundGroups.map { $0.driver.close() }
            return EventLoopFuture.andAllComplete(closes + drivers, on: self.eventLoop)
        }
    }

    // MARK: - Performing the link's actions

    /// Performs what the link and the graceful stop ask, then re-arms the one timer at their next deadline.
    /// Reentrant calls (a driver event while an action runs) leave their actions to the outer loop.
    func perform() {
        guard !isPerforming else { return }
        isPerforming = true
        while let action = link.pollAction() { perform(action) }
        performStop()
        isPerforming = false
        rearm()
    }

    /// Performs what the graceful stop asks. Kept out of `perform(_:)`'s switch over the link's actions (see
    /// `groupChanged`).
    @inline(never)
    private func performStop() {
        guard isStopBegun else { return }
        while let action = stopping.pollAction() {
            switch action {
            case .shutDown(let id):
                guard let association = associations[id] else { continue }
                association.group.driver.shutdown(association.id)
            case .streamsDeadlinePassed:
                logger.warning(
                    "shutdown deadline passed", metadata: ["streams": "\(currentStreams?.activeStreams ?? 0)"])
            case .finish:
                stopPromise?.completeWith(stop())
            }
        }
    }

    private func perform(_ action: ClientLinkAction) {
        switch action {
        case .connect(let id, let group, let address, let deadline):
            connect(id, group: group, address: address, deadline: deadline)
        case .abort(let id, let reason):
            guard let association = associations[id] else { return }
            association.machine.handleClosed()
            perform(association, id)
            association.group.driver.abort(association.id, reason: reason)
        case .ready(let id, let keepalive):
            authenticated(id, keepalive: keepalive)
        case .retire(let id):
            retire(id)
        case .lost(let id, let serverDead):
            guard let association = associations[id] else { return }
            if serverDead {
                logger.warning(
                    "the server stopped answering; trying the next server group",
                    metadata: ["group": "\(association.group.group)", "association": "\(association.id)"])
                metrics.recordFailover()
            }
            association.machine.handleClosed()
            perform(association, id)
            udp.associationLost()
        case .deliver(let waiter, let id):
            waiters.removeValue(forKey: waiter)?(associations[id]?.streams)
        case .giveUp(let waiter):
            waiters.removeValue(forKey: waiter)?(nil)
        case .settled:
            settle()
        case .changed:
            groupChanged()
        }
    }

    /// The group in use changed (or the association came or went): status and metrics follow. Kept out of line:
    /// Swift 6.3.1's release build crashes in CopyPropagation ("Found outside of lifetime use") when this reads
    /// `link` inside `perform(_:)`'s switch.
    @inline(never)
    private func groupChanged() {
        let inUse = link.groupInUse
        if let inUse { shownGroupIndex = inUse }
        metrics.recordServerGroup(inUse, server: inUse.map { "\(configuration.groups[$0].addresses[0])" })
        onStateChange?()
    }

    private func rearm() {
        let stopDeadline = isStopBegun ? stopping.nextDeadline : nil
        let deadline = isStopped ? nil : DeadlineTimer.earliest(link.readNextDeadline(), stopDeadline)
        guard !timer.isArmed(at: deadline) else { return }
        timer.arm(at: deadline, on: eventLoop) { [self] in
            timer.fired()
            let now = NIODeadline.now()
            if let current = link.current, let association = associations[current] {
                reportHeard(association, current, now: now)
                perform(association, current)
            }
            link.handleTimeout(now: now)
            stopping.handleTimeout(now: now)
            perform()
        }
    }

    /// Tells the session of the association in use whether its server sent anything authenticated since the last
    /// look (other associations' servers are not watched).
    private func reportHeard(_ association: LinkAssociation, _ id: ClientLinkID, now: NIODeadline) {
        guard link.current == id else { return }
        let group = association.group
        let count = group.authenticatedReceived
        guard count != group.heardCount else { return }
        group.heardCount = count
        association.machine.handleHeard(now: now)
    }

    /// Starts attempt `id` toward address `address` of group `group`, binding the group's driver first if it has
    /// none yet.
    private func connect(_ id: ClientLinkID, group: Int, address: Int, deadline: NIODeadline) {
        if let driver = groupDrivers[group] {
            connect(id, on: driver, address: address, deadline: deadline)
            return
        }
        let groupConfiguration = configuration.groups[group]
        let key = groupConfiguration.key ?? key
        // The paths' addresses now, as the preferred group's driver follows them.
        let locals = (groupDrivers[0]?.pathLocals ?? []).compactMap { $0.map { SCTPSocketAddress(ip: $0.ip, port: 0) } }
        Self.bindDriver(configuration: configuration, locals: locals, key: key, on: eventLoop, logger: logger)
            .whenComplete { [self] result in
                switch result {
                case .success(let driver):
                    if isStopped {
                        _ = driver.close()
                        return
                    }
                    let bound = GroupDriver(
                        group: group, driver: driver, servers: groupConfiguration.addresses, key: key)
                    var addresses = driver.localAddresses.makeIterator()
                    bound.pathLocals = (groupDrivers[0]?.pathLocals ?? []).map { $0 == nil ? nil : addresses.next() }
                    groupDrivers[group] = bound
                    attach(bound)
                    connect(id, on: bound, address: address, deadline: deadline)
                case .failure(let error):
                    logger.warning(
                        "cannot bind the server group's sockets", metadata: ["group": "\(group)", "error": "\(error)"])
                    link.handleClosed(id, now: .now())
                }
                perform()
            }
    }

    private func connect(_ id: ClientLinkID, on group: GroupDriver, address: Int, deadline: NIODeadline) {
        guard link.knows(id) else { return }  // abandoned while the sockets were bound
        let server = group.servers[address]
        guard let path = group.pathLocals.firstIndex(where: { $0 != nil }), let local = group.pathLocals[path] else {
            // Counts as a failed attempt (systemd hears READY=1 and the proxy answers "server unavailable"); the
            // first path to get an address connects soon, and the backoff retries meanwhile.
            logger.warning("no path has an address; waiting for one")
            link.handleClosed(id, now: .now())
            return
        }
        group.connectedPath = path
        logger.info(
            "connecting", metadata: ["server": "\(server)", "from": "\(local.ip)", "group": "\(group.group)"])
        group.heardCount = group.authenticatedReceived
        let association = group.driver.connect(to: server, peerPort: configuration.serverSCTPPort, from: local)
        let linkAssociation = LinkAssociation(
            group: group, id: association, linkID: id,
            machine: ClientSession(streams: streamSettings, deadline: deadline))
        linkAssociation.perform = { [unowned self, unowned linkAssociation] in perform(linkAssociation, id) }
        associations[id] = linkAssociation
        linkAssociation.isListed = true
        group.links[association] = id
        applyPathPolicies(on: association, group: group)
        perform(linkAssociation, id)
    }

    // MARK: - Performing a session's actions

    /// Performs what attempt `id`'s session asks, its streams' actions included, then re-arms its one timer at its
    /// next deadline, then, when the session told the link something, performs what the link asks in turn.
    /// Re-entrant calls (an action that ends the association, a write that fails at once) leave their actions to
    /// the outer loop.
    private func perform(_ association: LinkAssociation, _ id: ClientLinkID) {
        guard !association.isPerforming else { return }
        association.isPerforming = true
        var toldLink = false
        while let action = association.machine.pollAction() {
            switch action {
            case .stream(let action):
                association.streams?.perform(action)
            case .send(let message):
                association.group.driver.send(message, on: association.id)
            case .authenticated:
                link.handleAuthenticated(id, now: .now())
                toldLink = true
            case .authenticationFailed(let error):
                logger.error("authentication failed", metadata: ["error": "\(error)"])
                metrics.recordAuthentication(succeeded: false)
            case .heard:
                link.handleHeard(id, now: .now())
                toldLink = true
            case .awaitingPong:
                link.handleAwaitingPong(id)
                toldLink = true
            case .serverSilent:
                link.handleServerSilent(id, now: .now())
                toldLink = true
            case .pongRefused:
                metrics.recordRefusal(.controlReplies)
            case .drained:
                drained(association, id)
            case .abort(let reason):
                // The link hears of it as closed: an attempt (handshake timed out, authentication failed) first,
                // so that its ABORT's `.closed` event finds it forgotten; the association in use through that event,
                // as any association that closed (a second report is ignored).
                if link.current != id { link.handleClosed(id, now: .now()) }
                association.group.driver.abort(association.id, reason: reason)
                link.handleClosed(id, now: .now())
                toldLink = true
            }
        }
        association.isPerforming = false
        let next = association.isListed ? association.machine.readNextDeadline() : nil
        if !association.timer.isArmed(at: next) {
            association.timer.arm(at: next, on: eventLoop) { [self] in
                association.timer.fired()
                guard association.isListed else { return }
                let now = NIODeadline.now()
                reportHeard(association, id, now: now)
                association.machine.handleTimeout(now: now)
                perform(association, id)
            }
        }
        if toldLink { perform() }
    }

    /// Association `id`'s last stream ended while it drained: a retired association is shut down; the one in use
    /// tells the graceful stop.
    private func drained(_ association: LinkAssociation, _ id: ClientLinkID) {
        if association.isRetired {
            guard association.isListed else { return }
            association.group.driver.shutdown(association.id)
        } else {
            stopping.handleStreamsDrained(id, now: .now())
            performStop()
        }
    }

    /// The link made attempt `id` the association in use: the sockets of its session's streams are hosted, and
    /// with several server groups its session watches the server.
    private func authenticated(_ id: ClientLinkID, keepalive: TimeAmount?) {
        guard let association = associations[id], association.machine.isReady else { return }
        let group = association.group
        association.streams = StreamSessionHost(driver: group.driver, association: association.id, holder: association)
        if let keepalive {
            association.machine.startKeepalive(serverTimeout: keepalive, now: .now())
            perform(association, id)
        }
        let sctpID = association.id
        associationsEstablished += 1
        metrics.recordAuthentication(succeeded: true)
        logger.info(
            "authenticated",
            metadata: ["association": "\(sctpID)", "key": "\(group.key.name)", "group": "\(group.group)"])
        addExtraPaths(sctpID, group: group)
        requestPeerPathPolicies(on: sctpID, group: group)
        let promises = readyPromises
        readyPromises.removeAll()
        for promise in promises { promise.succeed() }
    }

    /// A more preferred server answered: the association `id` takes no new connection, finishes its streams and
    /// is shut down. Its UDP flows start again on the new association.
    private func retire(_ id: ClientLinkID) {
        guard let association = associations[id] else { return }
        logger.info(
            "a more preferred server group answers again; new connections go there, running ones finish here",
            metadata: ["group": "\(association.group.group)", "association": "\(association.id)"])
        metrics.recordReturn()
        udp.associationLost()
        guard association.machine.isReady else {
            association.group.driver.shutdown(association.id)
            return
        }
        // `.drained` (at once when no stream is open) shuts it down.
        association.isRetired = true
        association.machine.stopKeepalive()
        association.machine.handleDrain()
        perform(association, id)
    }

    /// Multipath: every path after the first joins the association with an ASCONF-ADD sent from its own address.
    private func addExtraPaths(_ id: SCTPAssociationID, group: GroupDriver) {
        for index in group.pathLocals.indices where index != group.connectedPath {
            guard let local = group.pathLocals[index] else { continue }
            let toward = index < group.servers.count ? group.servers[index] : nil
            do {
                try group.driver.addLocalAddress(local, toward: toward, on: id)
                logger.info(
                    "adding path", metadata: ["local": "\(local)", "toward": "\(toward?.description ?? "any")"])
            } catch {
                logger.warning("cannot add path", metadata: ["local": "\(local)", "error": "\(error)"])
            }
        }
    }

    /// The next attempt starts after the shortest delay, not the current backoff (a path just got an address).
    func reconnectSoon() {
        guard !link.isDraining else { return }
        link.handlePathAvailable(now: .now())
        perform()
    }

    // MARK: - Driver events

    func handle(_ event: SCTPEvent, from group: GroupDriver) {
        switch event {
        case .established(let id, let outbound, let inbound):
            guard let (linkID, association) = listed(id, in: group) else { return }
            var nonce = [UInt8](repeating: 0, count: AggLimits.authFieldLength)
            var generator = SystemRandomNumberGenerator()
            for i in nonce.indices { nonce[i] = UInt8.random(in: .min ... .max, using: &generator) }
            association.machine.handleEstablished(
                authenticator: ClientAuthenticator(key: group.key, nonce: nonce), outbound: outbound,
                inbound: inbound)
            logger.info("association established; authenticating", metadata: ["association": "\(id)"])
            perform(association, linkID)
        case .message(let id, let message):
            if message.stream.rawValue != 0, let (linkID, association) = listed(id, in: group) {
                // A stream's message, the most common event by far.
                association.streams?.prepareToReceive(message)
                association.machine.handleStreamMessage(message, now: .now())
                perform(association, linkID)
                break
            }
            guard let linkID = group.links[id] else { return }
            if message.stream.rawValue == 0, UDPMessage.isUDP(message.ppid) {
                guard link.current == linkID else { return }
                do {
                    udp.receive(try UDPMessage.decode(message))
                } catch {
                    udpMetrics.recordDrop(.malformed)
                    logger.debug("undecodable UDP message", metadata: ["error": "\(error)"])
                }
            } else if let association = associations[linkID] {
                if message.stream.rawValue == 0 {
                    association.machine.handleControlMessage(message, now: .now())
                } else {
                    association.streams?.prepareToReceive(message)
                    association.machine.handleStreamMessage(message, now: .now())
                }
                perform(association, linkID)
            }
        case .writable(let id):
            if let (_, association) = listed(id, in: group) {
                association.streams?.resumeWriting()
            } else if group.links[id] == nil {
                return
            }
        case .pathStateChanged(let id, let remote, let state):
            logger.info("path \(state)", metadata: ["association": "\(id)", "remote": "\(remote)"])
            if state == .inactive { retireUnusedLocals(group) }
            onStateChange?()
        case .pathRemoteChanged(let id, let from, let to):
            logger.info("path moved", metadata: ["association": "\(id)", "from": "\(from)", "to": "\(to)"])
        case .shutdownReceived, .associationRefused:
            break
        case .closed(let id, let reason):
            guard let linkID = group.links.removeValue(forKey: id) else { return }
            let association = associations.removeValue(forKey: linkID)
            association?.unlist()
            association?.end()
            logger.log(
                level: link.isDraining || !link.knows(linkID) ? .info : .warning, "association closed",
                metadata: ["association": "\(id)", "reason": "\(reason)", "group": "\(group.group)"])
            link.handleClosed(linkID, now: .now())
            stopping.handleClosed(linkID, now: .now())
        }
        perform()
    }

    /// The attempt and association that driver association `id` of `group` is, while `associations` lists it.
    /// The last one found is remembered in `group.recent`.
    private func listed(_ id: SCTPAssociationID, in group: GroupDriver) -> (ClientLinkID, LinkAssociation)? {
        if let recent = group.recent, recent.id == id, recent.isListed { return (recent.linkID, recent) }
        guard let linkID = group.links[id], let association = associations[linkID] else { return nil }
        group.recent = association
        return (linkID, association)
    }

    /// The datagram layer's news: a server that lost the session (it restarted) takes the association with it, so
    /// it is ended here at once rather than after SCTP's failure thresholds; a version mismatch is logged, at most
    /// once a minute, in words the operator can act on.
    func handleSecurityEvent(_ event: DatagramSecurityEvent, from group: GroupDriver) {
        switch event {
        case .serverLostSession:
            for (id, linkID) in group.links where link.knows(linkID) {
                logger.warning(
                    "the server no longer knows this client's session (it restarted); starting a new association",
                    metadata: ["association": "\(id)"])
                group.driver.abort(id, reason: "server lost the session")
            }
        case .versionMismatch(let versions):
            let now = NIODeadline.now()
            if let last = lastVersionWarning, now - last < .seconds(60) { return }
            lastVersionWarning = now
            let spoken =
                versions.lowerBound == versions.upperBound
                ? "version \(versions.lowerBound)" : "versions \(versions.lowerBound) to \(versions.upperBound)"
            let ours = SecureDatagram.supportedVersions
            logger.error(
                "aggserver speaks datagram protocol \(spoken), this aggclient versions \(ours.lowerBound) to \(ours.upperBound): install the same agg release on both sides"
            )
        case .clientVersionMismatch:
            break
        }
    }

    // MARK: - Streams

    /// Opens a stream for a proxied connection; see `SCTPStreamConnector`.
    func openStream(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel, earlyReply: EarlyReply? = nil
    ) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Bool.self)
        promise.futureResult.whenComplete { [metrics] in Self.count($0, in: metrics) }
        openStream(to: target, initialData: initialData, inbound: inbound, earlyReply: earlyReply, promise: promise)
        return promise.futureResult.map { _ in }
    }

    /// `openStream` reporting to `completion`, on the event loop, right after the connection is counted: one
    /// callback on the stream's promise where a returned future cost a second one and its caller's hop. Call on the
    /// event loop.
    func openStream(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel, earlyReply: EarlyReply? = nil,
        completion: @escaping (Result<Void, any Error>) -> Void
    ) {
        let promise = eventLoop.makePromise(of: Bool.self)
        let metrics = self.metrics
        promise.futureResult.assumeIsolated().whenComplete { result in
            Self.count(result, in: metrics)
            completion(result.map { _ in })
        }
        openStream(to: target, initialData: initialData, inbound: inbound, earlyReply: earlyReply, promise: promise)
    }

    /// Counts an open's outcome; an early answer (`true`) is counted by the stream session when its OPEN-RESULT
    /// comes.
    private static func count(_ result: Result<Bool, any Error>, in metrics: ProxyMetrics) {
        switch result {
        case .success(true): return
        case .success(false): metrics.recordConnection(.success)
        case .failure(let error): metrics.recordConnection(ConnectionOutcome(.failure(error)))
        }
    }

    private func openStream(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel, earlyReply: EarlyReply?,
        promise: EventLoopPromise<Bool>
    ) {
        // An association takes it at once, as `requestStreams` would deliver it: no waiter, no closure, no trip
        // through the link's actions.
        if let id = link.takingConnections {
            open(
                on: associations[id]?.streams, target: target, initialData: initialData, inbound: inbound,
                earlyReply: earlyReply, promise)
            return
        }
        withStreams { [self] streams in
            open(
                on: streams, target: target, initialData: initialData, inbound: inbound, earlyReply: earlyReply,
                promise)
        }
    }

    /// Opens the stream on `streams`, those of the association in use (nil: there is none).
    private func open(
        on streams: StreamSessionHost?, target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel,
        earlyReply: EarlyReply?, _ promise: EventLoopPromise<Bool>
    ) {
        guard let streams else {
            promise.fail(ProxyFailure.serverUnavailable)
            return
        }
        let limits = configuration.limits
        streams.open(
            StreamTarget(target), initialData: initialData, inbound: inbound, earlyReply: earlyReply,
            waitingUpTo: TimeAmount(limits.streamWait), queueLimit: limits.streamWaitQueue, promise: promise)
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
        guard let (group, id) = currentAssociation else { return true }
        // Stream 0's own room: a light flow's datagrams (DNS, a call) go while an upload fills the queue.
        return group.driver.takesDatagram(id, on: StreamID(0))
    }

    /// Sends a UDP relay message over the association in use; false without one.
    private func sendUDP(_ message: UDPMessage) -> Bool {
        guard let (group, id) = currentAssociation, currentStreams != nil else { return false }
        do {
            try group.driver.send(message, on: id, lifetime: configuration.udp.lifetime)
            return true
        } catch {
            logger.debug("UDP send failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Calls `body` with the streams of the association in use, at once or when there is one; with nil after
    /// `serverWait`.
    private func withStreams(_ body: @escaping (StreamSessionHost?) -> Void) {
        let waiter = link.requestStreams(now: .now())
        waiters[waiter] = body
        perform()
    }

    // MARK: - Status

    /// The name of this client's key (the preferred group's), which the server labels its association with.
    var keyName: String { shownGroup.key.name }

    /// The server group in use (nil: none), its first address, and how often the client failed over and came back.
    public func serverGroupStatus() -> (inUse: Int?, server: SCTPSocketAddress?, failovers: Int, returns: Int) {
        let inUse = link.groupInUse
        return (inUse, inUse.map { configuration.groups[$0].addresses[0] }, link.failovers, link.returns)
    }

    /// The configured name of the path that sends from `local` now (`Configuration.Path.name`); nil for a path
    /// given as a bare address, or an address no path uses any more. Call on the event loop.
    package func configuredPathName(local: SCTPIPAddress) -> String? {
        guard let index = shownGroup.pathLocals.firstIndex(where: { $0?.ip == local }),
            index < configuration.paths.count
        else { return nil }
        return configuration.paths[index].name
    }

    /// Whether the association is authenticated, its paths in the active state and its open streams, for the
    /// systemd status line. Call on the event loop.
    public func summary() -> (isReady: Bool, activePaths: Int, streams: Int) {
        guard let (group, id) = currentAssociation, let streams = currentStreams else { return (false, 0, 0) }
        let active = group.driver.endpoint.paths(of: id).filter { $0.state == .active }.count
        return (true, active, streams.activeStreams)
    }

    /// One line per path and the stream count, for the metrics endpoint and logs. Call on the event loop.
    package func statusLines() -> [String] {
        var lines: [String] = []
        if let (group, id) = currentAssociation, let streams = currentStreams {
            lines.append(
                "association \(id) ready streams=\(streams.activeStreams)/\(streams.streamLimit) opened=\(streams.streamsOpened) "
                    + "bytes_up=\(streams.bytesSent) bytes_down=\(streams.bytesReceived)")
            for path in group.driver.endpoint.paths(of: id) {
                lines.append(
                    "path local=\(path.local?.description ?? "-") remote=\(path.remote) state=\(path.state) "
                        + "cwnd=\(path.cwnd)\(path.srtt.map { " srtt_ms=\($0.milliseconds)" } ?? "") "
                        + "bytes_sent=\(path.bytesSent)")
            }
        } else if isStopped {
            lines.append("stopped")
        } else if linkAssociation(on: shownGroup) != nil {
            lines.append("association connecting")
        } else {
            lines.append("association down")
        }
        if configuration.groups.count > 1 {
            let status = serverGroupStatus()
            lines.append(
                "server_group in_use=\(status.inUse.map { "\($0)" } ?? "none") of=\(configuration.groups.count) "
                    + "server=\(status.server?.description ?? "-") failovers=\(status.failovers) returns=\(status.returns)"
            )
        }
        let stats = driver.statistics
        lines.append(
            "udp datagrams_sent=\(stats.datagramsSent) datagrams_received=\(stats.datagramsReceived) "
                + "send_failures=\(stats.sendFailures) truncated=\(stats.truncatedDatagrams)")
        return lines
    }
}

/// The `ProxyConnector` of aggclient: each connection becomes a stream of the association. OPEN leaves at once,
/// with any initial data right behind it (no extra round trip); the ingress learns the OPEN-RESULT. The inbound
/// channel must live on the service's event loop (`AggClientService.listen` binds there).
public struct SCTPStreamConnector: ProxyConnector {
    let service: AggClientService
    /// When the application is answered; nil: the service's `earlyReply`.
    var earlyReply: EarlyReply?

    init(service: AggClientService, earlyReply: EarlyReply? = nil) {
        self.service = service
        self.earlyReply = earlyReply
    }

    public func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void>
    {
        guard inbound.eventLoop === service.eventLoop else {
            return inbound.eventLoop.makeFailedFuture(ProxyFailure.generalFailure)
        }
        inbound.eventLoop.preconditionInEventLoop()
        return service.openStream(to: target, initialData: initialData, inbound: inbound, earlyReply: earlyReply)
    }

    public func connectWaitingForTarget(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel
    ) -> EventLoopFuture<Void> {
        guard inbound.eventLoop === service.eventLoop else {
            return inbound.eventLoop.makeFailedFuture(ProxyFailure.generalFailure)
        }
        inbound.eventLoop.preconditionInEventLoop()
        return service.openStream(to: target, initialData: initialData, inbound: inbound, earlyReply: .never)
    }

    public func connect(
        to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel,
        completion: @escaping (Result<Void, any Error>) -> Void
    ) {
        guard inbound.eventLoop === service.eventLoop else {
            completion(.failure(ProxyFailure.generalFailure))
            return
        }
        inbound.eventLoop.preconditionInEventLoop()
        service.openStream(
            to: target, initialData: initialData, inbound: inbound, earlyReply: earlyReply, completion: completion)
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
