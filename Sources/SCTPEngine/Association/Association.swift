import Crypto
import DequeModule
import Logging
import NIOCore

/// One SCTP association: the RFC 9260 state machine with its paths, timers, send and receive sides. It is fed
/// packets already validated by the endpoint and the time, and writes datagrams and events to the endpoint's
/// output.
final class Association: DeadlineScheduled {
    let id: SCTPAssociationID
    let configuration: SCTPConfiguration
    let output: EndpointOutput
    var logger: Logger
    var random: SCTPRandom

    var state: AssociationState
    /// What the handshake settled: tags, initial TSNs, the peer's parameters. Until the peer's INIT-ACK on the
    /// initiating side, our offer (`AssociationParameters.offer`). Replaced only whole, by `adopt(_:)`.
    private(set) var parameters: AssociationParameters
    let localPort: UInt16
    let peerPort: UInt16
    /// Whose datagrams created the association: it sees only that owner's datagrams and its own carry it.
    let owner: SCTPOwner
    /// The largest packet a path is given (its MTU): the configuration's, until the layer below says its
    /// datagrams leave more room (`setMaxPacketSize`).
    var maxPacketSize: Int
    /// The layer below carries a packet's last chunk without its padding (agg's packed datagrams), so a DATA packet
    /// may be filled until its unpadded length reaches a path's MTU: the padding that takes it past goes no further
    /// (`setMaxPacketSize`).
    var lastChunkUnpadded = false

    // MARK: Paths
    /// Change a path's addresses, or add or remove one, only through the methods of `Association+Paths.swift`,
    /// which keep the lookups below in step (`rebuildPathLookups`). Everything else names a path by its id.
    var paths = PathTable()
    var nextPathID = 0
    /// The path by (local, remote) pair, and by remote address (the first path to it).
    var pathByRoute: [ArrivalRoute: PathID] = [:]
    /// The entry of `pathByRoute` that `locatePath` found last; cleared whenever the lookups are rebuilt.
    var lastArrivalRoute: (route: ArrivalRoute, path: PathID)?
    var pathByRemote: [SCTPSocketAddress: PathID] = [:]
    /// Per-path policy rules (`Association+PathPolicy.swift`), and whether any path has other than the default.
    var pathPolicies: [SCTPPathSelector: SCTPPathPolicy] = [:]
    /// What the peer asked for its paths with agg's Path Policy ASCONF parameter, by path.
    var peerPathPolicies: [PathID: SCTPPathPolicy] = [:]
    var hasPathPolicies = false

    // MARK: Timers
    var timers = TimerTable()
    /// The endpoint's `DeadlineSchedule` bookkeeping: the deadline this association is scheduled to be visited at.
    var scheduledDeadline: SCTPTime?

    // MARK: Data
    /// The peer's rwnd (RFC 9260 §6.2.1): its a_rwnd less what is in flight, updated by every SACK and send.
    var peerReceiverWindow: UInt32 = 0
    var sendQueue: SendQueue
    var outstanding: OutstandingData
    var dataTracker: DataTracker
    var reassembly: ReassemblyQueue
    /// Receiver-side buffer splitting: what each path holds of the receive buffer out of order.
    var receiveSplitter: ReceiveBufferSplitter<ArrivalRoute>
    /// The path the last DATA came in on: SACKs go back there (RFC 9260 §6.4). Read through `sackPathID`.
    var lastDataPathID: PathID?
    /// The association error counter of RFC 9260 §8.1.
    var errorCount = 0
    /// When the last packet with our tag arrived; nil before any did. A quiet association may be replaced by a
    /// new one of the same owner (`SCTPConfiguration.maxAssociationsPerOwner`).
    var lastReceived: SCTPTime?
    /// Paths on which chunks were newly marked for fast retransmission: one packet of them goes out there
    /// regardless of cwnd. Emptied by every `transmit`; a path removed meanwhile is skipped.
    var fastRetransmitPaths: Set<PathID> = []
    /// Some path has a `Path.recoveryAllowance` that the end of `transmit` must drop.
    var hasRecoveryAllowance = false

    // MARK: AUTH, ASCONF
    var auth = AuthContext()
    var asconf = AsconfState()
    /// Probe a path with HEARTBEAT the moment it is added or gets a new local address, so it is usable within one
    /// round trip. Only tests turn it off, to show what waiting for HB.interval costs.
    var confirmsNewPathsAtOnce = true
    /// The a_rwnd of the peer's last SACK, for sender-side buffer splitting.
    var peerAdvertisedWindow: UInt32 = 0
    /// The largest a_rwnd the peer has advertised in a SACK: about its whole receive buffer.
    var peerLargestAdvertisedWindow: UInt32 = 0
    /// Where the round-robin scheduler starts next.
    var roundRobinCursor = 0
    /// `dataPathIDs()`'s array, kept between transmits so that none is allocated per call.
    var dataPathOrder: [PathID] = []
    /// Rate limits of the log lines a peer can cause on every packet.
    var logLimits = PeerLogLimits()

    // MARK: PR-SCTP (RFC 3758)
    /// A partially reliable message was queued: from then on `transmit` looks for chunks to abandon. Associations
    /// that only ever send reliably never pay for it.
    var usesPartialReliability = false
    /// A FORWARD-TSN goes out with the next `transmit`.
    var isForwardTSNDue = false
    /// The last FORWARD-TSN sent, to hold back duplicates for a round trip (RFC 3758 §3.5 F2).
    var lastForwardTSN: (tsn: TSN, sentAt: SCTPTime)?

    init(
        id: SCTPAssociationID, configuration: SCTPConfiguration, output: EndpointOutput, logger: Logger,
        random: SCTPRandom, parameters: AssociationParameters, peerPort: UInt16, owner: SCTPOwner = .unauthenticated
    ) {
        self.id = id
        self.owner = owner
        self.configuration = configuration
        self.output = output
        var logger = logger
        logger[metadataKey: "association"] = "\(id.rawValue)"
        self.logger = logger
        self.random = random
        self.state = .closed
        self.parameters = parameters
        self.localPort = configuration.localPort
        self.peerPort = peerPort
        self.maxPacketSize = configuration.maxPacketSize
        let sendBuffer = Association.sendBufferLimit(congestionWindows: 0, configuration: configuration)
        self.sendQueue = SendQueue(highWatermark: sendBuffer, lowWatermark: sendBuffer / 2)
        self.outstanding = OutstandingData(
            initialTSN: parameters.localInitialTSN, policy: Association.fastRetransmitPolicy(configuration))
        self.dataTracker = DataTracker(
            peerInitialTSN: parameters.peerInitialTSN, configuration: Association.trackerConfiguration(configuration))
        self.reassembly = ReassemblyQueue(capacity: configuration.receiveBufferSize)
        self.receiveSplitter = ReceiveBufferSplitter(
            bufferSize: configuration.receiveBufferSize,
            minimumShare: max(4 * configuration.maxPacketSize, configuration.receiveBufferSize / 8))
    }

    static func trackerConfiguration(_ configuration: SCTPConfiguration) -> DataTracker.Configuration {
        var c = DataTracker.Configuration()
        c.delayedAckTimeout = configuration.delayedAckTimeout
        c.sackImmediatelyOnGaps = !configuration.multipath.delayedAckForCMT
        c.packetsPerSack = max(DataTracker.rfcPacketsPerSack, configuration.packetsPerSack)
        return c
    }

    static func fastRetransmitPolicy(_ configuration: SCTPConfiguration) -> OutstandingData.FastRetransmitPolicy {
        OutstandingData.FastRetransmitPolicy(
            splitFastRetransmit: configuration.multipath.splitFastRetransmit,
            delayedAckForCMT: configuration.multipath.delayedAckForCMT)
    }

    var isClosed: Bool { if case .closed = state { return true } else { return false } }

    // MARK: - Handshake outcome

    // Read-only views of `parameters` for the datapath, which reads them on every packet.
    var localTag: VerificationTag { parameters.localTag }
    var peerTag: VerificationTag { parameters.peerTag }
    var features: NegotiatedFeatures { parameters.features }
    var outboundStreams: UInt16 { parameters.outboundStreams }
    var inboundStreams: UInt16 { parameters.inboundStreams }

    /// Takes what a handshake settled, whole: from the INIT-ACK (RFC 9260 §5.1 C), from an accepted State Cookie
    /// (§5.1.5), or from the cookie of an INIT collision (§5.2.4 B). Installs the AUTH keys (the features keep
    /// AUTH and ASCONF only if the keys came about), and starts the peer's rwnd, the ASCONF serial numbers and
    /// the receive side at what the peer announced. Our own send side started at our initial TSN when the
    /// association was made, and the tag and TSN are ours from then on.
    func adopt(_ parameters: AssociationParameters) {
        var parameters = parameters
        let negotiated = parameters.features
        parameters.features.subtract([.auth, .asconf])
        if adoptAuth(localRandom: parameters.localAuthRandom, peer: parameters.peerAuth) {
            parameters.features.formUnion(negotiated.intersection([.auth, .asconf]))
        }
        self.parameters = parameters
        peerReceiverWindow = parameters.peerInitialReceiverWindow
        asconf = AsconfState(localInitialTSN: parameters.localInitialTSN, peerInitialTSN: parameters.peerInitialTSN)
        dataTracker = DataTracker(
            peerInitialTSN: parameters.peerInitialTSN, configuration: Association.trackerConfiguration(configuration))
    }

    // MARK: - Paths

    var pathConfiguration: Path.Configuration {
        var c = Path.Configuration()
        c.maxRetransmissions = configuration.pathMaxRetransmissions
        c.potentiallyFailedThreshold = configuration.potentiallyFailedThreshold
        c.rto = RTOEstimator.Configuration(
            initial: configuration.rtoInitial, min: configuration.rtoMin, max: configuration.rtoMax)
        c.heartbeatInterval = configuration.heartbeatInterval
        switch configuration.congestionControl {
        case .reno: c.congestionControl = configuration.multipath.coupledCongestionControl ? .lia : .newReno
        case .bbr: c.congestionControl = .bbr
        }
        return c
    }

    /// Adds a path to `remote` unless one exists; nil (and counted) when the association has
    /// `maxPathsPerAssociation` paths already.
    @discardableResult
    func addPath(remote: SCTPSocketAddress, local: SCTPSocketAddress?, confirmed: Bool) -> PathID? {
        if let existing = pathByRemote[remote] { return existing }
        guard hasRoomForPath else { return nil }
        let path = Path(
            id: PathID(nextPathID), remoteAddress: remote, localAddress: local,
            mtu: maxPacketSize, configuration: pathConfiguration, isConfirmed: confirmed)
        nextPathID += 1
        paths.append(path)
        rebuildPathLookups()
        return path.id
    }

    /// Finds the path a packet from `source` to `local` belongs to. An unknown UDP port on a known IP is a NAT
    /// rebinding: RFC 6951 §5.4 "the UDP source port of the last received packet ... MUST be used" as the
    /// remote encapsulation port, so the path follows it.
    /// With `allowsRebinding` false (a packet carrying ASCONF, whose new source is an address being added)
    /// only exact matches count. See `locatePath` for the rebinding rules.
    func path(
        forPacketFrom source: SCTPSocketAddress, to local: SCTPSocketAddress, allowsRebinding: Bool = true,
        now: SCTPTime
    ) -> PathID? {
        locatePath(forPacketFrom: source, to: local, allowsRebinding: allowsRebinding, now: now)
    }

    /// The path for new data and control chunks: the primary if usable, else the first active one.
    var sendPathID: PathID {
        if hasPathPolicies, let id = policySendPathID { return id }
        if paths.primary.isActive || paths.primary.state == .unconfirmed { return paths.primaryID }
        if let active = paths.firstID(where: { $0.isActive }) { return active }
        if let pf = paths.firstID(where: { $0.state == .potentiallyFailed }) { return pf }
        return paths.primaryID
    }

    /// The path SACKs go on: the one the last DATA came in on (RFC 9260 §6.4), or the first path before any DATA
    /// came or once that path is removed.
    var sackPathID: PathID {
        if let id = lastDataPathID, paths.contains(id) { return id }
        return paths[0].id
    }

    /// Reports a change of `path`'s state, if any, to the log and the application.
    func reportStateChange(_ change: Path.StateChange?, path: PathID) {
        guard let change else { return }
        let state: SCTPPathState
        switch change {
        case .becameActive: state = .active
        case .becamePotentiallyFailed: state = .potentiallyFailed
        case .becameInactive: state = .inactive
        }
        let remote = paths[path].remoteAddress
        logger.info("path state", metadata: ["path": "\(remote)", "state": "\(state)"])
        output.events.append(.pathStateChanged(id, remote: remote, state))
    }

    // MARK: - Sending packets

    /// Sends one packet of `chunks` on a path, with our tag unless `tag` says otherwise.
    func send(_ chunks: some Collection<Chunk>, path: PathID, now: SCTPTime, tag: VerificationTag? = nil) {
        guard !chunks.isEmpty else { return }
        var dataBytes = 0
        for chunk in chunks {
            if case .data(let d) = chunk { dataBytes += d.userData.readableBytes }
        }
        // AUTH goes in front of the first chunk the peer wants authenticated (RFC 4895 §6.2).
        emit(buildPacket(chunks, tag: tag ?? peerTag), path: path, dataBytes: dataBytes, now: now)
    }

    func emit(_ packet: ByteBuffer, path: PathID, dataBytes: Int, now: SCTPTime) {
        // A path removed while its packet was handled (an ASCONF bundled before the chunk answered deleted it):
        // the primary.
        let p = paths.position(of: path) ?? paths.position(of: paths.primaryID)!
        // Fields read one by one: a copy of the whole path would retain everything it holds.
        paths[p].recordSent(bytes: packet.readableBytes, dataBytes: dataBytes, now: now)
        let destination = paths[p].remoteAddress
        // A path learnt from the peer's address list leaves from the association's own address unless told
        // otherwise.
        let source =
            paths[p].localAddress ?? paths.primary.localAddress
            ?? SCTPSocketAddress(ip: destination.ip.isIPv4 ? .anyV4 : .anyV6, port: 0)
        output.datagrams.append(SCTPDatagram(source: source, destination: destination, payload: packet, owner: owner))
    }

    /// Replies to the exact address and port a packet came from, from the address it arrived at (RFC 6951 §5.4:
    /// never a fixed 9899).
    func reply(_ chunks: [Chunk], to source: SCTPSocketAddress, from local: SCTPSocketAddress, tag: VerificationTag) {
        output.datagrams.append(
            SCTPDatagram(source: local, destination: source, payload: buildPacket(chunks, tag: tag), owner: owner))
    }

    // MARK: - Closing

    /// Ends the association: stops every timer and reports why.
    func close(_ reason: SCTPCloseReason) {
        guard !isClosed else { return }
        logger.info("association closed", metadata: ["reason": "\(reason)", "state": "\(state.name)"])
        state = .closed
        timers.disarmAll()
        output.events.append(.closed(id, reason))
    }

    /// Sends ABORT with `causes` on the current path and closes.
    func abort(causes: [ErrorCause], reason: SCTPCloseReason, now: SCTPTime) {
        guard !isClosed else { return }
        if !paths.isEmpty {
            send([.abort(AbortChunk(isTagReflected: false, causes: causes))], path: sendPathID, now: now)
        }
        close(reason)
    }

    // MARK: - Timers

    var nextDeadline: SCTPTime? { timers.earliestDeadline }

    func handleTimeout(now: SCTPTime) {
        while !isClosed, let timer = timers.popExpired(now: now) {
            switch timer {
            case .t1Init: handleT1InitExpiry(now: now)
            case .t1Cookie: handleT1CookieExpiry(now: now)
            case .t2Shutdown: handleT2ShutdownExpiry(now: now)
            case .t3rtx(let pathID): handleT3Expiry(pathID: pathID, now: now)
            case .heartbeat(let pathID): handleHeartbeatTimer(pathID: pathID, now: now)
            case .delayedSack: sendSackNow(now: now)
            case .arrivalCheck: break  // `maintainPaths` below moves a path whose address stayed quiet.
            case .t5ShutdownGuard: abort(causes: [], reason: .peerUnreachable, now: now)
            case .t4Asconf: handleT4Expiry(now: now)
            case .sendRate: break  // `transmit` below sends what the refilled bucket allows.
            case .autoClose, .reconfig: break
            }
        }
        if !isClosed { maintainPaths(now: now) }
        if !isClosed { transmit(now: now) }
    }

    /// RFC 9260 §8.1: too many consecutive retransmissions without an acknowledgement make the peer unreachable.
    /// Returns true when the association was closed.
    @discardableResult
    func countAssociationError(now: SCTPTime) -> Bool {
        errorCount += 1
        if errorCount > configuration.associationMaxRetransmissions {
            logger.warning("association error count exceeded", metadata: ["errors": "\(errorCount)"])
            close(.peerUnreachable)
            return true
        }
        return false
    }
}
