import SCTPEngine

/// What the datagram layer tells the service above it, beyond the datagrams themselves.
public enum DatagramSecurityEvent: Sendable, Equatable {
    /// Client: the server answered a HELLO that named the current session without knowing it: it restarted (or the
    /// session expired), and the association over it is gone on the server. Start a new one.
    case serverLostSession
    /// Client: the server does not speak this build's handshake version; it speaks `serverVersions`. Authenticated
    /// with the client's key, so it is the server's word.
    case versionMismatch(serverVersions: ClosedRange<UInt8>)
    /// Server: a client holding the key `keyName` sent a HELLO of a version this build does not speak.
    case clientVersionMismatch(keyName: String, clientVersion: UInt8)
}
