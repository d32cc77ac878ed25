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

    public init(source: SCTPSocketAddress, destination: SCTPSocketAddress, payload: ByteBuffer) {
        self.source = source
        self.destination = destination
        self.payload = payload
    }

    public var description: String { "\(source) -> \(destination) (\(payload.readableBytes) bytes)" }
}
