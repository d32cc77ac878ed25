import Crypto
import NIOCore

/// The state an endpoint hands its peer in INIT-ACK instead of keeping it (RFC 9260 §5.1.3), signed so that only
/// a COOKIE-ECHO carrying our own cookie creates an association.
struct StateCookie: Equatable {
    /// When the cookie was made, on the endpoint's monotonic clock.
    var createdAt: SCTPTime
    var lifetime: SCTPDuration
    /// What the handshake settled, as the association adopts it.
    var parameters: AssociationParameters
    /// RFC 9260 §5.2.2: the tags of an existing association, so a COOKIE-ECHO can be told apart as restart or
    /// collision (§5.2.4). Zero when there was none.
    var localTieTag: VerificationTag
    var peerTieTag: VerificationTag
    var peerSCTPPort: UInt16
    /// Addresses the peer listed in its INIT.
    var peerAddresses: [SCTPIPAddress]
    /// Whose datagram carried the INIT: only a COOKIE-ECHO from the same owner may turn the cookie into an
    /// association, so one key holder cannot replay a cookie made for another.
    var owner: SCTPOwner = .unauthenticated

    static let macLength = 32
    /// 2: adds the AUTH parameters. 3: adds the owner.
    static let version: UInt8 = 3

    /// Serialises and signs with HMAC-SHA256 under `secret`.
    func encode(secret: SymmetricKey) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(72 + 17 * peerAddresses.count + Self.macLength)
        buffer.writeInteger(Self.version)
        buffer.writeInteger(owner.rawValue)
        buffer.writeInteger(createdAt.nanoseconds)
        buffer.writeInteger(lifetime.nanoseconds)
        buffer.writeInteger(parameters.localTag.rawValue)
        buffer.writeInteger(parameters.peerTag.rawValue)
        buffer.writeInteger(parameters.localInitialTSN.rawValue)
        buffer.writeInteger(parameters.peerInitialTSN.rawValue)
        buffer.writeInteger(parameters.peerInitialReceiverWindow)
        buffer.writeInteger(parameters.outboundStreams)
        buffer.writeInteger(parameters.inboundStreams)
        buffer.writeInteger(localTieTag.rawValue)
        buffer.writeInteger(peerTieTag.rawValue)
        buffer.writeInteger(peerSCTPPort)
        buffer.writeInteger(parameters.features.rawValue)
        buffer.writeInteger(UInt8(min(peerAddresses.count, 32)))
        for address in peerAddresses.prefix(32) {
            let bytes = address.bytes
            buffer.writeInteger(UInt8(bytes.count))
            buffer.writeBytes(bytes)
        }
        Self.writeBytes(parameters.localAuthRandom, into: &buffer)
        if let peerAuth = parameters.peerAuth {
            buffer.writeInteger(UInt8(1))
            Self.writeBytes(peerAuth.random, into: &buffer)
            Self.writeBytes(peerAuth.chunks, into: &buffer)
            buffer.writeInteger(UInt16(truncatingIfNeeded: peerAuth.hmacIdentifiers.count))
            for id in peerAuth.hmacIdentifiers { buffer.writeInteger(id) }
        } else {
            buffer.writeInteger(UInt8(0))
        }
        let mac = buffer.withUnsafeReadableBytes { HMAC<SHA256>.authenticationCode(for: $0, using: secret) }
        buffer.writeBytes(mac)
        return buffer
    }

    enum DecodeError: Error, Equatable {
        case tooShort
        case badSignature
        case unsupportedVersion(UInt8)
        case malformed
    }

    /// Verifies the signature first (in constant time), then parses. Never traps on any input.
    static func decode(_ cookie: ByteBuffer, secret: SymmetricKey) throws(DecodeError) -> StateCookie {
        guard cookie.readableBytes > macLength + 1 else { throw .tooShort }
        let bodyLength = cookie.readableBytes - macLength
        let valid = cookie.withUnsafeReadableBytes { raw -> Bool in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<bodyLength])
            let mac = UnsafeRawBufferPointer(rebasing: raw[bodyLength...])
            return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: secret)
        }
        guard valid else { throw .badSignature }
        var b = cookie.getSlice(at: cookie.readerIndex, length: bodyLength)!
        guard let version: UInt8 = b.readInteger() else { throw .malformed }
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard let owner: UInt64 = b.readInteger(), let created: Int64 = b.readInteger(),
            let lifetime: Int64 = b.readInteger(),
            let localTag: UInt32 = b.readInteger(), let peerTag: UInt32 = b.readInteger(),
            let localTSN: UInt32 = b.readInteger(), let peerTSN: UInt32 = b.readInteger(),
            let rwnd: UInt32 = b.readInteger(), let os: UInt16 = b.readInteger(), let mis: UInt16 = b.readInteger(),
            let localTie: UInt32 = b.readInteger(), let peerTie: UInt32 = b.readInteger(),
            let port: UInt16 = b.readInteger(), let features: UInt32 = b.readInteger(),
            let count: UInt8 = b.readInteger()
        else { throw .malformed }
        var addresses: [SCTPIPAddress] = []
        for _ in 0..<count {
            guard let length: UInt8 = b.readInteger(), let bytes = b.readBytes(length: Int(length)),
                let address = SCTPIPAddress(bytes: bytes)
            else { throw .malformed }
            addresses.append(address)
        }
        guard let localRandom = readBytes(&b), let hasPeerAuth: UInt8 = b.readInteger() else { throw .malformed }
        var peerAuth: AuthParameters?
        if hasPeerAuth == 1 {
            guard let random = readBytes(&b), let chunks = readBytes(&b), let count: UInt16 = b.readInteger()
            else { throw .malformed }
            var ids: [UInt16] = []
            for _ in 0..<count {
                guard let id: UInt16 = b.readInteger() else { throw .malformed }
                ids.append(id)
            }
            peerAuth = AuthParameters(random: random, chunks: chunks, hmacIdentifiers: ids)
        }
        let parameters = AssociationParameters(
            localTag: VerificationTag(localTag), peerTag: VerificationTag(peerTag), localInitialTSN: TSN(localTSN),
            peerInitialTSN: TSN(peerTSN), peerInitialReceiverWindow: rwnd, outboundStreams: os, inboundStreams: mis,
            features: NegotiatedFeatures(rawValue: features), localAuthRandom: localRandom, peerAuth: peerAuth)
        return StateCookie(
            createdAt: SCTPTime(nanoseconds: created), lifetime: SCTPDuration(nanoseconds: lifetime),
            parameters: parameters, localTieTag: VerificationTag(localTie), peerTieTag: VerificationTag(peerTie),
            peerSCTPPort: port, peerAddresses: addresses, owner: SCTPOwner(rawValue: owner))
    }

    /// A byte string with a 16-bit length in front.
    private static func writeBytes(_ bytes: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(truncatingIfNeeded: bytes.count))
        buffer.writeBytes(bytes.prefix(Int(UInt16.max)))
    }

    private static func readBytes(_ buffer: inout ByteBuffer) -> [UInt8]? {
        guard let length: UInt16 = buffer.readInteger() else { return nil }
        return buffer.readBytes(length: Int(length))
    }
}

/// Protocol extensions both ends announced support for in INIT and INIT-ACK.
struct NegotiatedFeatures: OptionSet, Hashable, Sendable {
    let rawValue: UInt32
    static let nrSack = NegotiatedFeatures(rawValue: 1 << 0)
    static let forwardTSN = NegotiatedFeatures(rawValue: 1 << 1)
    static let asconf = NegotiatedFeatures(rawValue: 1 << 2)
    static let auth = NegotiatedFeatures(rawValue: 1 << 3)
    static let reconfig = NegotiatedFeatures(rawValue: 1 << 4)
    static let idata = NegotiatedFeatures(rawValue: 1 << 5)
    /// RFC 9653: the peer accepts our packets with a zero checksum (it announced the method we use).
    static let zeroChecksum = NegotiatedFeatures(rawValue: 1 << 6)
}
