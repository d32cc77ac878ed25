/// How a driver protects its datagrams: plain RFC 6951 (interop, tshark), or agg's encryption layer as the client
/// (one key) or as the server (every client's key, plaintext refused unless allowed).
public enum DatagramProtection: Sendable {
    case plaintext
    case client(key: PreSharedKey)
    case server(keys: [PreSharedKey], allowPlaintext: Bool)

    /// Bytes the layer adds to each SCTP packet, by which the engine's largest packet shrinks so sealed datagrams
    /// are no larger than plaintext ones were.
    public var overhead: Int {
        switch self {
        case .plaintext: 0
        case .client, .server: SecureDatagram.overhead
        }
    }
}
