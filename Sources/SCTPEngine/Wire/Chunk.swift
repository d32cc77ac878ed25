import NIOCore

/// A decoded chunk: one case per chunk type the engine knows, and `.unknown` for the rest.
public enum Chunk: Hashable, Sendable {
    case data(DataChunk)
    case initiation(InitChunk)
    case initiationAck(InitAckChunk)
    case sack(SackChunk)
    case heartbeat(HeartbeatChunk)
    case heartbeatAck(HeartbeatAckChunk)
    case abort(AbortChunk)
    case shutdown(ShutdownChunk)
    case shutdownAck(ShutdownAckChunk)
    case error(ErrorChunk)
    case cookieEcho(CookieEchoChunk)
    case cookieAck(CookieAckChunk)
    case ecne(ECNEChunk)
    case cwr(CWRChunk)
    case shutdownComplete(ShutdownCompleteChunk)
    case auth(AuthChunk)
    case nrSack(NRSackChunk)
    case idata(IDataChunk)
    case asconfAck(ASCONFAckChunk)
    case reconfig(ReConfigChunk)
    case pad(PadChunk)
    case forwardTSN(ForwardTSNChunk)
    case asconf(ASCONFChunk)
    case iForwardTSN(IForwardTSNChunk)
    case unknown(UnknownChunk)

    /// The decoded body as its `ChunkBody`; nil for `.unknown`.
    public var body: (any ChunkBody)? {
        switch self {
        case .data(let c): return c
        case .initiation(let c): return c
        case .initiationAck(let c): return c
        case .sack(let c): return c
        case .heartbeat(let c): return c
        case .heartbeatAck(let c): return c
        case .abort(let c): return c
        case .shutdown(let c): return c
        case .shutdownAck(let c): return c
        case .error(let c): return c
        case .cookieEcho(let c): return c
        case .cookieAck(let c): return c
        case .ecne(let c): return c
        case .cwr(let c): return c
        case .shutdownComplete(let c): return c
        case .auth(let c): return c
        case .nrSack(let c): return c
        case .idata(let c): return c
        case .asconfAck(let c): return c
        case .reconfig(let c): return c
        case .pad(let c): return c
        case .forwardTSN(let c): return c
        case .asconf(let c): return c
        case .iForwardTSN(let c): return c
        case .unknown: return nil
        }
    }

    /// The chunk type on the wire.
    public var type: UInt8 {
        switch self {
        case .unknown(let c): return c.type
        // The hot paths avoid the existential.
        case .data: return DataChunk.type
        case .idata: return IDataChunk.type
        case .sack: return SackChunk.type
        case .nrSack: return NRSackChunk.type
        default: return body.map { Swift.type(of: $0).type } ?? 0
        }
    }

    /// The chunk flags byte.
    public var flags: UInt8 {
        switch self {
        case .unknown(let c): return c.flags
        case .data(let c): return c.flags
        default: return body?.flags ?? 0
        }
    }

    /// Bytes the chunk occupies in a packet: header, value and padding to 4 bytes, so the association can bundle up
    /// to the MTU without encoding twice.
    public var encodedLength: Int {
        switch self {
        case .data(let c): return c.encodedLength
        case .idata(let c): return c.encodedLength
        case .sack(let c): return c.encodedLength
        case .unknown(let c): return c.encodedLength
        default: return body?.encodedLength ?? 0
        }
    }

    /// Writes header, value and zero padding to a 4-byte boundary (RFC 9260 §3.2).
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        // The hot paths avoid the existential.
        case .data(let c): c.encodeChunk(into: &buffer)
        case .idata(let c): c.encode(into: &buffer)
        case .sack(let c): c.encode(into: &buffer)
        case .nrSack(let c): c.encode(into: &buffer)
        case .unknown(let c): c.encode(into: &buffer)
        default: body?.encode(into: &buffer)
        }
    }

    /// Decodes the body of a chunk that `RawPacket.parse` has already framed.
    public init(decoding raw: RawChunk) throws(WireError) {
        switch raw.type {
        case DataChunk.type: self = .data(try DataChunk(flags: raw.flags, value: raw.value))
        case InitChunk.type: self = .initiation(try InitChunk(flags: raw.flags, value: raw.value))
        case InitAckChunk.type: self = .initiationAck(try InitAckChunk(flags: raw.flags, value: raw.value))
        case SackChunk.type: self = .sack(try SackChunk(flags: raw.flags, value: raw.value))
        case HeartbeatChunk.type: self = .heartbeat(try HeartbeatChunk(flags: raw.flags, value: raw.value))
        case HeartbeatAckChunk.type: self = .heartbeatAck(try HeartbeatAckChunk(flags: raw.flags, value: raw.value))
        case AbortChunk.type: self = .abort(try AbortChunk(flags: raw.flags, value: raw.value))
        case ShutdownChunk.type: self = .shutdown(try ShutdownChunk(flags: raw.flags, value: raw.value))
        case ShutdownAckChunk.type: self = .shutdownAck(try ShutdownAckChunk(flags: raw.flags, value: raw.value))
        case ErrorChunk.type: self = .error(try ErrorChunk(flags: raw.flags, value: raw.value))
        case CookieEchoChunk.type: self = .cookieEcho(try CookieEchoChunk(flags: raw.flags, value: raw.value))
        case CookieAckChunk.type: self = .cookieAck(try CookieAckChunk(flags: raw.flags, value: raw.value))
        case ECNEChunk.type: self = .ecne(try ECNEChunk(flags: raw.flags, value: raw.value))
        case CWRChunk.type: self = .cwr(try CWRChunk(flags: raw.flags, value: raw.value))
        case ShutdownCompleteChunk.type:
            self = .shutdownComplete(try ShutdownCompleteChunk(flags: raw.flags, value: raw.value))
        case AuthChunk.type: self = .auth(try AuthChunk(flags: raw.flags, value: raw.value))
        case NRSackChunk.type: self = .nrSack(try NRSackChunk(flags: raw.flags, value: raw.value))
        case IDataChunk.type: self = .idata(try IDataChunk(flags: raw.flags, value: raw.value))
        case ASCONFAckChunk.type: self = .asconfAck(try ASCONFAckChunk(flags: raw.flags, value: raw.value))
        case ReConfigChunk.type: self = .reconfig(try ReConfigChunk(flags: raw.flags, value: raw.value))
        case PadChunk.type: self = .pad(try PadChunk(flags: raw.flags, value: raw.value))
        case ForwardTSNChunk.type: self = .forwardTSN(try ForwardTSNChunk(flags: raw.flags, value: raw.value))
        case ASCONFChunk.type: self = .asconf(try ASCONFChunk(flags: raw.flags, value: raw.value))
        case IForwardTSNChunk.type: self = .iForwardTSN(try IForwardTSNChunk(flags: raw.flags, value: raw.value))
        default: self = .unknown(UnknownChunk(type: raw.type, flags: raw.flags, value: raw.value))
        }
    }
}
