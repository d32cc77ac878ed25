/// The UDP relay's settings, shared by both daemons.
public struct UDPRelaySettings: Equatable, Sendable {
    /// How long a datagram may take to cross the association before it is abandoned (RFC 7496 timed reliability).
    public var lifetime: Duration = .milliseconds(300)
    /// A flow without a datagram either way for this long is forgotten (server: its socket closed).
    public var idleTimeout: Duration = .seconds(60)
    /// Server: flows one client key may hold at once over all its associations; client: flows at once.
    public var flowsPerKey = 1024
    /// Server: datagrams one key may have waiting for their flow's name lookup and socket.
    public var queuedDatagramsPerKey = 256

    public init() {}
}
