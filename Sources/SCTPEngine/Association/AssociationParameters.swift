/// What one association's handshake settled (RFC 9260 §5.1): both verification tags and initial TSNs, the peer's
/// initial a_rwnd, the stream counts and extensions both ends agreed on, and the AUTH key material. Built once per
/// handshake (from the INIT-ACK on the initiating side, into the State Cookie on the passive side) and handed to
/// the association whole by `Association.adopt(_:)`; an INIT collision (§5.2.4 B) replaces it the same way.
struct AssociationParameters: Equatable, Sendable {
    /// Our tag: the peer puts it in every packet it sends us (RFC 9260 §8.5).
    var localTag: VerificationTag
    /// The peer's tag: we put it in every packet we send. Zero while we wait for the peer's INIT-ACK.
    var peerTag: VerificationTag
    var localInitialTSN: TSN
    var peerInitialTSN: TSN
    /// The a_rwnd of the peer's INIT or INIT-ACK: its receive window until its first SACK says otherwise.
    var peerInitialReceiverWindow: UInt32
    /// Streams we may send on, negotiated (min of our OS and the peer's MIS).
    var outboundStreams: UInt16
    /// Streams the peer may send on, negotiated.
    var inboundStreams: UInt16
    /// Extensions both sides support.
    var features: NegotiatedFeatures
    /// Our RANDOM and the peer's RANDOM, CHUNKS and HMAC-ALGO (RFC 4895 §6.1 needs both key vectors once the
    /// association exists). Empty and nil when AUTH is not in use.
    var localAuthRandom: [UInt8] = []
    var peerAuth: AuthParameters?

    /// Our side of a handshake we start, before the peer has answered: our tag and initial TSN, the stream
    /// counts we ask for, no extensions, and no peer tag yet (the INIT itself carries tag 0, RFC 9260 §8.5.1).
    static func offer(
        localTag: VerificationTag, localInitialTSN: TSN, configuration: SCTPConfiguration
    ) -> AssociationParameters {
        AssociationParameters(
            localTag: localTag, peerTag: .zero, localInitialTSN: localInitialTSN, peerInitialTSN: TSN(0),
            peerInitialReceiverWindow: 0, outboundStreams: configuration.outboundStreams,
            inboundStreams: configuration.maxInboundStreams, features: [])
    }
}
