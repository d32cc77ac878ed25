/// One of `count` shards of a server that spreads its associations over several endpoints (one per event loop,
/// behind SO_REUSEPORT): the values this shard chooses (its local verification tags, its association ids) are
/// congruent to `index` modulo `count`, so a steering rule that reads such a value from a packet finds the shard
/// that chose it, and ids stay unique across shards.
public struct SCTPShard: Sendable, Equatable {
    public let count: UInt32
    public let index: UInt32

    /// The only shard of an unsharded endpoint.
    public static let single = SCTPShard(count: 1, index: 0)

    /// `index` < `count`, `count` ≥ 1.
    public init(count: UInt32, index: UInt32) {
        precondition(count >= 1 && index < count, "shard \(index) of \(count)")
        self.count = count
        self.index = index
    }

    /// Whether `value` steers to this shard (`value % count == index`).
    public func owns(_ value: UInt32) -> Bool { value % count == index }

    /// A value as random as `value` that steers to this shard: `value` moved down to the nearest congruent value
    /// in its block of `count` (or the block below when that one overflows). Zero only if `value` < `count` and
    /// this is shard 0.
    public func steer(_ value: UInt32) -> UInt32 {
        let base = value - value % count
        let (steered, overflow) = base.addingReportingOverflow(index)
        return overflow ? base - count + index : steered
    }
}
