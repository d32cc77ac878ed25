/// Names every timer an association runs (RFC 9260 §14's T1 to T5 plus delayed SACK, heartbeat, autoclose and
/// RE-CONFIG); per-destination timers carry their path.
enum TimerID: Hashable, Sendable, Comparable {
    case t1Init
    case t1Cookie
    case t2Shutdown
    case t3rtx(PathID)
    case heartbeat(PathID)
    case delayedSack
    /// A path whose peer now reaches another of our addresses moves there if its own stays quiet
    /// (`Association.followArrivalAddresses`).
    case arrivalCheck
    case t4Asconf
    case t5ShutdownGuard
    case autoClose
    case reconfig
    /// A capped path's token bucket holds enough to send again (`Association.armSendRateTimer`).
    case sendRate

    /// The order in which timers that expire at the same instant are reported: declaration order, then path.
    private var rank: (Int, Int) {
        switch self {
        case .t1Init: return (0, 0)
        case .t1Cookie: return (1, 0)
        case .t2Shutdown: return (2, 0)
        case .t3rtx(let path): return (3, path.rawValue)
        case .heartbeat(let path): return (4, path.rawValue)
        case .delayedSack: return (5, 0)
        case .t4Asconf: return (6, 0)
        case .t5ShutdownGuard: return (7, 0)
        case .autoClose: return (8, 0)
        case .reconfig: return (9, 0)
        case .arrivalCheck: return (10, 0)
        case .sendRate: return (11, 0)
        }
    }

    static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}
