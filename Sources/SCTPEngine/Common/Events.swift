import NIOCore

/// Identifies one association of an endpoint for the lifetime of the endpoint.
public struct SCTPAssociationID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public var description: String { "assoc#\(rawValue)" }
}

/// A complete user message received on a stream.
public struct SCTPMessage: Sendable {
    public var stream: StreamID
    public var ppid: PPID
    public var isUnordered: Bool
    public var payload: ByteBuffer

    public init(stream: StreamID, ppid: PPID, isUnordered: Bool, payload: ByteBuffer) {
        self.stream = stream
        self.ppid = ppid
        self.isUnordered = isUnordered
        self.payload = payload
    }
}

/// Why an association ended.
public enum SCTPCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// SHUTDOWN completed: every byte was delivered both ways.
    case shutdownComplete
    /// The peer sent ABORT; the text describes its error causes.
    case abortedByPeer(String)
    /// We aborted at the application's request.
    case abortedLocally
    /// No answer to INIT or COOKIE-ECHO after Max.Init.Retransmits.
    case handshakeTimedOut
    /// Association.Max.Retrans consecutive retransmission timeouts (RFC 9260 §8.1).
    case peerUnreachable
    /// The peer restarted (RFC 9260 §5.2.4): the old association's data is gone.
    case peerRestarted
    /// A protocol violation by the peer that forced an ABORT.
    case protocolViolation(String)
    /// A new association of the same owner took its place after it had been quiet
    /// (`SCTPConfiguration.maxAssociationsPerOwner`).
    case replacedByNewerAssociation

    public var description: String {
        switch self {
        case .shutdownComplete: return "shutdown complete"
        case .abortedByPeer(let why): return "aborted by peer (\(why))"
        case .abortedLocally: return "aborted locally"
        case .handshakeTimedOut: return "handshake timed out"
        case .peerUnreachable: return "peer unreachable"
        case .peerRestarted: return "peer restarted"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .replacedByNewerAssociation: return "replaced by a newer association of the same key"
        }
    }
}

/// The state of a path (one destination address) as the application sees it.
public enum SCTPPathState: Sendable, Equatable {
    case unconfirmed, active, potentiallyFailed, inactive
}

/// What drives a model-based (bbr) path's sending now, for status displays: the mode of its model, or the two
/// answers to a standing queue (its window held to one BDP, or competing with a loss-based flow).
public enum SCTPCongestionPhase: String, Sendable, Equatable, CaseIterable {
    case startup
    case drain
    case probeBandwidth = "probe-bandwidth"
    /// Probing bandwidth with the window held to one BDP while a queue stands.
    case queueHeld = "queue-held"
    case probeRTT = "probe-rtt"
    /// A loss-based flow holds the bottleneck's queue: the window grows and halves as that flow's does.
    case competing
}

/// What an endpoint tells its application, drained with `pollEvent()`.
public enum SCTPEvent: Sendable {
    /// The association is up (COOKIE-ACK received or COOKIE-ECHO accepted).
    case established(SCTPAssociationID, outboundStreams: UInt16, inboundStreams: UInt16)
    /// A whole message arrived.
    case message(SCTPAssociationID, SCTPMessage)
    /// The send buffer drained below its low watermark: `send` accepts data again.
    case writable(SCTPAssociationID)
    /// A path changed state.
    case pathStateChanged(SCTPAssociationID, remote: SCTPSocketAddress, SCTPPathState)
    /// A path's remote UDP port or address changed under a NAT (RFC 6951 §5.4).
    case pathRemoteChanged(SCTPAssociationID, from: SCTPSocketAddress, to: SCTPSocketAddress)
    /// The peer started a graceful shutdown: no more messages will arrive.
    case shutdownReceived(SCTPAssociationID)
    /// The association is gone.
    case closed(SCTPAssociationID, SCTPCloseReason)
    /// A new association of `owner` was refused: the owner holds `maxAssociationsPerOwner` live ones.
    case associationRefused(owner: SCTPOwner, remote: SCTPSocketAddress)
}

/// Errors of the commands an application gives an endpoint.
public enum SCTPError: Error, Equatable, Sendable {
    case noSuchAssociation(SCTPAssociationID)
    case notEstablished
    case invalidStream(StreamID, available: UInt16)
    case sendBufferFull
    case shuttingDown
    case messageTooLarge(Int)
    /// The peer did not negotiate AUTH and ASCONF (RFC 4895, RFC 5061), so addresses cannot change.
    case dynamicAddressesNotNegotiated
    /// The association has no path with that address.
    case noSuchAddress(SCTPSocketAddress)
}
