/// Lets at most `burst` log lines of one kind through per `interval` and counts the ones it holds back, so a peer
/// that sends the same thing on every packet (an ERROR chunk, a new source port) cannot fill the log. The caller
/// passes `now`, as everywhere in the engine, and adds the count held back to the next line that passes.
public struct LogRateLimiter: Sendable {
    public let burst: Int
    public let interval: SCTPDuration
    private var windowStart: SCTPTime?
    private var passedInWindow = 0
    private var heldBack = 0
    /// Lines held back since the limiter was made.
    public private(set) var totalHeldBack = 0

    /// A limiter for one kind of line: `burst` lines per `interval` (10 per 10 s by default).
    public init(burst: Int = 10, interval: SCTPDuration = .seconds(10)) {
        precondition(burst > 0 && interval > .zero, "a log rate limit lets at least one line through per interval")
        self.burst = burst
        self.interval = interval
    }

    /// Whether a line may be logged at `now`: nil when it is held back; otherwise how many lines of this kind were
    /// held back since the last one that passed (to say so in the line).
    public mutating func admit(now: SCTPTime) -> Int? {
        if let start = windowStart, now - start < interval, now >= start {
            guard passedInWindow < burst else {
                heldBack += 1
                totalHeldBack += 1
                return nil
            }
        } else {
            windowStart = now
            passedInWindow = 0
        }
        passedInWindow += 1
        defer { heldBack = 0 }
        return heldBack
    }
}

/// One association's limits on the log lines its peer can cause with every packet.
struct PeerLogLimits: Sendable {
    /// "peer reported error": one per cause of every ERROR chunk.
    var peerError = LogRateLimiter()
    /// "path remote changed (NAT rebinding)": one per packet from a new source port.
    var rebinding = LogRateLimiter()
    /// "peer path policy": one per Path Policy parameter, and an ASCONF carries dozens.
    var peerPathPolicy = LogRateLimiter()
    /// "backup path stands by" and "backup path carries data": a peer flipping its paths' modes causes one per
    /// request.
    var pathRole = LogRateLimiter()
}
