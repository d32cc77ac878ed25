import NIOCore

/// One UDP datagram carrying an SCTP packet (RFC 6951): where it came from or leaves from, where it goes, and the
/// SCTP packet itself (common header onward).
public struct SCTPDatagram: Sendable, CustomStringConvertible {
    /// The local address and UDP port for outgoing datagrams; the remote one for incoming datagrams.
    public var source: SCTPSocketAddress
    /// The remote address and UDP port for outgoing datagrams; the local one for incoming datagrams.
    public var destination: SCTPSocketAddress
    /// The SCTP packet: common header and chunks.
    public var payload: ByteBuffer
    /// Incoming: who the layer below authenticated as the sender. Outgoing: the owner of the association (or of the
    /// packet answered) that sends it, so the layer below seals it for that owner and no other.
    public var owner: SCTPOwner
    /// Incoming: the layer below already proved these bytes unchanged (an AEAD tag over them), so the CRC32c is not
    /// checked again (the reasoning of RFC 9653, zero checksum under DTLS). The engine sends packets without a CRC32c
    /// only to a peer that announced `SCTPConfiguration.zeroChecksumMethod` in its INIT or INIT-ACK.
    public var integrityVerified = false
    /// Incoming: the layer below carried the packet without its common header's ports and checksum (agg's packed
    /// datagrams, docs/PROTOCOL.md "Data"), which it hands in as zeros. The verification tag routes such a packet
    /// (the engine fills the ports in from the association). One whose tag routes nowhere is answered as out of the
    /// blue at the port of the sender's latest association, or dropped if it never had one; a handshake or T-bit
    /// packet without ports is dropped.
    public var portsElided = false

    public init(
        source: SCTPSocketAddress, destination: SCTPSocketAddress, payload: ByteBuffer,
        owner: SCTPOwner = .unauthenticated
    ) {
        self.source = source
        self.destination = destination
        self.payload = payload
        self.owner = owner
    }

    public var description: String { "\(source) -> \(destination) (\(payload.readableBytes) bytes)" }
}

/// Who the layer under SCTP vouches for as a datagram's sender: on aggserver, the client key whose session opened
/// it; `.unauthenticated` for plain RFC 6951. An association belongs to the owner whose datagrams created it
/// (the owner is signed into the state cookie), and the endpoint lets a datagram reach, collide with or be answered
/// on behalf of its own owner's associations only: a key holder who learns another client's verification tags can
/// neither route to that client's association nor probe for it.
public struct SCTPOwner: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Plaintext datagrams: nobody vouched for the sender.
    public static let unauthenticated = SCTPOwner(rawValue: 0)

    public var description: String {
        self == .unauthenticated ? "unauthenticated" : "owner-\(String(rawValue, radix: 16))"
    }
}
