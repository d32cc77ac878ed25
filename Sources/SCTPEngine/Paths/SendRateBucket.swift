/// A token bucket that caps one path's send rate: refilled from `now` at `bytesPerSecond` up to a burst of
/// `capacity`, drained by every packet sent. A packet may overdraw it (one packet never waits on its own size);
/// the debt is paid back before the next, so the average stays at the cap. Serves both a path policy's fixed cap
/// and the congestion controller's pacing, whose rate changes with every ack.
struct SendRateBucket: Sendable {
    private(set) var bytesPerSecond: Int
    /// The burst: for a policy's cap 50 ms at the cap, at least four full-size packets.
    private(set) var capacity: Double
    private(set) var tokens: Double
    private var refilledAt: SCTPTime?

    init(bytesPerSecond: Int, mtu: Int) {
        self.bytesPerSecond = max(bytesPerSecond, 1)
        capacity = Double(max(self.bytesPerSecond / 20, 4 * mtu))
        tokens = capacity
    }

    /// A pacer: a burst of 2 ms at the rate, at least four full-size packets. At most that much queue at the
    /// bottleneck, and enough that a driver woken a millisecond late (a loaded host) loses no sending time.
    init(pacingBytesPerSecond: Int, mtu: Int) {
        bytesPerSecond = max(pacingBytesPerSecond, 1)
        capacity = Self.pacingCapacity(bytesPerSecond: bytesPerSecond, mtu: mtu)
        tokens = capacity
    }

    /// What a paced path sends per wake-up: half a millisecond at the pacing rate, at least two full packets, at
    /// most 64 KiB (one segmented write). At tens of Mbit/s that is two packets, as an unbatched pacer would send; at
    /// hundreds it is a run the driver hands the kernel in one system call instead of a wake-up every few packets
    /// (Linux TCP sizes its segmentation-offload bursts by its pacing rate the same way).
    static func sendQuantum(bytesPerSecond: Double, mtu: Int) -> Int {
        max(2 * mtu, min(Int(min(bytesPerSecond, 1e12)) / 2000, 64 << 10))
    }

    static func pacingCapacity(bytesPerSecond: Int, mtu: Int) -> Double {
        Double(max(bytesPerSecond / 500, 4 * mtu))
    }

    /// A new pacing rate: the tokens (or debt) so far stay, clamped to the new burst.
    mutating func setPacingRate(bytesPerSecond: Int, mtu: Int, now: SCTPTime) {
        refill(now: now)
        self.bytesPerSecond = max(bytesPerSecond, 1)
        capacity = Self.pacingCapacity(bytesPerSecond: self.bytesPerSecond, mtu: mtu)
        tokens = min(tokens, capacity)
    }

    /// True while a packet may go.
    var hasTokens: Bool { tokens > 0 }

    mutating func refill(now: SCTPTime) {
        defer { refilledAt = now }
        guard let last = refilledAt, last < now else { return }
        tokens = min(capacity, tokens + (now - last).seconds * Double(bytesPerSecond))
    }

    mutating func consume(_ bytes: Int) { tokens -= Double(bytes) }

    /// When the bucket next holds `amount` bytes (at most its capacity), for the association's wake-up.
    func time(toHold amount: Int, after now: SCTPTime) -> SCTPTime {
        let missing = min(Double(amount), capacity) - tokens
        guard missing > 0 else { return now }
        let nanoseconds = (missing / Double(bytesPerSecond) * 1e9).rounded(.up)
        return now + .nanoseconds(Int64(min(nanoseconds, 3.6e12)))
    }
}
