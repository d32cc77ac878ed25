import NIOCore

/// One endpoint's RANDOM, CHUNKS and HMAC-ALGO parameters (RFC 4895 §3), as sent in INIT or INIT-ACK, and the key
/// vector built from them (§6.1).
struct AuthParameters: Sendable, Hashable {
    /// RFC 4895 §3.1: RANDOM carries at least 32 random bytes.
    static let randomLength = 32

    var random: [UInt8]
    /// Chunk types the sender wants to receive only when authenticated.
    var chunks: [UInt8]
    /// HMAC identifiers in the sender's order of preference.
    var hmacIdentifiers: [UInt16]

    /// The three parameters for INIT or INIT-ACK.
    var parameters: [Parameter] {
        [.random(ByteBuffer(bytes: random)), .chunkList(chunks), .hmacAlgorithm(hmacIdentifiers)]
    }

    /// RFC 4895 §6.1: the parameters "include the parameter type, parameter length, and the parameter value, but
    /// padding is omitted", concatenated in the order RANDOM, CHUNKS, HMAC-ALGO.
    var keyVector: [UInt8] {
        var buffer = ByteBuffer()
        for parameter in parameters { parameter.encodeUnpadded(into: &buffer) }
        return Array(buffer.readableBytesView)
    }

    /// Collects the AUTH parameters of an INIT or INIT-ACK; nil unless all three are present (RFC 4895 §6.1 leaves
    /// AUTH unused when one is missing) and RANDOM is at least 32 bytes.
    init?(from parameters: [Parameter]) {
        var random: [UInt8]?
        var chunks: [UInt8]?
        var hmacs: [UInt16]?
        for parameter in parameters {
            switch parameter {
            case .random(let bytes): random = Array(bytes.readableBytesView)
            case .chunkList(let types): chunks = types
            case .hmacAlgorithm(let ids): hmacs = ids
            default: break
            }
        }
        guard let random, random.count >= Self.randomLength, let chunks, let hmacs else { return nil }
        self.init(random: random, chunks: chunks, hmacIdentifiers: hmacs)
    }

    init(random: [UInt8], chunks: [UInt8], hmacIdentifiers: [UInt16]) {
        self.random = random
        self.chunks = chunks
        self.hmacIdentifiers = hmacIdentifiers
    }

    /// The association shared key of RFC 4895 §6.1: the endpoint pair shared key, then "the numerically smaller
    /// key vector", then the larger; when the vectors are equal as numbers but differ in length, the shorter
    /// first.
    static func associationKey(sharedKey: [UInt8], local: [UInt8], peer: [UInt8]) -> [UInt8] {
        let (first, second) = isNumericallyBefore(local, peer) ? (local, peer) : (peer, local)
        return sharedKey + first + second
    }

    /// Whether `a` is smaller than `b` read as big-endian unsigned numbers; for equal numbers, whether `a` is
    /// shorter.
    static func isNumericallyBefore(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let x = a.drop(while: { $0 == 0 })
        let y = b.drop(while: { $0 == 0 })
        if x.count != y.count { return x.count < y.count }
        for (p, q) in zip(x, y) where p != q { return p < q }
        return a.count < b.count
    }
}
