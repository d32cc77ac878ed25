import AggProtocol
import NIOCore

/// What the ingress handlers need besides the connector: credentials, limits, timeouts, and where refusals are
/// counted.
public struct ProxyIngressConfiguration: Sendable {
    /// A username and password that local applications must present.
    public struct Credentials: Hashable, Sendable, CustomStringConvertible {
        public var username: String
        public var password: String

        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }

        /// The username only: a password never reaches a log line.
        public var description: String { "\(username):<hidden>" }
    }

    /// The users that may use the proxy. When there is one or more, SOCKS5 requires RFC 1929 username/password,
    /// SOCKS4 and SOCKS4a are refused (they carry no password), and the HTTP proxy requires
    /// `Proxy-Authorization: Basic`. When empty, no authentication is asked for.
    public var users: [Credentials] = []

    /// One user (the common case): reading gives the first of `users`, setting replaces them.
    public var credentials: Credentials? {
        get { users.first }
        set { users = newValue.map { [$0] } ?? [] }
    }

    /// Whether clients must authenticate.
    public var requiresCredentials: Bool { !users.isEmpty }

    /// Called on the connection's event loop for every request a defence refuses (wrong or missing credentials,
    /// SOCKS4 while credentials are required).
    public var onRefusal: (@Sendable (Refusal) -> Void)?
    /// A connection that has not finished its SOCKS or HTTP CONNECT handshake (connect included) in this time is
    /// closed.
    public var handshakeTimeout: TimeAmount = .seconds(30)
    /// The HTTP proxy closes a connection whose next request head has not fully arrived in this time (with 408 when
    /// the request has started). This also bounds how long an idle keep-alive connection stays open.
    public var httpHeaderTimeout: TimeAmount = .seconds(10)
    /// Largest HTTP request head (request line and headers) accepted; larger ones get 431 and a close.
    public var maxHTTPHeadSize: Int = 16 * 1024
    /// SOCKS4 user id and SOCKS4a host name limit (bytes, excluding the NUL).
    public var maxSOCKS4FieldLength: Int = 255
    /// Request body bytes the HTTP proxy holds while a forwarded request's upstream opens; past it, it stops
    /// reading from the client until the upstream is open (the body then flows with the upstream's backpressure).
    public var maxPendingBody: Int = 64 * 1024

    public init(credentials: Credentials? = nil) {
        self.users = credentials.map { [$0] } ?? []
    }

    public init(users: [Credentials]) {
        self.users = users
    }

    /// Whether `username` and `password` are one of `users`' pairs. Every pair is compared in full, so the time
    /// taken does not tell how much of a secret matched, or which user.
    func accepts(username: [UInt8], password: [UInt8]) -> Bool {
        var matched = false
        for user in users {
            let userMatches = SOCKS5Handshake.constantTimeEqual(username, Array(user.username.utf8))
            let passwordMatches = SOCKS5Handshake.constantTimeEqual(password, Array(user.password.utf8))
            matched = matched || (userMatches && passwordMatches)
        }
        return matched
    }
}
