import NIOCore

/// One error cause of an ABORT or ERROR chunk or of an Error Cause Indication parameter (RFC 9260 §3.3.10,
/// RFC 5061 §5.1, RFC 4895 §4.1, RFC 6951 §5.6). Causes that quote a chunk or parameter keep the quoted bytes.
public enum ErrorCause: Hashable, Sendable {
    /// 1: a DATA chunk named a stream that does not exist.
    case invalidStreamIdentifier(StreamID)
    /// 2: the INIT or INIT ACK lacked mandatory parameters of these types.
    case missingMandatoryParameter([UInt16])
    /// 3: a cookie arrived this many microseconds after its lifetime ended.
    case staleCookie(measureOfStaleness: UInt32)
    /// 4
    case outOfResource
    /// 5: the address parameter (whole TLV) that could not be resolved.
    case unresolvableAddress(ByteBuffer)
    /// 6: the unrecognized chunk, header included.
    case unrecognizedChunkType(ByteBuffer)
    /// 7
    case invalidMandatoryParameter
    /// 8: the unrecognized parameters, whole TLVs.
    case unrecognizedParameters(ByteBuffer)
    /// 9: a DATA chunk with no user data.
    case noUserData(TSN)
    /// 10
    case cookieReceivedWhileShuttingDown
    /// 11: the new addresses (whole address TLVs) of a restarting peer.
    case restartWithNewAddresses(ByteBuffer)
    /// 12: the upper layer's reason.
    case userInitiatedAbort(ByteBuffer)
    /// 13: free-form information about the violation.
    case protocolViolation(ByteBuffer)
    /// 14 (RFC 6951 §5.6): a restart arrived from another UDP encapsulation port.
    case restartWithNewEncapsulationPort(currentPort: UInt16, newPort: UInt16)
    /// 0x00A0 (RFC 5061): the ASCONF request (whole TLV) would have deleted the last address.
    case deleteLastRemainingIPAddress(ByteBuffer)
    /// 0x00A1 (RFC 5061): the ASCONF request (whole TLV) was refused for lack of resources.
    case operationRefusedResourceShortage(ByteBuffer)
    /// 0x00A2 (RFC 5061): the ASCONF request (whole TLV) would have deleted the packet's source address.
    case deleteSourceIPAddress(ByteBuffer)
    /// 0x00A3 (RFC 5061)
    case illegalASCONFAck
    /// 0x00A4 (RFC 5061): the ASCONF request (whole TLV) was refused for lack of authorization.
    case requestRefusedNoAuthorization(ByteBuffer)
    /// 0x0105 (RFC 4895 §4.1): the peer asked for an HMAC this endpoint does not support.
    case unsupportedHMACIdentifier(UInt16)
    /// Any other cause code, with its value.
    case unknown(code: UInt16, value: ByteBuffer)

    /// The cause code on the wire.
    public var code: UInt16 {
        switch self {
        case .invalidStreamIdentifier: return 1
        case .missingMandatoryParameter: return 2
        case .staleCookie: return 3
        case .outOfResource: return 4
        case .unresolvableAddress: return 5
        case .unrecognizedChunkType: return 6
        case .invalidMandatoryParameter: return 7
        case .unrecognizedParameters: return 8
        case .noUserData: return 9
        case .cookieReceivedWhileShuttingDown: return 10
        case .restartWithNewAddresses: return 11
        case .userInitiatedAbort: return 12
        case .protocolViolation: return 13
        case .restartWithNewEncapsulationPort: return 14
        case .deleteLastRemainingIPAddress: return 0x00A0
        case .operationRefusedResourceShortage: return 0x00A1
        case .deleteSourceIPAddress: return 0x00A2
        case .illegalASCONFAck: return 0x00A3
        case .requestRefusedNoAuthorization: return 0x00A4
        case .unsupportedHMACIdentifier: return 0x0105
        case .unknown(let code, _): return code
        }
    }

    // MARK: - Encoding

    /// The value length, without the 4-byte cause header and without padding.
    var valueLength: Int {
        switch self {
        case .invalidStreamIdentifier: return 4
        case .missingMandatoryParameter(let types): return 4 + 2 * types.count
        case .staleCookie: return 4
        case .outOfResource, .invalidMandatoryParameter, .cookieReceivedWhileShuttingDown, .illegalASCONFAck: return 0
        case .unresolvableAddress(let b), .unrecognizedChunkType(let b), .unrecognizedParameters(let b),
            .restartWithNewAddresses(let b), .userInitiatedAbort(let b), .protocolViolation(let b),
            .deleteLastRemainingIPAddress(let b), .operationRefusedResourceShortage(let b),
            .deleteSourceIPAddress(let b), .requestRefusedNoAuthorization(let b), .unknown(_, let b):
            return b.readableBytes
        case .noUserData: return 4
        case .restartWithNewEncapsulationPort: return 4
        case .unsupportedHMACIdentifier: return 2
        }
    }

    /// The encoded length with padding.
    public var encodedLength: Int { paddedLength(4 + valueLength) }

    /// Writes the cause header and value, without trailing padding.
    func encodeUnpadded(into buffer: inout ByteBuffer) {
        buffer.writeInteger(code)
        buffer.writeInteger(UInt16(4 + valueLength))
        switch self {
        case .invalidStreamIdentifier(let stream):
            buffer.writeInteger(stream.rawValue)
            buffer.writeInteger(UInt16(0))
        case .missingMandatoryParameter(let types):
            buffer.writeInteger(UInt32(types.count))
            for type in types { buffer.writeInteger(type) }
        case .staleCookie(let staleness):
            buffer.writeInteger(staleness)
        case .outOfResource, .invalidMandatoryParameter, .cookieReceivedWhileShuttingDown, .illegalASCONFAck:
            break
        case .unresolvableAddress(let b), .unrecognizedChunkType(let b), .unrecognizedParameters(let b),
            .restartWithNewAddresses(let b), .userInitiatedAbort(let b), .protocolViolation(let b),
            .deleteLastRemainingIPAddress(let b), .operationRefusedResourceShortage(let b),
            .deleteSourceIPAddress(let b), .requestRefusedNoAuthorization(let b), .unknown(_, let b):
            buffer.writeImmutableBuffer(b)
        case .noUserData(let tsn):
            buffer.writeInteger(tsn.rawValue)
        case .restartWithNewEncapsulationPort(let current, let new):
            buffer.writeInteger(current)
            buffer.writeInteger(new)
        case .unsupportedHMACIdentifier(let id):
            buffer.writeInteger(id)
        }
    }

    /// Writes the cause with its padding.
    public func encode(into buffer: inout ByteBuffer) {
        encodeUnpadded(into: &buffer)
        buffer.writePadding(after: 4 + valueLength)
    }

    /// The length of a list of causes as it goes on the wire: every cause padded except the last, whose padding
    /// the enclosing chunk or parameter supplies (RFC 9260 §3.2).
    static func listLength(_ causes: [ErrorCause]) -> Int {
        guard let last = causes.last else { return 0 }
        return causes.dropLast().reduce(0) { $0 + $1.encodedLength } + 4 + last.valueLength
    }

    /// Writes a list of causes, padding all but the last.
    static func encodeList(_ causes: [ErrorCause], into buffer: inout ByteBuffer) {
        for (index, cause) in causes.enumerated() {
            if index == causes.count - 1 {
                cause.encodeUnpadded(into: &buffer)
            } else {
                cause.encode(into: &buffer)
            }
        }
    }

    // MARK: - Decoding

    /// Decodes the value of a cause with code `code`.
    public init(code: UInt16, value: ByteBuffer) throws(WireError) {
        var reader = WireReader(value, truncated: .malformedErrorCause(code: code, reason: "value too short"))
        switch code {
        case 1:
            self = .invalidStreamIdentifier(StreamID(try reader.u16()))
        case 2:
            let count = try reader.u32()
            // RFC 9260 §3.3.10.2: the list holds exactly "Number of missing params" types.
            guard reader.remaining == 2 * Int(count) else {
                throw .malformedErrorCause(
                    code: code, reason: "\(count) missing parameters in \(reader.remaining) bytes")
            }
            var types: [UInt16] = []
            types.reserveCapacity(Int(count))
            for _ in 0..<count { types.append(try reader.u16()) }
            self = .missingMandatoryParameter(types)
        case 3:
            self = .staleCookie(measureOfStaleness: try reader.u32())
        case 4: self = .outOfResource
        case 5: self = .unresolvableAddress(reader.rest())
        case 6: self = .unrecognizedChunkType(reader.rest())
        case 7: self = .invalidMandatoryParameter
        case 8: self = .unrecognizedParameters(reader.rest())
        case 9: self = .noUserData(TSN(try reader.u32()))
        case 10: self = .cookieReceivedWhileShuttingDown
        case 11: self = .restartWithNewAddresses(reader.rest())
        case 12: self = .userInitiatedAbort(reader.rest())
        case 13: self = .protocolViolation(reader.rest())
        case 14:
            let current = try reader.u16()
            self = .restartWithNewEncapsulationPort(currentPort: current, newPort: try reader.u16())
        case 0x00A0: self = .deleteLastRemainingIPAddress(reader.rest())
        case 0x00A1: self = .operationRefusedResourceShortage(reader.rest())
        case 0x00A2: self = .deleteSourceIPAddress(reader.rest())
        case 0x00A3: self = .illegalASCONFAck
        case 0x00A4: self = .requestRefusedNoAuthorization(reader.rest())
        case 0x0105: self = .unsupportedHMACIdentifier(try reader.u16())
        default: self = .unknown(code: code, value: reader.rest())
        }
    }

    /// Decodes a sequence of causes filling `value`.
    static func decodeList(_ value: ByteBuffer) throws(WireError) -> [ErrorCause] {
        var causes: [ErrorCause] = []
        for item in try splitTLVs(value, kind: .errorCause) {
            causes.append(try ErrorCause(code: item.type, value: item.value))
        }
        return causes
    }
}
