import NIOCore

/// What the ingress handlers need besides the connector: credentials, limits and timeouts.
public struct ProxyIngressConfiguration: Sendable {
    /// A username and password that local applications must present.
    public struct Credentials: Hashable, Sendable {
        public var username: String
        public var password: String

        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    /// When set, SOCKS5 requires RFC 1929 username/password, SOCKS4 requires the user id to equal the username, and
    /// the HTTP proxy requires `Proxy-Authorization: Basic`. When nil, no authentication is asked for.
    public var credentials: Credentials?
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

    public init(credentials: Credentials? = nil) {
        self.credentials = credentials
    }
}
