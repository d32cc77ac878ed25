/// Every tunable of an endpoint and its associations, with RFC 9260 §16 defaults unless agg needs otherwise.
public struct SCTPConfiguration: Sendable {
    /// The SCTP port of this endpoint (not the UDP port).
    public var localPort: UInt16 = 5000
    /// Streams we ask to send on and accept (RFC 9260 §5.1.1: negotiated down to the peer's figures).
    public var outboundStreams: UInt16 = 1024
    public var maxInboundStreams: UInt16 = 1024
    /// Bytes the receiver buffers before the advertised window closes.
    public var receiveBufferSize: Int = 4 * 1024 * 1024
    /// The most unsent bytes an association queues before `send` reports back-pressure. Below it the limit follows
    /// the congestion windows: about two windows of all paths together (enough to fill every window once more while
    /// the application's next bytes arrive), at least `minimumSendBufferSize`. Unsent data beyond that only waits,
    /// in memory and ahead of what the application sends next.
    public var sendBufferSize: Int = 4 * 1024 * 1024
    /// The least unsent bytes an association may queue before back-pressure, whatever its windows.
    public var minimumSendBufferSize: Int = 256 * 1024
    /// Largest SCTP packet (common header and chunks) we send: a 1500-byte IP MTU less IPv4 (20) and UDP (8).
    public var maxPacketSize: Int = 1472
    /// The shard this endpoint is of a sharded server: its local verification tags (the tag the peer puts on every
    /// packet after INIT) and its association ids are congruent to the shard's index, so a steering rule on the tag
    /// brings the association's packets back to this endpoint and ids are unique across shards.
    public var shard = SCTPShard.single

    // MARK: - Timers (RFC 9260 §16)
    public var rtoInitial: SCTPDuration = .seconds(1)
    public var rtoMin: SCTPDuration = .milliseconds(200)
    public var rtoMax: SCTPDuration = .seconds(60)
    public var validCookieLife: SCTPDuration = .seconds(60)
    /// Associations one authenticated owner (`SCTPOwner`, a client key) may hold at once; a COOKIE-ECHO beyond it is
    /// answered with ABORT (Out of Resource) unless one of that owner's associations has been quiet for
    /// `quietAssociationAge` (a client that restarted), which it then replaces. nil: no limit. Plaintext
    /// associations are not counted here: nothing tells their owners apart.
    public var maxAssociationsPerOwner: Int? = nil
    /// How long an association must have received nothing before a new one of the same owner may replace it.
    public var quietAssociationAge: SCTPDuration = .seconds(10)
    public var heartbeatInterval: SCTPDuration = .seconds(15)
    /// RFC 9260 §6.2: "the acknowledgement SHOULD be generated within 200 ms".
    public var delayedAckTimeout: SCTPDuration = .milliseconds(200)
    /// A SACK goes at least every this many packets with DATA. RFC 9260 §6.2 says every second packet (the
    /// default). More is for two ends that both run this engine with the same setting: each then marks with the I bit
    /// (RFC 7053) every chunk it needs a SACK for at once (a retransmission, the one that takes the last of the peer's
    /// window or fills a path window under two SACKs' worth of packets), so neither waits on a SACK held back, and the
    /// SACKs each gets release longer runs of packets. Each SACK costs both ends a datagram; at 4, a download takes
    /// half the uplink's acknowledgement traffic of every second packet. From the second packet on, a SACK held back
    /// is due within an eighth of the smallest smoothed round trip of the association's paths (1 to 10 ms).
    public var packetsPerSack: Int = 2
    /// `packetsPerSack` for a peer known to run this engine (agg's client and server talk only to each other).
    public static let packetsPerSackWithThisEngine = 4
    public var shutdownGuard: SCTPDuration = .seconds(300)

    // MARK: - Retransmission limits
    public var associationMaxRetransmissions: Int = 10
    public var pathMaxRetransmissions: Int = 5
    public var maxInitRetransmissions: Int = 8
    /// PFMR of RFC 7829: a path becomes potentially failed once its error count exceeds this (0: after the first
    /// timeout, as CMT-PF does). Set it to `pathMaxRetransmissions` to turn PF off.
    public var potentiallyFailedThreshold: Int = 0
    public var maxBurst: Int = 4

    // MARK: - Congestion control
    /// Each path's congestion controller: loss-based (RFC 9260 §7.2, LIA-coupled with
    /// `multipath.coupledCongestionControl`) or model-based and paced (BBR), which keeps the bottleneck's queue short.
    public var congestionControl = SCTPCongestionControl.reno

    // MARK: - Multipath
    public var multipath = SCTPMultipathConfiguration()

    // MARK: - UDP encapsulation (RFC 6951)
    /// The UDP port a peer listens on when nothing better is known.
    public static let defaultUDPPort: UInt16 = 9899

    // MARK: - AUTH (RFC 4895) and dynamic addresses (RFC 5061)
    /// Announce AUTH, ASCONF and ASCONF-ACK in INIT and INIT-ACK, so addresses can be added at run time.
    public var supportsDynamicAddresses = true
    /// Endpoint pair shared keys by Shared Key Identifier (RFC 4895 §6.1); key 0 is the empty key by default.
    public var authSharedKeys: [UInt16: [UInt8]] = [0: []]
    /// The Shared Key Identifier outgoing AUTH chunks use.
    public var authActiveKeyID: UInt16 = 0
    /// HMAC-ALGO in order of preference: SHA-256 (3), then SHA-1 (1), which RFC 4895 §3.3 makes mandatory.
    public var authHMACIdentifiers: [UInt16] = [3, 1]
    /// CHUNKS: chunk types the peer must authenticate; ASCONF and ASCONF-ACK at least (RFC 5061 §4.1.1).
    public var authChunkTypes: [UInt8] = [0xC1, 0x80]

    // MARK: - Partial reliability (RFC 3758, RFC 7496)
    /// Announce Forward-TSN-Supported in INIT and INIT-ACK. When the peer announces it too, messages sent with a
    /// `SCTPReliability` other than `.reliable` may be abandoned and skipped with FORWARD-TSN; otherwise, and with
    /// a peer that does not announce it, every message once sent is delivered reliably and FORWARD-TSN is neither
    /// sent nor accepted.
    public var partialReliability = true

    // MARK: - Zero checksum (RFC 9653)
    /// The alternate error detection method this endpoint accepts instead of the CRC32c (its Error Detection Method
    /// Identifier, announced in a Zero Checksum Acceptable parameter), nil for none. Set it only where every packet
    /// is protected by that method: the layer below marks what it verified (`SCTPDatagram.integrityVerified`), and
    /// the engine skips the CRC32c of those packets only. The passive side announces it only in answer to an INIT
    /// that itself arrived verified. When the peer announces the same method, DATA-bearing packets go with a zero
    /// checksum; every other packet, and every packet to a peer that did not announce it, keeps its CRC32c.
    public var zeroChecksumMethod: UInt32? = nil

    // MARK: - Resource limits
    /// Paths one association may have, counting those learnt from the peer's address list in INIT-ACK and those
    /// added with ASCONF: addresses listed beyond it are ignored, and an ASCONF Add IP Address beyond it is
    /// refused with "Operation Refused Due to Resource Shortage" (RFC 5061 §5.2). Each refusal is counted in
    /// `SCTPEndpoint.limitRefusals`.
    public var maxPathsPerAssociation = 8

    // MARK: - Security of the handshake
    /// Key for the HMAC-SHA256 that signs state cookies. Set it from a real random source in production.
    public var cookieSecret: [UInt8] = Array(repeating: 0x5A, count: 32)

    public init() {}
}

/// Which congestion controller an association's paths run.
public enum SCTPCongestionControl: String, Sendable, Equatable, CaseIterable {
    /// RFC 9260 §7.2's window-based controller (NewReno-like): grows the window until the bottleneck's queue
    /// overflows, then halves it.
    case reno
    /// BBR-like (`BBRController`): paces at the measured bottleneck bandwidth and keeps about two bandwidth-delay
    /// products in flight, so the bottleneck's queue stays short.
    case bbr
}

/// Concurrent Multipath Transfer (Iyengar, Amer, Stewart 2006; draft-tuexen-tsvwg-sctp-multipath) and its later
/// refinements. Every mechanism can be switched off on its own, for measurement.
public struct SCTPMultipathConfiguration: Sendable {
    /// Send new data on every active path with room in its cwnd, not only on the primary.
    public var concurrentMultipathTransfer = true
    /// SFR: count miss indications per destination, so reordering between paths causes no spurious fast
    /// retransmit.
    public var splitFastRetransmit = true
    /// CUC: a path's cwnd grows when its pseudo-cumulative ack advances, not only the association's.
    public var cwndUpdateForCMT = true
    /// DAC: the receiver keeps delaying SACKs when data arrives out of order and reports how many packets each
    /// SACK covers; the sender counts miss indications accordingly.
    public var delayedAckForCMT = true
    /// Where retransmissions go.
    public var retransmissionPolicy = RetransmissionPolicy.ssthresh
    /// Which path gets new data first.
    public var scheduler = Scheduler.roundRobin
    /// Sender-side buffer splitting (Dreibholz et al.): a path may occupy at most its cwnd's share of the peer's
    /// receive window, so a slow path cannot take all of it.
    public var senderBufferSplitting = true
    /// Receiver-side buffer splitting: each path may hold at most its share of our receive buffer (in proportion to
    /// the bytes recently received on it) with data that arrived out of order; beyond it, DATA arriving out of
    /// order on that path is dropped unacknowledged, so a slow or lossy path cannot fill the buffer with data stuck
    /// behind holes and block the others. Off by default: in the benchmark cases it changes nothing, and the
    /// data it drops has already crossed the network.
    public var receiverBufferSplitting = false
    /// NR-SACK: announce and use non-renegable acknowledgements, so the sender frees data delivered out of order.
    public var nrSack = true
    /// During fast recovery a path may retransmit as many bytes beyond cwnd as each SACK newly acknowledges there
    /// (packet conservation, as PRR does for TCP, RFC 6937), so lost retransmissions are repaired without waiting
    /// for T3-rtx.
    public var recoveryPacketConservation = true
    /// Coupled congestion control in the style of RFC 6356 (LIA), for paths that share a bottleneck.
    public var coupledCongestionControl = false

    public enum RetransmissionPolicy: Sendable, Equatable {
        /// RTX-SSTHRESH: the active path with the largest ssthresh.
        case ssthresh
        /// RTX-CWND: the active path with the largest cwnd.
        case cwnd
        /// The path the data was first sent on (plain RFC 9260 behaviour when that path is alive).
        case samePath
    }

    public enum Scheduler: Sendable, Equatable {
        /// Paths take turns, each filling its cwnd.
        case roundRobin
        /// The path with the lowest smoothed RTT is filled first.
        case lowestRTTFirst
    }

    public init() {}

    /// Plain RFC 9260: one path at a time, every CMT mechanism off.
    public static var singlePath: SCTPMultipathConfiguration {
        var c = SCTPMultipathConfiguration()
        c.concurrentMultipathTransfer = false
        c.splitFastRetransmit = false
        c.cwndUpdateForCMT = false
        c.delayedAckForCMT = false
        c.senderBufferSplitting = false
        c.receiverBufferSplitting = false
        c.nrSack = false
        return c
    }
}
