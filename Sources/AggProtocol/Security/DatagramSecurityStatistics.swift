import NIOCore
import SCTPEngine

/// Counters of the datagram layer: what was sealed and opened, and every reason a datagram was dropped. Each drop
/// costs O(1) and allocates no state.
public struct DatagramSecurityStatistics: Sendable, Equatable {
    public var sealed = 0
    public var opened = 0
    /// The largest datagram sealed, in bytes (header, SCTP packet and tag).
    public var largestSealed = 0
    public var handshakesSent = 0
    public var handshakesCompleted = 0
    /// Datagrams too short for their type, or of a type or handshake version the layer does not know; authenticated
    /// handshake messages whose X25519 public key gives no usable shared secret (a low-order point).
    public var droppedMalformed = 0
    /// HELLOs naming a key id the server does not hold.
    public var droppedUnknownKey = 0
    /// Data datagrams naming a session that does not exist (or expired).
    public var droppedUnknownSession = 0
    /// Handshake tags or AEAD tags that did not verify.
    public var droppedBadTag = 0
    /// Data counters seen before or older than the replay window; HELLOs seen before.
    public var droppedReplay = 0
    /// HELLOs whose timestamp lies outside the window.
    public var droppedStaleHello = 0
    /// HELLOs refused because a table is full.
    public var droppedTableFull = 0
    /// Plaintext SCTP refused by a server that does not allow it.
    public var droppedPlaintext = 0
    /// Plaintext SCTP passed to the engine (a server started with `--allow-plaintext`).
    public var plaintextAccepted = 0
    /// Outgoing datagrams that could not be sealed (no session for their destination, queue full).
    public var sealFailures = 0
    /// Times a key authenticated datagrams from a remote address another key already seals toward (a spoofed
    /// source, or one NAT mapping reused by two clients). Never obeyed: each key keeps its own route.
    public var addressClashes = 0
    /// Handshakes that found the two sides speaking different versions (VERSION sent by the server, or received
    /// and authenticated by the client).
    public var versionMismatches = 0

    public init() {}

    /// Every dropped incoming datagram.
    public var dropped: Int {
        droppedMalformed + droppedUnknownKey + droppedUnknownSession + droppedBadTag + droppedReplay
            + droppedStaleHello + droppedTableFull + droppedPlaintext
    }
}

extension DatagramSecurityStatistics {
    /// Counts a sealed datagram of `length` bytes (client and server alike).
    mutating func recordSealed(length: Int) {
        sealed += 1
        largestSealed = max(largestSealed, length)
    }

    /// Counts a data datagram of a known session that did not open.
    mutating func count(_ failure: SessionCipher.OpenFailure) {
        switch failure {
        case .tooShort: droppedMalformed += 1
        case .replayed: droppedReplay += 1
        case .badTag: droppedBadTag += 1
        }
    }
}
