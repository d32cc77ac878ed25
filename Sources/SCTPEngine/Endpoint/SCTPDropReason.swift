/// Why an endpoint dropped an incoming packet or chunk (`SCTPEndpoint.droppedPackets`); the raw value is the text
/// logs and metrics show.
public enum SCTPDropReason: String, Sendable, CaseIterable, CustomStringConvertible {
    case asconfNotNegotiated = "ASCONF not negotiated"
    case asconfOutOfSequence = "ASCONF out of sequence"
    case authFailed = "AUTH failed"
    case badInitPacket = "bad INIT packet"
    case badVerificationTag = "bad verification tag"
    case cookieOfAnotherOwner = "cookie of another owner"
    case cookieTagMismatch = "cookie tag mismatch"
    case forwardTSNBeyondWindow = "FORWARD-TSN beyond the receive window"
    case forwardTSNNotNegotiated = "FORWARD-TSN not negotiated"
    case initWithZeroTag = "INIT with zero tag"
    case invalidCookie = "invalid cookie"
    case malformedChunk = "malformed chunk"
    case malformedCookieEcho = "malformed COOKIE-ECHO"
    case malformedPacket = "malformed packet"
    case malformedPathPolicy = "malformed Path Policy parameter"
    case noChunks = "no chunks"
    case outOfTheBlue = "out of the blue"
    case pathReceiveShareFull = "path's share of the receive buffer full"
    case receiveBufferFull = "receive buffer full"
    case staleCollisionCookie = "stale collision cookie"
    case tooManyGaps = "too many gaps in the TSN sequence"
    case unauthenticatedChunk = "unauthenticated chunk"
    case unexpectedAsconfAck = "unexpected ASCONF-ACK"
    case unmatchedCookie = "unmatched cookie"
    case unroutableWithoutPorts = "packet without ports its tag does not route"
    case wrongPort = "wrong SCTP port"

    public var description: String { rawValue }
}
