/// Lets agg-bench drive the receiver's TSN bookkeeping on its own, without an association: TSNs in, one SACK per
/// packet out. Not part of the engine's API (SPI `Benchmarks`).
@_spi(Benchmarks) public struct SCTPDataTrackerProbe: Sendable {
    private var tracker: DataTracker
    private let now = SCTPTime(nanoseconds: 1)

    /// `maxGapRanges` raises the tracker's cap on ranges held, so the benchmark can hold as many as it feeds.
    public init(initialTSN: UInt32, maxGapRanges: Int) {
        var configuration = DataTracker.Configuration()
        configuration.maxGapRanges = maxGapRanges
        tracker = DataTracker(peerInitialTSN: TSN(initialTSN), configuration: configuration)
    }

    /// One packet carrying `tsns`, then the SACK for it; returns the number of gap blocks that SACK reports.
    public mutating func receivePacket(_ tsns: some Sequence<UInt32>) -> Int {
        for tsn in tsns { _ = tracker.handleData(tsn: TSN(tsn)) }
        tracker.handlePacketEnd(now: now)
        return tracker.makeSack(advertisedReceiverWindowCredit: 0).gapAckBlocks.count
    }

    public var cumulativeTSN: UInt32 { tracker.cumulativeTSN.rawValue }
}
