/// How the sender may use one path: as a CMT path or as a backup, and how fast it may send there.
public struct SCTPPathPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Whether a path carries data alongside the others or only when they fail.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// Carries data under CMT whenever it is reachable (the default).
        case active
        /// Kept alive with heartbeats; carries data only while no active-mode path is reachable (every one is
        /// potentially failed, inactive or unconfirmed), and hands back as soon as one is.
        case backup
    }

    public var mode: Mode
    /// Among backups, the lowest number is used first; the others stay idle while it is reachable.
    public var priority: Int
    /// The most bytes per second sent on the path (every SCTP packet counts, headers included); nil for no cap.
    /// A capped path is skipped for new data while its token bucket is empty.
    public var sendRateLimit: Int?

    public init(mode: Mode = .active, priority: Int = 0, sendRateLimit: Int? = nil) {
        self.mode = mode
        self.priority = priority
        self.sendRateLimit = sendRateLimit.map { max($0, 1) }
    }

    /// Active, no cap: what every path has unless told otherwise.
    public static let `default` = SCTPPathPolicy()

    public var description: String {
        var text = mode.rawValue
        if mode == .backup { text += " priority \(priority)" }
        if let sendRateLimit { text += ", \(sendRateLimit) B/s" }
        return text
    }
}

/// Which of an association's paths a policy applies to: those leaving from one of our IP addresses, or the one to
/// a peer address. Kept by the association, so a path added later (ASCONF, a new interface) gets it too.
public enum SCTPPathSelector: Sendable, Hashable, CustomStringConvertible {
    case local(SCTPIPAddress)
    case remote(SCTPSocketAddress)

    func matches(_ path: Path) -> Bool {
        switch self {
        case .local(let ip): return path.localAddress?.ip == ip
        case .remote(let address): return path.remoteAddress == address
        }
    }

    public var description: String {
        switch self {
        case .local(let ip): return "from \(ip)"
        case .remote(let address): return "to \(address)"
        }
    }
}
