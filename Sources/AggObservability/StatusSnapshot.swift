import AggOperations

/// One moment of a daemon's state: what `GET /status.json` serves, the status page plots and `aggclient status`
/// renders. Rates cover the last sampling interval (about a second); `history` holds the per-second samples of the
/// last minutes, oldest first.
public struct StatusSnapshot: Codable, Sendable, Equatable {
    /// "aggclient" or "aggserver".
    public var role: String
    /// The daemon's version (`BuildInfo.version`).
    public var version: String
    /// Seconds since the daemon started watching itself (monotonic).
    public var uptime: Double
    public var associations: [Association]
    public var counters: Counters
    public var history: [Sample]

    public init(
        role: String, version: String = BuildInfo.version, uptime: Double, associations: [Association] = [],
        counters: Counters = Counters(), history: [Sample] = []
    ) {
        self.role = role
        self.version = version
        self.uptime = uptime
        self.associations = associations
        self.counters = counters
        self.history = history
    }

    /// Every path of every association, in order.
    public var paths: [Path] { associations.flatMap(\.paths) }

    /// One association as the service sees it.
    public struct Association: Codable, Sendable, Equatable {
        public var id: Int
        /// "connecting", "authenticating" or "ready".
        public var state: String
        /// The client's key name: the client's own on aggclient; on aggserver the one the client authenticated
        /// with, nil until it has.
        public var client: String?
        /// Open streams (proxied connections).
        public var streams: Int
        /// The most streams the association may have open at once: the smaller of both daemons' limits (0 while
        /// not yet authenticated).
        public var streamLimit: Int
        /// Bytes queued or in flight in the association, not yet acknowledged.
        public var bufferedBytes: Int
        /// How long data queued now waits in the association's send queue before it is first sent (the unsent bytes
        /// over the paths' sending rate); nil while no path has a rate.
        public var sendQueueDelayMilliseconds: Double?
        public var paths: [Path]

        public init(
            id: Int, state: String, client: String? = nil, streams: Int = 0, streamLimit: Int = 0,
            bufferedBytes: Int = 0, paths: [Path] = []
        ) {
            self.id = id
            self.state = state
            self.client = client
            self.streams = streams
            self.streamLimit = streamLimit
            self.bufferedBytes = bufferedBytes
            self.paths = paths
        }
    }

    /// One path of an association: the engine's figures, cumulative counters and the rates of the last interval.
    public struct Path: Codable, Sendable, Equatable {
        /// Stable within the daemon's life: association, local IP and remote IP (the remote port is left out, so a
        /// NAT rebinding keeps the path's identity).
        public var id: String
        public var association: Int
        /// What people call the path: on aggclient the name given in `--path NAME=…`, else the interface it was
        /// given as or whose address it sends from; on aggserver the interface of the local address. The local IP
        /// when there is none (or when two paths would get the same interface name).
        public var name: String
        /// The local IP ("*" when the engine leaves the choice to the kernel) and the remote IP: metric labels.
        public var local: String
        public var remote: String
        /// The remote UDP port: the NAT's public port on the server.
        public var remotePort: Int
        /// "unconfirmed", "active", "potentially-failed" or "inactive".
        public var state: String
        public var srttMilliseconds: Double?
        public var rtoMilliseconds: Double
        public var cwnd: Int
        public var ssthresh: Int
        public var flightSize: Int
        public var pmtu: Int
        public var bytesSent: Int
        public var bytesReceived: Int
        public var packetsSent: Int
        public var packetsReceived: Int
        public var retransmissions: Int
        public var fastRetransmissions: Int
        public var timeouts: Int
        /// Of `timeouts`, those found spurious afterwards (the SACKs were late, nothing was lost) and undone; nil
        /// from a daemon that does not say.
        public var spuriousTimeouts: Int?
        /// SCTP bytes both ways on every path of this name (of this client, on aggserver) since the daemon
        /// started: what reconnections and address changes would otherwise reset.
        public var totalBytes: Int = 0
        /// Bytes per second of SCTP packets sent and received on the path over the last interval.
        public var sendRate: Double = 0
        public var receiveRate: Double = 0
        /// Retransmissions per packet sent over the last interval (0 when nothing was sent).
        public var lossRate: Double = 0
        /// The path's part of the association's traffic (both ways) over the last interval, 0…1.
        public var share: Double = 0
        /// "active" or "backup" (`--path NAME,backup`); nil from a daemon that does not say.
        public var mode: String?
        /// A backup standing by because an active path works (it carries data only while none does).
        public var standby: Bool?
        /// The send-rate cap in bits per second; nil for none.
        public var rateLimitBitsPerSecond: Int?
        /// With `congestion-control = "bbr"`: the controller's bottleneck-bandwidth estimate (bits per second), its
        /// propagation round trip (the smallest RTT of the last ten seconds) and its pacing rate (bits per second).
        public var bandwidthEstimateBitsPerSecond: Double?
        public var minRTTMilliseconds: Double?
        public var pacingRateBitsPerSecond: Double?
        /// With bbr: what drives the path's sending now (`SCTPCongestionPhase`: startup, drain, probe-bandwidth,
        /// queue-held, probe-rtt, competing).
        public var congestionPhase: String?
        /// `totalBytes` one way each: SCTP bytes sent and received on every path of this name since the daemon
        /// started (what a user on a metered plan checks).
        public var totalBytesSent: Int?
        public var totalBytesReceived: Int?

        public init(
            id: String, association: Int, name: String? = nil, local: String, remote: String, remotePort: Int,
            state: String,
            srttMilliseconds: Double? = nil, rtoMilliseconds: Double = 0, cwnd: Int = 0, ssthresh: Int = 0,
            flightSize: Int = 0, pmtu: Int = 0, bytesSent: Int = 0, bytesReceived: Int = 0, packetsSent: Int = 0,
            packetsReceived: Int = 0, retransmissions: Int = 0, fastRetransmissions: Int = 0, timeouts: Int = 0
        ) {
            self.id = id
            self.association = association
            self.name = name ?? local
            self.local = local
            self.remote = remote
            self.remotePort = remotePort
            self.state = state
            self.srttMilliseconds = srttMilliseconds
            self.rtoMilliseconds = rtoMilliseconds
            self.cwnd = cwnd
            self.ssthresh = ssthresh
            self.flightSize = flightSize
            self.pmtu = pmtu
            self.bytesSent = bytesSent
            self.bytesReceived = bytesReceived
            self.packetsSent = packetsSent
            self.packetsReceived = packetsReceived
            self.retransmissions = retransmissions
            self.fastRetransmissions = fastRetransmissions
            self.timeouts = timeouts
            self.totalBytes = bytesSent + bytesReceived
        }
    }

    /// The daemon's cumulative counters.
    public struct Counters: Codable, Sendable, Equatable {
        /// Proxied connections by outcome ("success", "refused", "timeout", …).
        public var connections: [String: Int] = [:]
        /// Associations authenticated, and refused for a failed authentication.
        public var associationsAuthenticated = 0
        public var authenticationFailures = 0
        /// Associations ended because their key was revoked.
        public var associationsRevoked = 0
        /// New connections that found every stream in use and waited for one (refused ones count in
        /// `connections["too_many_streams"]`).
        public var streamWaits = 0
        /// Stream payload relayed from the client's side to the server's (up) and back (down).
        public var bytesUp = 0
        public var bytesDown = 0
        /// The UDP driver's datagrams and bytes, and the datagrams the kernel refused.
        public var datagramsSent = 0
        public var datagramsReceived = 0
        public var udpBytesSent = 0
        public var udpBytesReceived = 0
        public var sendFailures = 0
        /// Datagrams received too large for the driver's read slot (or with control messages too large), dropped.
        public var truncatedDatagrams = 0
        /// Packets and chunks the SCTP engine dropped on input, by reason (`SCTPDropReason`'s text).
        public var sctpDropped: [String: Int] = [:]
        /// The UDP relay (SOCKS5 UDP ASSOCIATE); nil from a daemon without one.
        public var udp: UDPCounters?
        /// aggclient with several server groups: which is in use, failovers and returns; nil otherwise.
        public var serverGroups: ServerGroupCounters?

        public init() {}

        /// A counter the JSON lacks reads as zero (or empty, or nil): a daemon older than the reader does not count it
        /// yet, and `aggclient status` from a newer package must still read that daemon's page (the running daemon
        /// stays the old one until it restarts).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func count(_ key: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: key) ?? 0 }
            connections = try c.decodeIfPresent([String: Int].self, forKey: .connections) ?? [:]
            associationsAuthenticated = try count(.associationsAuthenticated)
            authenticationFailures = try count(.authenticationFailures)
            associationsRevoked = try count(.associationsRevoked)
            streamWaits = try count(.streamWaits)
            bytesUp = try count(.bytesUp)
            bytesDown = try count(.bytesDown)
            datagramsSent = try count(.datagramsSent)
            datagramsReceived = try count(.datagramsReceived)
            udpBytesSent = try count(.udpBytesSent)
            udpBytesReceived = try count(.udpBytesReceived)
            sendFailures = try count(.sendFailures)
            truncatedDatagrams = try count(.truncatedDatagrams)
            sctpDropped = try c.decodeIfPresent([String: Int].self, forKey: .sctpDropped) ?? [:]
            udp = try c.decodeIfPresent(UDPCounters.self, forKey: .udp)
            serverGroups = try c.decodeIfPresent(ServerGroupCounters.self, forKey: .serverGroups)
        }
    }

    /// aggclient's server groups: the one in use (index from 0 in order of preference; nil while none is) and its
    /// first address, how many there are, and how often the client moved to the next one because the one in use
    /// stopped answering (failovers) and back to a more preferred one that answered again (returns).
    public struct ServerGroupCounters: Codable, Sendable, Equatable {
        public var inUse: Int?
        public var server: String?
        public var count = 0
        public var failovers = 0
        public var returns = 0

        public init() {}
    }

    /// The UDP relay's figures: flows opened, datagrams and payload bytes each way, datagrams the association
    /// abandoned (PR-SCTP: their lifetime ran out), and drops by reason.
    public struct UDPCounters: Codable, Sendable, Equatable {
        public var flows = 0
        public var datagramsUp = 0
        public var datagramsDown = 0
        public var bytesUp = 0
        public var bytesDown = 0
        public var expired = 0
        public var dropped: [String: Int] = [:]

        public init() {}
    }

    /// One second of the history: the rates and congestion state of every path then.
    public struct Sample: Codable, Sendable, Equatable {
        public var uptime: Double
        public var paths: [PathSample]

        public init(uptime: Double, paths: [PathSample]) {
            self.uptime = uptime
            self.paths = paths
        }
    }

    /// A path's line in a `Sample`.
    public struct PathSample: Codable, Sendable, Equatable {
        public var id: String
        public var sendRate: Double
        public var receiveRate: Double
        public var srttMilliseconds: Double?
        public var cwnd: Int
        public var share: Double

        public init(
            id: String, sendRate: Double, receiveRate: Double, srttMilliseconds: Double?, cwnd: Int, share: Double
        ) {
            self.id = id
            self.sendRate = sendRate
            self.receiveRate = receiveRate
            self.srttMilliseconds = srttMilliseconds
            self.cwnd = cwnd
            self.share = share
        }

        public init(_ path: Path) {
            self.init(
                id: path.id, sendRate: path.sendRate, receiveRate: path.receiveRate,
                srttMilliseconds: path.srttMilliseconds, cwnd: path.cwnd, share: path.share)
        }
    }
}

extension StatusSnapshot.Counters {
    /// Adds another source's counters (a shard of the same server) to these.
    mutating func add(_ other: Self) {
        connections.merge(other.connections, uniquingKeysWith: +)
        associationsAuthenticated += other.associationsAuthenticated
        authenticationFailures += other.authenticationFailures
        associationsRevoked += other.associationsRevoked
        streamWaits += other.streamWaits
        bytesUp += other.bytesUp
        bytesDown += other.bytesDown
        datagramsSent += other.datagramsSent
        datagramsReceived += other.datagramsReceived
        udpBytesSent += other.udpBytesSent
        udpBytesReceived += other.udpBytesReceived
        sendFailures += other.sendFailures
        truncatedDatagrams += other.truncatedDatagrams
        sctpDropped.merge(other.sctpDropped, uniquingKeysWith: +)
        if let theirs = other.udp {
            var udp = self.udp ?? StatusSnapshot.UDPCounters()
            udp.flows += theirs.flows
            udp.datagramsUp += theirs.datagramsUp
            udp.datagramsDown += theirs.datagramsDown
            udp.bytesUp += theirs.bytesUp
            udp.bytesDown += theirs.bytesDown
            udp.expired += theirs.expired
            udp.dropped.merge(theirs.dropped, uniquingKeysWith: +)
            self.udp = udp
        }
    }
}
