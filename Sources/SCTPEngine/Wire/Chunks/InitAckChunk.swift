/// INIT ACK (RFC 9260 §3.3.3, type 2): answers an INIT, carrying the state cookie. Its layout is INIT's
/// (`InitLayoutChunk`).
public typealias InitAckChunk = InitLayoutChunk<InitAckKind>

/// Makes an `InitLayoutChunk` an INIT ACK.
public enum InitAckKind: InitLayoutKind {
    public static let type: UInt8 = 2
}
