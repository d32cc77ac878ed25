import Crypto
import Logging
import NIOCore

/// An SCTP endpoint: the engine's public face. It owns every association on one SCTP port, routes incoming packets
/// to them by verification tag (RFC 9260 §8.5), answers INIT statelessly with a signed cookie (§5.1.3), creates
/// associations from valid COOKIE-ECHOs (§5.1.5, §5.2.4) and handles out-of-the-blue packets (§8.4).
///
/// Every association belongs to the `SCTPOwner` whose datagram created it. A datagram is routed, checked for
/// collisions and restarts, and answered out of the blue among its own owner's associations only, as if each owner
/// had an endpoint of its own: on a server shared by several client keys, one key holder cannot reach, probe or
/// disturb another's association, whatever tags it learns or guesses.
///
/// It is sans-IO: the caller passes datagrams and the time in, and after each input drains `pollTransmit()`,
/// reads `nextDeadline()` and drains `pollEvent()`.
public final class SCTPEndpoint {
    public let configuration: SCTPConfiguration
    /// Addresses announced in INIT-ACK (the server's global addresses); the address an INIT arrived at is the first.
    public var advertisedAddresses: [SCTPIPAddress]
    var logger: Logger
    var random: SCTPRandom
    let cookieKey: SymmetricKey
    let output = EndpointOutput()
    var associations: [SCTPAssociationID: Association] = [:]
    var byTag: [VerificationTag: Association] = [:]
    /// Each owner's associations: the only candidates for that owner's packets that no tag routes (INIT collision,
    /// restart, ABORT with the T bit). A handful per authenticated owner.
    var byOwner: [SCTPOwner: [Association]] = [:]
    /// When each association next needs `handleTimeout`.
    var deadlines = DeadlineSchedule<Association>()
    /// The association `route` found last (always one `byTag` holds).
    private var lastRouted: Association?
    /// The association `association(_:)` found last (always one `associations` holds).
    private var lastLookedUp: Association?
    /// The SCTP port of each owner's latest association's peer, kept after it closes: where an out-of-the-blue
    /// packet of that owner that came without its ports is answered (`SCTPDatagram.portsElided`).
    private var peerPorts: [SCTPOwner: UInt16] = [:]
    /// Associations with messages queued by a deferred `send`, in the order they were first deferred.
    private var deferredTransmissions: [SCTPAssociationID] = []
    /// The list `transmitDeferred` works through, swapped with `deferredTransmissions` and back: a copy emptied
    /// with `removeAll(keepingCapacity:)` allocated a new array on every call, its storage being shared.
    private var transmitting: [SCTPAssociationID] = []
    /// The chunk array of the last packet handled, empty, for the next one (`RawPacket.parse(_:reusing:)`).
    private var spareChunks: [RawChunk] = []
    private var deferredSet: Set<SCTPAssociationID> = []
    /// COOKIE-ECHOs refused because their owner held `maxAssociationsPerOwner` live associations.
    public internal(set) var refusedAssociations = 0
    /// Associations closed to make room for a new one of the same owner (they had been quiet).
    public internal(set) var replacedAssociations = 0
    /// The next association's id; ids step by the shard count and keep the shard's residue (`SCTPShard`).
    private lazy var nextAssociationID = Int(configuration.shard.count + configuration.shard.index)
    /// Whether new paths are probed at once (see `Association.confirmsNewPathsAtOnce`); tests only.
    var confirmsNewPathsAtOnce = true

    public init(
        configuration: SCTPConfiguration, seed: UInt64, advertisedAddresses: [SCTPIPAddress] = [],
        logger: Logger = Logger(label: "agg.sctp", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.advertisedAddresses = advertisedAddresses
        self.random = SCTPRandom(seed: seed)
        self.logger = logger
        self.cookieKey = SymmetricKey(data: configuration.cookieSecret)
    }

    // MARK: - Outputs

    public func pollTransmit() -> SCTPDatagram? { output.datagrams.popFirst() }
    public func pollEvent() -> SCTPEvent? { output.events.popFirst() }

    /// Hands every queued datagram to `body`, oldest first, including any queued while it runs. The same as
    /// `pollTransmit` in a loop, without an Optional per datagram: outside this module, destroying an
    /// `SCTPDatagram?` goes through the type's metadata (hundreds of instructions, per datagram).
    public func drainTransmits(_ body: (SCTPDatagram) -> Void) {
        while !output.datagrams.isEmpty { body(output.datagrams.removeFirst()) }
    }

    /// `pollEvent` in a loop, as `drainTransmits`; `body` may issue commands that queue more events.
    public func drainEvents(_ body: (SCTPEvent) -> Void) {
        while !output.events.isEmpty { body(output.events.removeFirst()) }
    }

    /// The earliest instant `handleTimeout` has work, or (rarely) a little before it.
    public func nextDeadline() -> SCTPTime? { deadlines.nextDeadline() }

    /// Packets dropped on input, by reason.
    public var droppedPackets: [SCTPDropReason: Int] { output.dropped }

    // MARK: - Commands

    /// Opens an association to `remote` (address and UDP port) whose SCTP port is `peerPort`, sending from `local`.
    /// Its datagrams carry `owner`, and only datagrams of `owner` reach it.
    public func connect(
        to remote: SCTPSocketAddress, from local: SCTPSocketAddress? = nil, peerPort: UInt16,
        owner: SCTPOwner = .unauthenticated, now: SCTPTime
    ) -> SCTPAssociationID {
        let offer = AssociationParameters.offer(
            localTag: VerificationTag(uniqueTag()), localInitialTSN: TSN(random.nonZero32()),
            configuration: configuration)
        let association = makeAssociation(parameters: offer, peerPort: peerPort, owner: owner)
        association.connect(remote: remote, local: local, now: now)
        settle(association)
        return association.id
    }

    /// Queues a message on a stream; it goes out as congestion control allows. With `deferringTransmission` it
    /// waits in the send queue until `transmitDeferred(now:)`, so that the messages a caller sends together (one
    /// turn of its event loop) leave bundled in as few packets as they fill, not one packet each.
    ///
    /// `reliability` makes the message partially reliable (PR-SCTP, RFC 3758 and RFC 7496): with `.timed(lifetime:)`
    /// it is sent and retransmitted only while it can arrive within `lifetime` of `now` (first sent a little later
    /// when even the fastest path takes over half the lifetime: `SCTPReliability.timed`);
    /// a lost one is skipped with FORWARD-TSN and holds up no other message (with `unordered`, not even its own
    /// stream's). See `SCTPReliability` for associations whose peer did not negotiate PR-SCTP
    /// (`isPartialReliabilityNegotiated`).
    public func send(
        _ payload: ByteBuffer, on id: SCTPAssociationID, stream: StreamID, ppid: PPID = PPID(0),
        unordered: Bool = false, reliability: SCTPReliability = .reliable, deferringTransmission: Bool = false,
        now: SCTPTime
    ) throws(SCTPError) {
        guard let association = association(id) else { throw .noSuchAssociation(id) }
        defer { settle(association) }
        try association.sendMessage(
            payload, stream: stream, ppid: ppid, unordered: unordered, reliability: reliability,
            transmitting: !deferringTransmission, now: now)
        if deferringTransmission { deferTransmission(of: id) }
    }

    private func deferTransmission(of id: SCTPAssociationID) {
        // Consecutive calls are nearly always for one association: the set is consulted only when it changes.
        if deferredTransmissions.last != id, deferredSet.insert(id).inserted {
            deferredTransmissions.append(id)
        }
    }

    /// Whether messages wait for `transmitDeferred(now:)`.
    public var hasDeferredTransmissions: Bool { !deferredTransmissions.isEmpty }

    /// Sends what the deferred `send`s queued, as congestion control allows.
    public func transmitDeferred(now: SCTPTime) {
        swap(&transmitting, &deferredTransmissions)
        deferredSet.removeAll(keepingCapacity: true)
        for id in transmitting {
            guard let association = association(id) else { continue }
            if association.state.isEstablishedOrLater { association.transmit(now: now) }
            settle(association)
        }
        transmitting.removeAll(keepingCapacity: true)
        // Both keep their storage unless a transmission deferred another meanwhile (then that list stays).
        if deferredTransmissions.isEmpty { swap(&transmitting, &deferredTransmissions) }
    }

    /// Whether the association's send buffer is below its high watermark.
    public func isWritable(_ id: SCTPAssociationID) -> Bool { association(id)?.isWritable ?? false }

    /// Whether the association takes more on `stream`: when it is writable, and past its high watermark for a light
    /// stream (one the stream scheduler would send before the bulk streams) up to `sendBufferSize`.
    public func isWritable(_ id: SCTPAssociationID, stream: StreamID) -> Bool {
        association(id)?.isWritable(stream: stream) ?? false
    }

    /// Whether the association takes a datagram (unordered, with a lifetime) on `stream`: when it is writable, and
    /// past its high watermark while the stream holds less than 64 KiB, up to `sendBufferSize`.
    public func takesDatagram(_ id: SCTPAssociationID, on stream: StreamID) -> Bool {
        association(id)?.takesDatagram(on: stream) ?? false
    }

    /// Bytes queued or in flight and not yet acknowledged.
    public func bufferedAmount(_ id: SCTPAssociationID) -> Int { association(id)?.bufferedAmount ?? 0 }

    /// Bytes queued and not yet sent (`bufferedAmount` less what is in flight).
    public func queuedAmount(_ id: SCTPAssociationID) -> Int { association(id)?.sendQueue.bufferedBytes ?? 0 }

    /// How long data queued now would wait before it is first sent (the unsent bytes over the rate the paths take
    /// data at); nil for an unknown association or while no path has a rate.
    public func sendQueueDelay(_ id: SCTPAssociationID) -> SCTPDuration? { associations[id]?.sendQueueDelay }

    /// Sets the largest SCTP packet the association builds from now on, on every path (a path's MTU): for a layer
    /// below whose own overhead turns out smaller than the one `SCTPConfiguration.maxPacketSize` left room for
    /// (datagram encryption learns it from the session's handshake). A size outside 508...65,535 bytes changes
    /// nothing (the smallest is RFC 9260's, what every path must carry).
    ///
    /// `lastChunkUnpadded`: the layer below carries a packet without its last chunk's padding (agg's packed
    /// datagrams), so `size` bounds a DATA packet's unpadded length; the packet handed out may be up to 3 bytes
    /// longer, all of them padding.
    public func setMaxPacketSize(_ size: Int, for id: SCTPAssociationID, lastChunkUnpadded: Bool = false) {
        guard (508...65_535).contains(size) else { return }
        associations[id]?.setMaxPacketSize(size, lastChunkUnpadded: lastChunkUnpadded)
    }

    /// Graceful shutdown: queued data is delivered first (RFC 9260 §9.2).
    public func shutdown(_ id: SCTPAssociationID, now: SCTPTime) {
        guard let association = associations[id] else { return }
        association.shutdown(now: now)
        settle(association)
    }

    /// ABORT: everything queued is dropped (RFC 9260 §9.1).
    public func abort(_ id: SCTPAssociationID, reason: String = "", now: SCTPTime) {
        guard let association = associations[id] else { return }
        var info = ByteBuffer()
        info.writeString(reason)
        association.abort(causes: [.userInitiatedAbort(info)], reason: .abortedLocally, now: now)
        settle(association)
    }

    /// Runs the timers that are due: only the associations whose deadline has come are visited.
    public func handleTimeout(now: SCTPTime) {
        output.messageBuffers.trimIfIdle(now: now)
        for association in deadlines.popDue(now: now) {
            if let deadline = association.nextDeadline, deadline <= now { association.handleTimeout(now: now) }
            settle(association)
        }
    }

    /// The associations that are open, oldest first.
    public var associationIDs: [SCTPAssociationID] { associations.keys.sorted { $0.rawValue < $1.rawValue } }

    /// The owner an association belongs to.
    public func owner(of id: SCTPAssociationID) -> SCTPOwner? { associations[id]?.owner }

    /// The open associations of one owner, oldest first.
    public func associationIDs(ownedBy owner: SCTPOwner) -> [SCTPAssociationID] {
        (byOwner[owner] ?? []).map(\.id).sorted { $0.rawValue < $1.rawValue }
    }

    /// A snapshot of an association's paths for status displays and tests.
    public func paths(of id: SCTPAssociationID) -> [SCTPPathInfo] {
        guard let association = associations[id] else { return [] }
        return association.paths.map { SCTPPathInfo($0, flightSize: association.outstanding.flightSize(on: $0.id)) }
    }

    /// Hands back the buffer of a datagram this endpoint sent, once the driver is done with it (sealed it into
    /// its own buffer): the next packets are built in it instead of in new storage. Optional; a few are kept (64,
    /// more as larger batches need them, up to 1,024: `EndpointOutput.spareBufferLimit`), none while the endpoint has
    /// no association.
    public func recycle(_ buffer: ByteBuffer) {
        guard !associations.isEmpty else { return }
        output.recycle(buffer)
    }

    /// Hands back the payload of a message this endpoint delivered, once the application is done with it (a relay's
    /// TCP write the socket has taken): the next messages reassembled are built in it instead of in new storage.
    /// Optional; the pool keeps few (`MessageBufferPool`), none while the endpoint has no association, and reuses one
    /// only when nothing else holds it.
    public func recycleMessageBuffer(_ buffer: ByteBuffer) {
        guard !associations.isEmpty else { return }
        output.messageBuffers.recycle(buffer)
    }

    // MARK: - Input

    /// Handles one received datagram. With `deferringTransmission` what it calls for (a SACK above all, and DATA
    /// the SACK lets go) waits for `transmitDeferred(now:)`, as deferred sends do: a caller handling a batch of
    /// datagrams that arrived together answers them with one SACK, as a TCP receiver with GRO acknowledges one
    /// aggregated segment, rather than one SACK per second packet.
    public func handle(_ datagram: SCTPDatagram, now: SCTPTime, deferringTransmission: Bool = false) {
        var packet: RawPacket
        do {
            packet = try RawPacket.parse(
                datagram.payload, verifyChecksum: !datagram.integrityVerified, reusing: &spareChunks)
        } catch {
            output.drop(.malformedPacket)
            logger.debug("dropped malformed packet", metadata: ["from": "\(datagram.source)", "error": "\(error)"])
            return
        }
        guard let first = packet.chunks.first else {
            output.drop(.noChunks)
            return
        }
        let source = datagram.source
        let local = datagram.destination
        let owner = datagram.owner

        if datagram.portsElided {
            // Routed by the tag alone: never a handshake packet, never a T-bit one (the sender's own tag).
            guard first.type != InitChunk.type, first.type != CookieEchoChunk.type, first.type != InitAckChunk.type,
                first.flags & 1 == 0 || (first.type != AbortChunk.type && first.type != ShutdownCompleteChunk.type)
            else {
                output.drop(.unroutableWithoutPorts)
                return
            }
            packet.header.destinationPort = configuration.localPort
            if let association = route(packet, from: source, owner: owner) {
                packet.header.sourcePort = association.peerPort
                deliver(packet, to: association, from: source, to: local, deferring: deferringTransmission, now: now)
            } else if let peerPort = peerPorts[owner] {
                // An association this endpoint no longer has (it ended, its ABORT was lost): answered as the same
                // packet with its ports would be (an ABORT with the T bit, which travels with its ports), at the
                // port the owner's latest association used, so the peer learns at once.
                packet.header.sourcePort = peerPort
                handleOutOfTheBlue(packet, from: source, to: local, owner: owner)
            } else {
                output.drop(.unroutableWithoutPorts)
            }
        } else {
            guard packet.header.destinationPort == configuration.localPort else {
                output.drop(.wrongPort)
                return
            }
            switch first.type {
            case InitChunk.type:
                handleInitPacket(
                    packet, from: source, to: local, owner: owner, verified: datagram.integrityVerified, now: now)
            case CookieEchoChunk.type:
                handleCookieEchoPacket(packet, from: source, to: local, owner: owner, now: now)
            default:
                if let association = route(packet, from: source, owner: owner) {
                    deliver(
                        packet, to: association, from: source, to: local, deferring: deferringTransmission, now: now)
                } else {
                    handleOutOfTheBlue(packet, from: source, to: local, owner: owner)
                }
            }
        }
        // The chunk array goes back for the next packet, emptied: the chunks' slices of this packet do not outlive
        // it (in plaintext they are slices of the socket's receive buffer, which is reused only once free).
        // One by one: `removeAll(keepingCapacity:)` goes through the generic `replaceSubrange`, about 130
        // instructions per packet of one or two chunks.
        var chunks = (consume packet).chunks
        while !chunks.isEmpty { chunks.removeLast() }
        spareChunks = chunks
    }

    /// Hands a routed packet to its association. Only an established association waits to transmit
    /// (`transmitDeferred` transmits only for those).
    private func deliver(
        _ packet: RawPacket, to association: Association, from source: SCTPSocketAddress, to local: SCTPSocketAddress,
        deferring: Bool, now: SCTPTime
    ) {
        let defers = deferring && association.state.isEstablishedOrLater
        association.handle(packet, from: source, to: local, transmitting: !defers, now: now)
        if defers, !association.isClosed { deferTransmission(of: association.id) }
        settle(association)
    }

    /// Finds the association a packet of `owner` belongs to: by our tag, or, for ABORT and SHUTDOWN-COMPLETE with
    /// the T bit, by the peer's tag and address (RFC 9260 §8.5.1). Another owner's association is never found: to
    /// the sender it is as if the tag were unknown.
    func route(_ packet: RawPacket, from source: SCTPSocketAddress, owner: SCTPOwner) -> Association? {
        let tag = packet.header.verificationTag
        // Packets come in runs for one association: the last one routed is checked before the dictionary (whose
        // hashing costs a few hundred instructions per packet).
        if let last = lastRouted, last.localTag == tag {
            return last.owner == owner ? last : nil
        }
        if let association = byTag[tag] {
            lastRouted = association
            return association.owner == owner ? association : nil
        }
        if let first = packet.chunks.first, first.flags & 1 != 0,
            first.type == AbortChunk.type || first.type == ShutdownCompleteChunk.type
        {
            return byOwner[owner]?.first {
                $0.peerTag == tag && $0.peerPort == packet.header.sourcePort
                    && $0.paths.contains(where: { $0.remoteAddress.ip == source.ip })
            }
        }
        return nil
    }

    /// The open association of `owner` with a path to `source`'s IP and the peer's SCTP port: the candidate for
    /// an INIT collision or a restart (RFC 9260 §5.2).
    func association(withPeer source: SCTPSocketAddress, peerPort: UInt16, owner: SCTPOwner) -> Association? {
        byOwner[owner]?.first {
            !$0.isClosed && $0.peerPort == peerPort && $0.paths.contains(where: { $0.remoteAddress.ip == source.ip })
        }
    }

    // MARK: - Bookkeeping

    /// The association with `id`. The daemons ask about one association many times per connection (every send,
    /// every writability check: 20-30 times per connection of a burst on aggserver), nearly always the same one:
    /// the one found last is checked before the dictionary, whose lookup hashes the id (about 200 instructions).
    func association(_ id: SCTPAssociationID) -> Association? {
        if let last = lastLookedUp, last.id == id { return last }
        let found = associations[id]
        if found != nil { lastLookedUp = found }
        return found
    }

    func makeAssociation(parameters: AssociationParameters, peerPort: UInt16, owner: SCTPOwner) -> Association {
        let id = SCTPAssociationID(nextAssociationID)
        nextAssociationID += Int(configuration.shard.count)
        let association = Association(
            id: id, configuration: configuration, output: output, logger: logger,
            random: SCTPRandom(seed: random.next()), parameters: parameters, peerPort: peerPort, owner: owner)
        association.confirmsNewPathsAtOnce = confirmsNewPathsAtOnce
        associations[id] = association
        byTag[parameters.localTag] = association
        byOwner[owner, default: []].append(association)
        peerPorts[owner] = peerPort
        return association
    }

    /// After any input to an association: forgets it if it closed, else reschedules its deadline.
    func settle(_ association: Association) {
        guard association.isClosed else {
            deadlines.schedule(association, at: association.nextDeadline)
            return
        }
        deadlines.schedule(association, at: nil)
        guard associations.removeValue(forKey: association.id) != nil else { return }
        if byTag[association.localTag] === association { byTag[association.localTag] = nil }
        if lastRouted === association { lastRouted = nil }
        if lastLookedUp === association { lastLookedUp = nil }
        byOwner[association.owner]?.removeAll { $0 === association }
        if byOwner[association.owner]?.isEmpty == true { byOwner[association.owner] = nil }
        // With no association left no timer runs (nothing would trim the pools) and nothing would take a buffer.
        if associations.isEmpty { output.releaseSpares() }
    }

    /// A random, non-zero tag no current association uses, steered to this endpoint's shard
    /// (`SCTPConfiguration.shard`).
    func uniqueTag() -> UInt32 {
        while true {
            let tag = configuration.shard.steer(random.nonZero32())
            if tag != 0, byTag[VerificationTag(tag)] == nil { return tag }
        }
    }

    /// Sends a packet that belongs to no association, on behalf of `owner` (the owner of the packet it answers).
    func sendRaw(
        _ chunks: [Chunk], tag: VerificationTag, sourcePort: UInt16, destinationPort: UInt16,
        to destination: SCTPSocketAddress, from local: SCTPSocketAddress, owner: SCTPOwner
    ) {
        var builder = PacketBuilder(
            header: CommonHeader(
                sourcePort: sourcePort, destinationPort: destinationPort, verificationTag: tag, checksum: 0),
            capacity: configuration.maxPacketSize)
        for chunk in chunks { builder.add(chunk) }
        output.datagrams.append(
            SCTPDatagram(source: local, destination: destination, payload: builder.finish(), owner: owner))
    }

    // MARK: - Out of the blue (RFC 9260 §8.4)

    func handleOutOfTheBlue(
        _ packet: RawPacket, from source: SCTPSocketAddress, to local: SCTPSocketAddress, owner: SCTPOwner
    ) {
        output.drop(.outOfTheBlue)
        var sawShutdownAck = false
        for chunk in packet.chunks {
            switch chunk.type {
            // §8.4 2, 6, 7: ABORT, SHUTDOWN-COMPLETE, COOKIE-ACK and ERROR are silently discarded.
            case AbortChunk.type, ShutdownCompleteChunk.type, CookieAckChunk.type, ErrorChunk.type:
                return
            case ShutdownAckChunk.type:
                sawShutdownAck = true
            default:
                break
            }
        }
        // §8.4 5: SHUTDOWN-ACK gets SHUTDOWN-COMPLETE with the T bit; §8.4 8: anything else gets ABORT with the
        // T bit, both carrying the received packet's tag.
        let reply: Chunk =
            sawShutdownAck
            ? .shutdownComplete(ShutdownCompleteChunk(isTagReflected: true))
            : .abort(AbortChunk(isTagReflected: true, causes: []))
        sendRaw(
            [reply], tag: packet.header.verificationTag, sourcePort: packet.header.destinationPort,
            destinationPort: packet.header.sourcePort, to: source, from: local, owner: owner)
    }
}

/// What the application may see of a path.
public struct SCTPPathInfo: Sendable {
    public var remote: SCTPSocketAddress
    public var local: SCTPSocketAddress?
    public var state: SCTPPathState
    public var srtt: SCTPDuration?
    public var rto: SCTPDuration
    public var cwnd: Int
    public var ssthresh: Int
    public var flightSize: Int
    public var bytesSent: Int
    public var bytesReceived: Int
    public var packetsSent: Int
    public var packetsReceived: Int
    public var retransmissions: Int
    public var fastRetransmissions: Int
    public var timeouts: Int
    /// T3-rtx expiries found spurious afterwards (a SACK acknowledged data they marked and that was never
    /// retransmitted) and undone: counted in `timeouts` too.
    public var spuriousTimeouts: Int
    /// The path MTU: the largest SCTP packet sent on the path.
    public var pmtu: Int
    /// Backup or active, priority and send-rate cap (`SCTPEndpoint.setPathPolicy`).
    public var policy: SCTPPathPolicy
    /// A backup kept off data because a better path is reachable.
    public var isStandby: Bool
    /// The model-based controller's (bbr) estimate of the path's bottleneck bandwidth, in bytes per second; nil
    /// with a window-based controller or before its first sample.
    public var bandwidthEstimate: Double?
    /// Its estimate of the propagation round trip (the smallest RTT of the last ten seconds).
    public var minRTT: SCTPDuration?
    /// The rate it paces new data at, in bytes per second.
    public var pacingRate: Double?
    /// Its phase (nil with a window-based controller).
    public var congestionPhase: SCTPCongestionPhase?

    init(_ path: Path, flightSize: Int) {
        remote = path.remoteAddress
        local = path.localAddress
        switch path.state {
        case .unconfirmed: state = .unconfirmed
        case .active: state = .active
        case .potentiallyFailed: state = .potentiallyFailed
        case .inactive: state = .inactive
        }
        srtt = path.rto.srtt
        rto = path.rto.rto
        cwnd = path.cwnd
        ssthresh = path.ssthresh
        self.flightSize = flightSize
        bytesSent = path.counters.bytesSent
        bytesReceived = path.counters.bytesReceived
        packetsSent = path.counters.packetsSent
        packetsReceived = path.counters.packetsReceived
        retransmissions = path.counters.retransmissions
        fastRetransmissions = path.counters.fastRetransmissions
        timeouts = path.counters.t3Expiries
        spuriousTimeouts = path.counters.spuriousTimeouts
        pmtu = path.mtu
        policy = path.policy
        isStandby = path.isStandby
        let estimates = path.congestion.modelEstimates
        bandwidthEstimate = estimates?.bandwidth
        minRTT = estimates?.minRTT
        pacingRate = path.pacingRate
        congestionPhase = path.congestion.modelPhase
    }
}
