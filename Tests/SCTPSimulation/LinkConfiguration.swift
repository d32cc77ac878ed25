import SCTPEngine

/// How one direction of a simulated path treats packets: rate and queue, delay, jitter, impairments and MTU.
///
/// Sizes are IP packet sizes: the SCTP payload plus the UDP header (8 bytes) and the IPv4 (20) or IPv6 (40)
/// header, which is what the rate, the queue and the MTU apply to.
public struct LinkConfiguration: Sendable, Equatable {
    /// Serialisation rate in bits per second; nil means infinitely fast (no queue, no serialisation delay).
    public var rateBitsPerSecond: Int64?
    /// The FIFO queue in front of the transmitter, in bytes, counting the packet being serialised. A packet that
    /// would make it overflow is dropped (drop-tail). Ignored when `rateBitsPerSecond` is nil.
    public var queueLimitBytes: Int
    /// One-way propagation delay added after serialisation.
    public var delay: SCTPDuration
    /// Extra delay drawn uniformly from [0, jitter] per packet.
    public var jitter: SCTPDuration
    /// When true (the default), jitter never lets a packet overtake an earlier one; only `reorderProbability`
    /// reorders. When false, jitter alone can reorder, as with netem.
    public var jitterPreservesOrder: Bool
    /// Probability that a packet admitted to the link is lost on the wire (after using its share of the rate).
    public var lossProbability: Double
    /// Probability that a packet is held back by `reorderDelay`, so packets sent after it overtake it.
    public var reorderProbability: Double
    /// How long a reordered packet is held back.
    public var reorderDelay: SCTPDuration
    /// Probability that a delivered packet arrives twice.
    public var duplicateProbability: Double
    /// The largest IP packet the link carries; larger ones are dropped and counted.
    public var mtu: Int

    public init(
        rateBitsPerSecond: Int64? = nil,
        queueLimitBytes: Int = 256 * 1024,
        delay: SCTPDuration = .zero,
        jitter: SCTPDuration = .zero,
        jitterPreservesOrder: Bool = true,
        lossProbability: Double = 0,
        reorderProbability: Double = 0,
        reorderDelay: SCTPDuration = .milliseconds(1),
        duplicateProbability: Double = 0,
        mtu: Int = 1500
    ) {
        self.rateBitsPerSecond = rateBitsPerSecond
        self.queueLimitBytes = queueLimitBytes
        self.delay = delay
        self.jitter = jitter
        self.jitterPreservesOrder = jitterPreservesOrder
        self.lossProbability = lossProbability
        self.reorderProbability = reorderProbability
        self.reorderDelay = reorderDelay
        self.duplicateProbability = duplicateProbability
        self.mtu = mtu
    }

    /// An ideal link: infinitely fast, no delay, no loss, MTU 1500.
    public static let ideal = LinkConfiguration()
}

/// What happened to the packets offered to one link. Byte counts are IP packet sizes (see `LinkConfiguration`).
public struct LinkCounters: Sendable, Equatable {
    /// Packets offered to the link, whatever became of them.
    public var sentPackets = 0
    public var sentBytes = 0
    /// Packets handed to the destination (duplicates included), and their SCTP payload bytes.
    public var deliveredPackets = 0
    public var deliveredBytes = 0
    public var deliveredPayloadBytes = 0
    public var droppedByLoss = 0
    public var droppedByQueue = 0
    public var droppedByMTU = 0
    /// Dropped because the link was down when they were sent or went down while they were in flight.
    public var droppedByLinkDown = 0
    /// Dropped by a NAT on this link (no mapping, expired mapping or filtered).
    public var droppedByNAT = 0
    /// Delivered to an address no host is attached at.
    public var droppedUndeliverable = 0
    /// Extra copies made by duplication.
    public var duplicated = 0
    /// Packets held back by reordering.
    public var reordered = 0

    public init() {}

    /// Every drop, whatever the reason.
    public var droppedPackets: Int {
        droppedByLoss + droppedByQueue + droppedByMTU + droppedByLinkDown + droppedByNAT + droppedUndeliverable
    }
}
