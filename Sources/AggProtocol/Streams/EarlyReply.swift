import NIOCore
import SCTPEngine

/// When aggclient tells a proxied connection's application that its target is connected: after the server's
/// OPEN-RESULT (one round trip to the server and the server's connect), or as soon as the OPEN leaves, with the
/// application's first bytes right behind it. Answering early saves that round trip on every new connection; the
/// price is that a target the server then fails to reach is reported by a reset of the connection, not by the
/// proxy protocol's own failure reply (SOCKS5 reply 5, HTTP 502).
public enum EarlyReply: String, CaseIterable, Sendable {
    /// Always after the OPEN-RESULT: every failure gets its proper reply.
    case never
    /// Early for a target (host and port) that accepted a connection through this association within the last
    /// `KnownTargets.lifetime`, after the OPEN-RESULT otherwise: a new or failing target gets its proper reply,
    /// the many connections a page or an app opens to the same hosts gain a round trip each.
    case known
    /// Early for every target, as shadowsocks does.
    case always
}

/// The targets an association's connections reached recently (`EarlyReply.known`): a bounded table of when each
/// entry expires. A target leaves when the server fails to reach it, or when its entry expires. Each entry is the
/// target as reached by one local address (the application's host): how fast a reply comes tells a local user
/// nothing about where other hosts of the LAN went.
struct KnownTargets {
    struct Key: Hashable {
        var target: StreamTarget
        /// The application's address; nil where there is none (tests, a socket without a peer address).
        var requester: SCTPIPAddress?
    }

    /// How long a successful connect vouches for its target.
    static let lifetime = TimeAmount.seconds(300)
    /// Entries held at most; at it, expired ones go, and if none has, the table starts again empty.
    static let capacity = 4096

    private var expiries: [Key: NIODeadline] = [:]

    var count: Int { expiries.count }

    func contains(_ target: Key, now: NIODeadline) -> Bool {
        guard let expiry = expiries[target] else { return false }
        return expiry > now
    }

    mutating func add(_ target: Key, now: NIODeadline) {
        if expiries.count >= Self.capacity, expiries[target] == nil {
            expiries = expiries.filter { $0.value > now }
            if expiries.count >= Self.capacity { expiries.removeAll(keepingCapacity: true) }
        }
        expiries[target] = now + Self.lifetime
    }

    mutating func remove(_ target: Key) {
        expiries[target] = nil
    }

    mutating func removeAll() {
        expiries.removeAll()
    }
}
