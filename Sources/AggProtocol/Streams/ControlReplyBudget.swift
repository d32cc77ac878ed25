/// Bounds the control replies a peer can make us queue: one PONG per PING would let a peer that sends PINGs and
/// never lets our send queue drain (a closed receive window) grow that queue without end. A token bucket allows
/// `burst` replies at once and `perSecond` after that; a reply beyond it is dropped and counted. PING is a liveness
/// probe sent every few seconds at most, so an honest peer never meets the bound, and a dropped PONG costs only one
/// probe, never data. The caller passes the time (`uptimeNanoseconds`), so the budget is a plain value.
public struct ControlReplyBudget: Sendable, Equatable {
    /// Replies allowed at once.
    public let burst: Int
    /// Replies allowed per second once the burst is spent.
    public let perSecond: Int
    private var tokens: Double
    private var lastRefill: UInt64?
    /// Replies refused so far.
    public private(set) var refused = 0

    public init(burst: Int = AggLimits.controlReplyBurst, perSecond: Int = AggLimits.controlRepliesPerSecond) {
        self.burst = max(1, burst)
        self.perSecond = max(1, perSecond)
        tokens = Double(self.burst)
    }

    /// Whether a reply may be queued at `now` (monotonic nanoseconds); spends one token when it may.
    public mutating func mayReply(now: UInt64) -> Bool {
        if let last = lastRefill, now > last {
            tokens = min(Double(burst), tokens + Double(now - last) * Double(perSecond) / 1e9)
        }
        lastRefill = max(lastRefill ?? now, now)
        guard tokens >= 1 else {
            refused += 1
            return false
        }
        tokens -= 1
        return true
    }
}
