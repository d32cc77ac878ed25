import NIOCore

/// AUTH (RFC 4895) for one association: what INIT and INIT-ACK announce, how the association keys come about,
/// signing outgoing packets (§6.2) and checking incoming ones (§6.3).
extension Association {
    // MARK: - Negotiation

    /// RFC 5061 §4.2.7: the extensions a dynamic-address endpoint lists: AUTH, ASCONF and ASCONF-ACK.
    static let dynamicAddressExtensions: [UInt8] = [AuthChunk.type, ASCONFChunk.type, ASCONFAckChunk.type]

    /// The parameters our INIT carries: RANDOM, CHUNKS, HMAC-ALGO and Supported Extensions. The RANDOM is drawn
    /// once per association from its seeded generator, so a retransmitted or restarted INIT repeats it.
    func localInitParameters() -> [Parameter] {
        guard configuration.supportsDynamicAddresses else { return Association.localFeatureParameters(configuration) }
        if auth.local == nil {
            auth.local = AuthParameters(
                random: random.bytes(AuthParameters.randomLength), chunks: configuration.authChunkTypes,
                hmacIdentifiers: configuration.authHMACIdentifiers)
        }
        return auth.local!.parameters + Association.localFeatureParameters(configuration)
    }

    /// What INIT-ACK parameters an endpoint with `configuration` announces with our RANDOM `random`.
    /// `zeroChecksum`: whether to announce the configuration's alternate error detection method (RFC 9653).
    static func localInitAckParameters(
        random: [UInt8], configuration: SCTPConfiguration, zeroChecksum: Bool
    ) -> [Parameter] {
        guard configuration.supportsDynamicAddresses, !random.isEmpty else {
            return localFeatureParameters(configuration, zeroChecksum: zeroChecksum)
        }
        let local = AuthParameters(
            random: random, chunks: configuration.authChunkTypes, hmacIdentifiers: configuration.authHMACIdentifiers)
        return local.parameters + localFeatureParameters(configuration, zeroChecksum: zeroChecksum)
    }

    /// AUTH and ASCONF as negotiated from the peer's INIT or INIT-ACK parameters: AUTH when the peer sent all of
    /// RANDOM, CHUNKS and HMAC-ALGO; ASCONF when it also lists ASCONF and ASCONF-ACK as supported and in its
    /// CHUNKS (RFC 5061 §4.1.1: both "MUST be sent in an authenticated way").
    static func dynamicAddressFeatures(
        peerParameters: [Parameter], configuration: SCTPConfiguration
    ) -> (NegotiatedFeatures, AuthParameters?) {
        guard configuration.supportsDynamicAddresses, let peer = AuthParameters(from: peerParameters) else {
            return ([], nil)
        }
        var features: NegotiatedFeatures = [.auth]
        let extensions =
            peerParameters.lazy.compactMap { p -> [UInt8]? in
                if case .supportedExtensions(let types) = p { return types } else { return nil }
            }.first ?? []
        if extensions.contains(ASCONFChunk.type), extensions.contains(ASCONFAckChunk.type),
            peer.chunks.contains(ASCONFChunk.type), peer.chunks.contains(ASCONFAckChunk.type)
        {
            features.insert(.asconf)
        }
        return (features, peer)
    }

    /// Installs both sides' AUTH parameters and computes the association keys (RFC 4895 §6.1). Returns whether
    /// AUTH is in use.
    func adoptAuth(localRandom: [UInt8], peer: AuthParameters?) -> Bool {
        guard configuration.supportsDynamicAddresses, !localRandom.isEmpty, let peer else {
            auth = AuthContext()
            return false
        }
        auth.local = AuthParameters(
            random: localRandom, chunks: configuration.authChunkTypes,
            hmacIdentifiers: configuration.authHMACIdentifiers)
        auth.peer = peer
        auth.negotiate(configuration: configuration)
        return auth.isNegotiated
    }

    // MARK: - Sending (RFC 4895 §6.2)

    /// One packet of `chunks`. When the peer listed one of them in its CHUNKS, an AUTH chunk goes in front of the
    /// first such chunk; its HMAC covers the AUTH chunk (HMAC field zero) and everything after it, so it is
    /// computed once the packet is complete and patched in.
    func buildPacket(_ chunks: some Sequence<Chunk>, tag: VerificationTag) -> ByteBuffer {
        var builder = PacketBuilder(
            header: CommonHeader(sourcePort: localPort, destinationPort: peerPort, verificationTag: tag, checksum: 0),
            buffer: output.packetBuffer(capacity: configuration.maxPacketSize))
        var authOffset: Int?
        for chunk in chunks {
            if authOffset == nil, auth.peerRequiresAuthentication(chunk.type) {
                authOffset = builder.add(.auth(auth.makeUnsignedChunk()))
            }
            builder.add(chunk)
        }
        if let offset = authOffset, let covered = AuthChunk.authenticatedBytes(inBuilt: builder.buffer, offset: offset)
        {
            builder.patch(auth.sign(covered), at: offset + AuthChunk.hmacOffset)
        }
        return builder.finish()
    }

    // MARK: - Receiving (RFC 4895 §6.3)

    /// Which chunks of `packet` an AUTH chunk authenticates.
    struct AuthenticatedRange {
        /// Index of the first chunk covered by a valid AUTH; nil when there is none.
        var firstAuthenticated: Int?
        /// Index of an AUTH chunk that failed: it and everything after it is discarded.
        var failedAt: Int?

        func isAuthenticated(_ index: Int) -> Bool { firstAuthenticated.map { index >= $0 } ?? false }
    }

    /// Verifies the first AUTH chunk of `packet`, if any.
    func authenticatedRange(of packet: RawPacket) -> AuthenticatedRange {
        guard let i = packet.chunks.firstIndex(where: { $0.type == AuthChunk.type }) else {
            return AuthenticatedRange()
        }
        switch auth.verify(packet.chunks[i], in: packet) {
        case .success:
            return AuthenticatedRange(firstAuthenticated: i + 1)
        case .failure(let failure):
            output.drop(.authFailed)
            logger.debug("AUTH chunk rejected", metadata: ["reason": "\(failure)"])
            return AuthenticatedRange(failedAt: i)
        }
    }
}
