import NIOCore

/// An association's AUTH state (RFC 4895): both sides' parameters, the association shared keys, the HMAC and key
/// it signs with, and the checks of §6.2 (sending) and §6.3 (receiving).
struct AuthContext: Sendable {
    /// Our RANDOM, CHUNKS and HMAC-ALGO, as sent in our INIT or INIT-ACK.
    var local: AuthParameters? { didSet { refreshPeerRequired() } }
    /// The peer's, as received; nil when the peer does not support AUTH.
    var peer: AuthParameters? { didSet { refreshPeerRequired() } }
    /// Association shared keys by shared key identifier (RFC 4895 §6.1).
    private(set) var keys: [UInt16: [UInt8]] = [:] { didSet { refreshPeerRequired() } }
    /// The chunk types that go after an AUTH chunk once AUTH is negotiated: asked on every packet built, so kept
    /// as a bit set rather than searched in the peer's list (which would also copy this struct each time).
    private var peerRequired = ChunkTypeSet()
    /// The key identifier we sign with.
    private(set) var sendKeyID: UInt16 = 0
    /// The HMAC we sign with: the first of the peer's list that we support.
    private(set) var sendHMAC: AuthHMACIdentifier = .sha1

    /// Why an AUTH chunk did not authenticate what follows it.
    enum Failure: Error, Equatable {
        case notNegotiated
        case unknownKey(UInt16)
        case unsupportedHMAC(UInt16)
        case badMAC
        case malformed
    }

    var isNegotiated: Bool { local != nil && peer != nil && !keys.isEmpty }

    /// Computes the association keys from both key vectors and every configured endpoint pair key.
    mutating func negotiate(configuration: SCTPConfiguration) {
        keys = [:]
        guard let local, let peer else { return }
        // RFC 4895 §3.3: the peer lists its HMACs in order of preference; we take the first we also support.
        guard
            let hmac = peer.hmacIdentifiers.lazy.compactMap({ id in
                local.hmacIdentifiers.contains(id) ? AuthHMACIdentifier(rawValue: id) : nil
            }).first
        else { return }
        sendHMAC = hmac
        for (id, shared) in configuration.authSharedKeys {
            keys[id] = AuthParameters.associationKey(sharedKey: shared, local: local.keyVector, peer: peer.keyVector)
        }
        sendKeyID = configuration.authActiveKeyID
    }

    /// RFC 4895 §6.2: a chunk type the peer listed in its CHUNKS must be sent after an AUTH chunk.
    func peerRequiresAuthentication(_ type: UInt8) -> Bool {
        peerRequired.contains(type)
    }

    private mutating func refreshPeerRequired() {
        peerRequired = ChunkTypeSet()
        guard isNegotiated, let peer else { return }
        for type in peer.chunks { peerRequired.insert(type) }
    }

    /// RFC 4895 §6.3: chunk types we must receive authenticated: those we listed, and always ASCONF and
    /// ASCONF-ACK (RFC 5061 §4.1.1 and §4.1.2 require them to be sent authenticated).
    func localRequiresAuthentication(_ type: UInt8) -> Bool {
        type == ASCONFChunk.type || type == ASCONFAckChunk.type || (local?.chunks.contains(type) ?? false)
    }

    /// An AUTH chunk with the HMAC field zeroed, to be patched once the packet is complete.
    func makeUnsignedChunk() -> AuthChunk {
        AuthChunk(
            sharedKeyID: sendKeyID, hmacID: sendHMAC.rawValue,
            hmac: ByteBuffer(repeating: 0, count: sendHMAC.digestLength))
    }

    /// The MAC over `covered` with the sending key.
    func sign(_ covered: ByteBuffer) -> [UInt8] {
        sendHMAC.authenticationCode(for: Array(covered.readableBytesView), key: keys[sendKeyID] ?? [])
    }

    /// RFC 4895 §6.3: checks the AUTH chunk `raw` of `packet` against the key and HMAC it names.
    func verify(_ raw: RawChunk, in packet: RawPacket) -> Result<Void, Failure> {
        guard isNegotiated else { return .failure(.notNegotiated) }
        guard let chunk = try? AuthChunk(flags: raw.flags, value: raw.value),
            let covered = AuthChunk.authenticatedBytes(in: packet, authChunk: raw)
        else { return .failure(.malformed) }
        // RFC 4895 §6.3: an unknown Shared Key Identifier means the packet is silently discarded.
        guard let key = keys[chunk.sharedKeyID] else { return .failure(.unknownKey(chunk.sharedKeyID)) }
        // RFC 4895 §6.3: an HMAC Identifier we did not announce means the packet is discarded.
        guard local!.hmacIdentifiers.contains(chunk.hmacID), let hmac = AuthHMACIdentifier(rawValue: chunk.hmacID)
        else { return .failure(.unsupportedHMAC(chunk.hmacID)) }
        guard hmac.isValid(Array(chunk.hmac.readableBytesView), for: Array(covered.readableBytesView), key: key) else {
            return .failure(.badMAC)
        }
        return .success(())
    }
}

/// A set of chunk types (0...255) in four words.
struct ChunkTypeSet: Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    func contains(_ type: UInt8) -> Bool {
        let bit = UInt64(1) << (type & 63)
        switch type >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }

    mutating func insert(_ type: UInt8) {
        let bit = UInt64(1) << (type & 63)
        switch type >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }
}
