import NIOCore
import SCTPEngine

/// One message of the UDP relay (docs/PROTOCOL.md, "UDP"): a datagram of a client's flow or the end of a flow, as a
/// pure value type. Both travel on stream 0 beside the control messages, under PPIDs of their own.
public enum UDPMessage: Equatable, Sendable {
    /// A datagram of flow `flow`. Client → server: `peer` is its destination; server → client: its source.
    case datagram(flow: UInt32, peer: StreamTarget, payload: ByteBuffer)
    /// The sender forgot flow `flow` (idle, refused, or the client's UDP ASSOCIATE ended); the receiver forgets it
    /// too. A later datagram of that flow id starts a new flow on the server; the client never reuses an id.
    case close(flow: UInt32, reason: UDPCloseReason)

    /// UDP-DATAGRAM: sent unordered with timed reliability (a lost datagram is never retransmitted late).
    public static let datagramPPID = PPID(AggMessageKind.ppidBase | 0x20)
    /// UDP-CLOSE: sent ordered and reliably.
    public static let closePPID = PPID(AggMessageKind.ppidBase | 0x21)
    /// The largest datagram payload: what a UDP datagram over IPv4 can carry.
    public static let maxPayload = 65_507

    /// Whether `ppid` names a UDP relay message.
    public static func isUDP(_ ppid: PPID) -> Bool {
        ppid == datagramPPID || ppid == closePPID
    }

    public var ppid: PPID {
        switch self {
        case .datagram: return Self.datagramPPID
        case .close: return Self.closePPID
        }
    }

    // MARK: - Encoding

    /// The SCTP payload: `u32 flow | u8 type | address | u16 port | payload` for a datagram, `u32 flow | u8 reason`
    /// for a close.
    public func encode(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        switch self {
        case .datagram(let flow, let peer, var payload):
            var buffer = allocator.buffer(capacity: 4 + 19 + payload.readableBytes)
            buffer.writeInteger(flow)
            peer.encode(into: &buffer)
            buffer.writeBuffer(&payload)
            return buffer
        case .close(let flow, let reason):
            var buffer = allocator.buffer(capacity: 5)
            buffer.writeInteger(flow)
            buffer.writeInteger(reason.rawValue)
            return buffer
        }
    }

    // MARK: - Decoding

    /// Decodes a UDP relay message; `unordered` is how it arrived (UDP-DATAGRAM must be unordered, UDP-CLOSE
    /// ordered), `stream` where (stream 0 only).
    public static func decode(
        ppid: PPID, payload: ByteBuffer, stream: StreamID = StreamID(0), unordered: Bool
    ) throws(UDPDecodingError) -> UDPMessage {
        guard stream.rawValue == 0 else { throw .wrongStream(stream) }
        var buffer = payload
        guard let flow = buffer.readInteger(as: UInt32.self) else { throw .truncated }
        switch ppid {
        case datagramPPID:
            guard unordered else { throw .orderedDatagram }
            let peer = try decodeTarget(&buffer)
            guard buffer.readableBytes <= maxPayload else { throw .payloadTooLarge(buffer.readableBytes) }
            return .datagram(flow: flow, peer: peer, payload: buffer)
        case closePPID:
            guard !unordered else { throw .unorderedClose }
            guard let raw = buffer.readInteger(as: UInt8.self) else { throw .truncated }
            guard let reason = UDPCloseReason(rawValue: raw) else { throw .unknownCloseReason(raw) }
            guard buffer.readableBytes == 0 else { throw .trailingBytes(buffer.readableBytes) }
            return .close(flow: flow, reason: reason)
        default:
            throw .unknownPPID(ppid.rawValue)
        }
    }

    /// Decodes a UDP relay message as the association delivered it.
    public static func decode(_ message: SCTPMessage) throws(UDPDecodingError) -> UDPMessage {
        try decode(ppid: message.ppid, payload: message.payload, stream: message.stream, unordered: message.isUnordered)
    }

    private static func decodeTarget(_ buffer: inout ByteBuffer) throws(UDPDecodingError) -> StreamTarget {
        guard let type = buffer.readInteger(as: UInt8.self) else { throw .truncated }
        let host: StreamTarget.Host
        switch type {
        case 1:
            guard let address = buffer.readInteger(as: UInt32.self) else { throw .truncated }
            host = .ip(.v4(address))
        case 4:
            guard let bytes = buffer.readBytes(length: 16), let address = SCTPIPAddress(bytes: bytes) else {
                throw .truncated
            }
            host = .ip(address)
        case 3:
            guard let length = buffer.readInteger(as: UInt8.self) else { throw .truncated }
            guard length > 0 else { throw .invalidDomain }
            guard let bytes = buffer.readBytes(length: Int(length)) else { throw .truncated }
            guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw .invalidDomain }
            host = .domain(String(decoding: bytes, as: UTF8.self))
        default:
            throw .unknownAddressType(type)
        }
        guard let port = buffer.readInteger(as: UInt16.self) else { throw .truncated }
        guard port != 0 else { throw .zeroPort }
        return StreamTarget(host: host, port: port)
    }
}

/// Why a UDP flow ended, carried in UDP-CLOSE.
public enum UDPCloseReason: UInt8, Sendable, CustomStringConvertible {
    /// The client's UDP ASSOCIATE ended, or the flow was idle for the idle timeout.
    case closed = 0
    /// The egress policy refuses the destination.
    case notAllowed = 1
    /// The destination name did not resolve (to an allowed address).
    case dnsFailure = 2
    /// The key holds its limit of flows.
    case tooManyFlows = 3
    /// The server could not open a socket for the flow.
    case generalFailure = 4

    public var description: String {
        switch self {
        case .closed: return "closed"
        case .notAllowed: return "not allowed"
        case .dnsFailure: return "DNS failure"
        case .tooManyFlows: return "too many flows"
        case .generalFailure: return "general failure"
        }
    }
}

/// Why a UDP relay message was rejected. Decoding never traps.
public enum UDPDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownPPID(UInt32)
    case wrongStream(StreamID)
    case truncated
    case trailingBytes(Int)
    case unknownAddressType(UInt8)
    case invalidDomain
    case zeroPort
    case payloadTooLarge(Int)
    case unknownCloseReason(UInt8)
    /// A UDP-DATAGRAM sent ordered: it would wait behind lost ones.
    case orderedDatagram
    /// A UDP-CLOSE sent unordered: it could overtake the flow's datagrams.
    case unorderedClose

    public var description: String {
        switch self {
        case .unknownPPID(let ppid): return "unknown PPID 0x\(String(ppid, radix: 16))"
        case .wrongStream(let stream): return "UDP message on stream \(stream)"
        case .truncated: return "UDP message truncated"
        case .trailingBytes(let count): return "UDP-CLOSE has \(count) trailing bytes"
        case .unknownAddressType(let type): return "unknown address type \(type)"
        case .invalidDomain: return "empty domain name or a byte outside printable ASCII"
        case .zeroPort: return "port 0"
        case .payloadTooLarge(let size): return "datagram of \(size) bytes exceeds \(UDPMessage.maxPayload)"
        case .unknownCloseReason(let reason): return "unknown UDP-CLOSE reason \(reason)"
        case .orderedDatagram: return "UDP-DATAGRAM sent ordered"
        case .unorderedClose: return "UDP-CLOSE sent unordered"
        }
    }
}
