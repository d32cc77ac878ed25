/// Resource limits shared by client and server.
public struct StreamLimits: Equatable, Sendable {
    /// Streams (proxied connections) open at once on one association, 1 to 65,534 (every SCTP stream id but the
    /// control stream's). The server tells its limit in HELLO and refuses an OPEN beyond it; the client uses the
    /// smaller of its own and the server's, and a connection beyond it waits for a stream to free
    /// (`streamWait`) before it is refused. Memory stays bounded by `bufferedBytesPerAssociation` whatever the
    /// count; each open connection costs a socket (raise the file limit with it: the shipped units allow 1,048,576).
    public var streamsPerAssociation = 16_384
    /// Client: how long a new connection waits for a free stream when every one is in use, and how many may wait.
    public var streamWait: Duration = .seconds(5)
    public var streamWaitQueue = 4096
    /// Paths one association may have (`SCTPConfiguration.maxPathsPerAssociation`): a peer's ASCONF adding
    /// another is refused, addresses its INIT-ACK lists beyond it are ignored.
    public var pathsPerAssociation = 8
    /// Credit per stream and direction: the most DATA bytes buffered for one stream (OPEN and HELLO credit).
    /// 4 MiB: one stream must be able to fill every path at once, and its credit only comes back once bytes were
    /// delivered in order, so it has to cover the summed rates times the slowest path's RTT with full queues
    /// (100 Mbit/s over 120 ms is 1.5 MB). 256 KiB held a download to 79% of two 20+30 Mbit/s paths in the lab.
    /// Memory stays bounded by `bufferedBytesPerAssociation`.
    public var streamCredit: UInt32 = 4 * 1024 * 1024
    /// The most DATA bytes buffered for all streams of one association; at it, the side stops returning credit
    /// until its sockets drain, refuses new streams, and resets a stream whose DATA would take it past. Four times
    /// it (at least eight send buffers) caps the other direction: a socket's last bytes, which NIO reads at the
    /// peer's FIN whatever the reads allowed, reset their stream if they would take what the association read and
    /// has not sent past that, and the server's new connections wait to connect while half of this is held
    /// (`StreamSession.unsentLimit`, `connectGate`).
    public var bufferedBytesPerAssociation = 64 * 1024 * 1024
    /// A stream with no DATA in either direction for this long is reset (`ResetReason.idleTimeout`).
    public var streamIdleTimeout: Duration = .seconds(300)
    /// An association with no stream for this long is shut down (client) or aborted (server).
    public var associationIdleTimeout: Duration = .seconds(600)
    /// How long the server may take to authenticate a new association before aborting it.
    public var authenticationTimeout: Duration = .seconds(10)
    /// The server's limit for resolving and connecting to a target.
    public var connectTimeout: Duration = .seconds(10)
    /// Interval between PINGs on an idle association; nil disables them.
    public var pingInterval: Duration? = .seconds(30)
    /// Associations one client key may hold at once on the server (a client that restarts leaves one behind for a
    /// while; a quiet one is replaced by the new one). Beyond it, a new association is refused and counted.
    public var associationsPerKey = 4

    /// Every SCTP stream id but the control stream's.
    public static let maxStreamsPerAssociation = Int(UInt16.max) - 1

    public init() {}
}
