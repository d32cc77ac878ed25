/// Every tunable of an endpoint and its associations, with RFC 9260 §16 defaults unless agg needs otherwise.
public struct SCTPConfiguration: Sendable {
    /// The SCTP port of this endpoint (not the UDP port).
    public var localPort: UInt16 = 5000
    /// Streams we ask to send on and accept (RFC 9260 §5.1.1: negotiated down to the peer's figures).
    public var outboundStreams: UInt16 = 1024
    public var maxInboundStreams: UInt16 = 1024
    /// Bytes the receiver buffers before the advertised window closes.
    public var receiveBufferSize: Int = 4 * 1024 * 1024
    /// Bytes queued for sending before `send` reports back-pressure.
    public var sendBufferSize: Int = 4 * 1024 * 1024
    /// Largest SCTP packet (common header and chunks) we send: a 1500-byte IP MTU less IPv4 (20) and UDP (8).
    public var maxPacketSize: Int = 1472

    // MARK: - Timers (RFC 9260 §16)
    public var rtoInitial: SCTPDuration = .seconds(1)
    public var rtoMin: SCTPDuration = .milliseconds(200)
    public var rtoMax: SCTPDuration = .seconds(60)
    public var validCookieLife: SCTPDuration = .seconds(60)
    public var heartbeatInterval: SCTPDuration = .seconds(15)
    /// RFC 9260 §6.2: "the acknowledgement SHOULD be generated within 200 ms".
    public var delayedAckTimeout: SCTPDuration = .milliseconds(200)
    public var shutdownGuard: SCTPDuration = .seconds(300)

    // MARK: - Retransmission limits
    public var associationMaxRetransmissions: Int = 10
    public var pathMaxRetransmissions: Int = 5
    public var maxInitRetransmissions: Int = 8
    /// RFC 7829: a path is potentially failed after this many consecutive timeouts (0 turns PF off).
    public var potentiallyFailedThreshold: Int = 1
    public var maxBurst: Int = 4

    // MARK: - UDP encapsulation (RFC 6951)
    /// The UDP port a peer listens on when nothing better is known.
    public static let defaultUDPPort: UInt16 = 9899

    // MARK: - AUTH (RFC 4895) and dynamic addresses (RFC 5061)
    /// Announce AUTH, ASCONF and ASCONF-ACK in INIT and INIT-ACK, so addresses can be added at run time.
    public var supportsDynamicAddresses = true
    /// Endpoint pair shared keys by Shared Key Identifier (RFC 4895 §6.1); key 0 is the empty key by default.
    public var authSharedKeys: [UInt16: [UInt8]] = [0: []]
    /// The Shared Key Identifier outgoing AUTH chunks use.
    public var authActiveKeyID: UInt16 = 0
    /// HMAC-ALGO in order of preference: SHA-256 (3), then SHA-1 (1), which RFC 4895 §3.3 makes mandatory.
    public var authHMACIdentifiers: [UInt16] = [3, 1]
    /// CHUNKS: chunk types the peer must authenticate; ASCONF and ASCONF-ACK at least (RFC 5061 §4.1.1).
    public var authChunkTypes: [UInt8] = [0xC1, 0x80]

    // MARK: - Security of the handshake
    /// Key for the HMAC-SHA256 that signs state cookies. Set it from a real random source in production.
    public var cookieSecret: [UInt8] = Array(repeating: 0x5A, count: 32)

    public init() {}
}
