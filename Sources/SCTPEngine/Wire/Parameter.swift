import NIOCore

/// One type-length-value parameter of an INIT, INIT ACK, ASCONF, ASCONF-ACK, RE-CONFIG or HEARTBEAT chunk
/// (RFC 9260 §3.2.1 and §3.3.2.1, RFC 3758, RFC 4820, RFC 4895, RFC 5061, RFC 6525, RFC 9653).
public enum Parameter: Hashable, Sendable {
    /// 1 (RFC 9260 §3.3.5): the sender's opaque heartbeat data.
    case heartbeatInfo(ByteBuffer)
    /// 5: an IPv4 address. The type on the wire follows the address's family, so build it with `address(_:)`.
    case ipv4Address(SCTPIPAddress)
    /// 6: an IPv6 address.
    case ipv6Address(SCTPIPAddress)
    /// 7: the state cookie of an INIT ACK.
    case stateCookie(ByteBuffer)
    /// 8: an unrecognized parameter of the INIT, quoted whole (header included).
    case unrecognizedParameter(ByteBuffer)
    /// 9: suggested cookie life-span increment in milliseconds.
    case cookiePreservative(UInt32)
    /// 11: a host name (deprecated by RFC 9260 but still parsed).
    case hostNameAddress(ByteBuffer)
    /// 12: the address types the sender supports (5, 6, 11).
    case supportedAddressTypes([UInt16])
    /// 13 (RFC 6525 §4.1)
    case outgoingSSNResetRequest(OutgoingSSNResetRequest)
    /// 14 (RFC 6525 §4.2)
    case incomingSSNResetRequest(IncomingSSNResetRequest)
    /// 15 (RFC 6525 §4.3)
    case ssnTSNResetRequest(SSNTSNResetRequest)
    /// 16 (RFC 6525 §4.4)
    case reconfigurationResponse(ReconfigurationResponse)
    /// 17 (RFC 6525 §4.5)
    case addOutgoingStreamsRequest(AddStreamsRequest)
    /// 18 (RFC 6525 §4.6)
    case addIncomingStreamsRequest(AddStreamsRequest)
    /// 0x8000 (RFC 9260 Appendix A)
    case ecnCapable
    /// 0x8001 (RFC 9653 §3): the alternate error detection method the sender accepts instead of CRC32c.
    case zeroChecksumAcceptable(UInt32)
    /// 0x8002 (RFC 4895 §3.1)
    case random(ByteBuffer)
    /// 0x8003 (RFC 4895 §3.2): chunk types that must be authenticated.
    case chunkList([UInt8])
    /// 0x8004 (RFC 4895 §3.3): HMAC identifiers in order of preference.
    case hmacAlgorithm([UInt16])
    /// 0x8005 (RFC 4820 §3): this many bytes of padding value.
    case padding(Int)
    /// 0x8008 (RFC 5061 §4.2.7): extension chunk types the sender supports.
    case supportedExtensions([UInt8])
    /// 0xC000 (RFC 3758 §3.1)
    case forwardTSNSupported
    /// 0xC001 (RFC 5061 §4.2.1)
    case addIPAddress(correlationID: UInt32, address: SCTPIPAddress)
    /// 0xC002 (RFC 5061 §4.2.2)
    case deleteIPAddress(correlationID: UInt32, address: SCTPIPAddress)
    /// 0xC003 (RFC 5061 §4.2.3)
    case errorCauseIndication(correlationID: UInt32, causes: [ErrorCause])
    /// 0xC004 (RFC 5061 §4.2.4)
    case setPrimaryAddress(correlationID: UInt32, address: SCTPIPAddress)
    /// 0xC005 (RFC 5061 §4.2.5)
    case successIndication(correlationID: UInt32)
    /// 0xC006 (RFC 5061 §4.2.6)
    case adaptationLayerIndication(UInt32)
    /// Any other type, with its value.
    case unknown(type: UInt16, value: ByteBuffer)

    /// The IPv4 or IPv6 address parameter for `ip`.
    public static func address(_ ip: SCTPIPAddress) -> Parameter {
        ip.isIPv4 ? .ipv4Address(ip) : .ipv6Address(ip)
    }

    /// The parameter type on the wire.
    public var type: UInt16 {
        switch self {
        case .heartbeatInfo: return 1
        case .ipv4Address(let ip), .ipv6Address(let ip): return ip.isIPv4 ? 5 : 6
        case .stateCookie: return 7
        case .unrecognizedParameter: return 8
        case .cookiePreservative: return 9
        case .hostNameAddress: return 11
        case .supportedAddressTypes: return 12
        case .outgoingSSNResetRequest: return 13
        case .incomingSSNResetRequest: return 14
        case .ssnTSNResetRequest: return 15
        case .reconfigurationResponse: return 16
        case .addOutgoingStreamsRequest: return 17
        case .addIncomingStreamsRequest: return 18
        case .ecnCapable: return 0x8000
        case .zeroChecksumAcceptable: return 0x8001
        case .random: return 0x8002
        case .chunkList: return 0x8003
        case .hmacAlgorithm: return 0x8004
        case .padding: return 0x8005
        case .supportedExtensions: return 0x8008
        case .forwardTSNSupported: return 0xC000
        case .addIPAddress: return 0xC001
        case .deleteIPAddress: return 0xC002
        case .errorCauseIndication: return 0xC003
        case .setPrimaryAddress: return 0xC004
        case .successIndication: return 0xC005
        case .adaptationLayerIndication: return 0xC006
        case .unknown(let type, _): return type
        }
    }

    /// What to do with this parameter if it is not understood (RFC 9260 §3.2.1).
    public var unrecognizedAction: UnrecognizedAction { UnrecognizedAction(parameterType: type) }

    // MARK: - Encoding

    /// The length of an address parameter TLV for `ip`.
    static func addressTLVLength(_ ip: SCTPIPAddress) -> Int { ip.isIPv4 ? 8 : 20 }

    static func writeAddressTLV(_ ip: SCTPIPAddress, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(ip.isIPv4 ? 5 : 6))
        buffer.writeInteger(UInt16(addressTLVLength(ip)))
        writeAddress(ip, into: &buffer)
    }

    static func writeAddress(_ ip: SCTPIPAddress, into buffer: inout ByteBuffer) {
        switch ip {
        case .v4(let a):
            buffer.writeInteger(a)
        case .v6(let hi, let lo):
            buffer.writeInteger(hi)
            buffer.writeInteger(lo)
        }
    }

    /// The value length, without the 4-byte header and without padding.
    public var valueLength: Int {
        switch self {
        case .heartbeatInfo(let b), .stateCookie(let b), .unrecognizedParameter(let b), .hostNameAddress(let b),
            .random(let b), .unknown(_, let b):
            return b.readableBytes
        case .ipv4Address(let ip), .ipv6Address(let ip): return ip.isIPv4 ? 4 : 16
        case .cookiePreservative, .zeroChecksumAcceptable, .adaptationLayerIndication, .successIndication: return 4
        case .supportedAddressTypes(let types): return 2 * types.count
        case .outgoingSSNResetRequest(let r): return 12 + 2 * r.streams.count
        case .incomingSSNResetRequest(let r): return 4 + 2 * r.streams.count
        case .ssnTSNResetRequest: return 4
        case .reconfigurationResponse(let r): return r.nextTSNs == nil ? 8 : 16
        case .addOutgoingStreamsRequest, .addIncomingStreamsRequest: return 8
        case .ecnCapable, .forwardTSNSupported: return 0
        case .chunkList(let types), .supportedExtensions(let types): return types.count
        case .hmacAlgorithm(let ids): return 2 * ids.count
        case .padding(let length): return max(0, length)
        case .addIPAddress(_, let ip), .deleteIPAddress(_, let ip), .setPrimaryAddress(_, let ip):
            return 4 + Self.addressTLVLength(ip)
        case .errorCauseIndication(_, let causes): return 4 + ErrorCause.listLength(causes)
        }
    }

    /// The encoded length with padding.
    public var encodedLength: Int { paddedLength(4 + valueLength) }

    /// Writes header and value without trailing padding.
    func encodeUnpadded(into buffer: inout ByteBuffer) {
        buffer.writeInteger(type)
        buffer.writeInteger(UInt16(4 + valueLength))
        switch self {
        case .heartbeatInfo(let b), .stateCookie(let b), .unrecognizedParameter(let b), .hostNameAddress(let b),
            .random(let b), .unknown(_, let b):
            buffer.writeImmutableBuffer(b)
        case .ipv4Address(let ip), .ipv6Address(let ip):
            Self.writeAddress(ip, into: &buffer)
        case .cookiePreservative(let v), .zeroChecksumAcceptable(let v), .adaptationLayerIndication(let v),
            .successIndication(let v):
            buffer.writeInteger(v)
        case .supportedAddressTypes(let types):
            for t in types { buffer.writeInteger(t) }
        case .outgoingSSNResetRequest(let r):
            buffer.writeInteger(r.requestSequence.rawValue)
            buffer.writeInteger(r.responseSequence.rawValue)
            buffer.writeInteger(r.senderLastAssignedTSN.rawValue)
            for s in r.streams { buffer.writeInteger(s.rawValue) }
        case .incomingSSNResetRequest(let r):
            buffer.writeInteger(r.requestSequence.rawValue)
            for s in r.streams { buffer.writeInteger(s.rawValue) }
        case .ssnTSNResetRequest(let r):
            buffer.writeInteger(r.requestSequence.rawValue)
        case .reconfigurationResponse(let r):
            buffer.writeInteger(r.responseSequence.rawValue)
            buffer.writeInteger(r.result.rawValue)
            if let next = r.nextTSNs {
                buffer.writeInteger(next.sender.rawValue)
                buffer.writeInteger(next.receiver.rawValue)
            }
        case .addOutgoingStreamsRequest(let r), .addIncomingStreamsRequest(let r):
            buffer.writeInteger(r.requestSequence.rawValue)
            buffer.writeInteger(r.newStreams)
            buffer.writeInteger(UInt16(0))
        case .ecnCapable, .forwardTSNSupported:
            break
        case .chunkList(let types), .supportedExtensions(let types):
            buffer.writeBytes(types)
        case .hmacAlgorithm(let ids):
            for id in ids { buffer.writeInteger(id) }
        case .padding(let length):
            if length > 0 { buffer.writeRepeatingByte(0, count: length) }
        case .addIPAddress(let id, let ip), .deleteIPAddress(let id, let ip), .setPrimaryAddress(let id, let ip):
            buffer.writeInteger(id)
            Self.writeAddressTLV(ip, into: &buffer)
        case .errorCauseIndication(let id, let causes):
            buffer.writeInteger(id)
            ErrorCause.encodeList(causes, into: &buffer)
        }
    }

    /// Writes the parameter with its padding.
    public func encode(into buffer: inout ByteBuffer) {
        encodeUnpadded(into: &buffer)
        buffer.writePadding(after: 4 + valueLength)
    }

    /// The length of a parameter list as it goes on the wire: all padded but the last, whose padding the enclosing
    /// chunk supplies (RFC 9260 §3.2).
    static func listLength(_ parameters: [Parameter]) -> Int {
        guard let last = parameters.last else { return 0 }
        return parameters.dropLast().reduce(0) { $0 + $1.encodedLength } + 4 + last.valueLength
    }

    /// Writes a parameter list, padding all but the last.
    static func encodeList(_ parameters: [Parameter], into buffer: inout ByteBuffer) {
        for (index, parameter) in parameters.enumerated() {
            if index == parameters.count - 1 {
                parameter.encodeUnpadded(into: &buffer)
            } else {
                parameter.encode(into: &buffer)
            }
        }
    }

    // MARK: - Decoding

    /// Decodes the value of a parameter of type `type`.
    public init(type: UInt16, value: ByteBuffer) throws(WireError) {
        var reader = WireReader(value, truncated: .malformedParameter(type: type, reason: "value too short"))
        let length = value.readableBytes
        func exactly(_ expected: Int) throws(WireError) {
            guard length == expected else {
                throw .malformedParameter(type: type, reason: "value is \(length) bytes, expected \(expected)")
            }
        }
        func even() throws(WireError) {
            guard length % 2 == 0 else { throw .malformedParameter(type: type, reason: "odd value length \(length)") }
        }
        switch type {
        case 1: self = .heartbeatInfo(reader.rest())
        case 5:
            // RFC 9260 §3.3.2.1: "IPv4 Address: 32 bits"
            try exactly(4)
            self = .ipv4Address(.v4(try reader.u32()))
        case 6:
            try exactly(16)
            self = .ipv6Address(try Self.readAddressBytes(&reader, count: 16))
        case 7: self = .stateCookie(reader.rest())
        case 8: self = .unrecognizedParameter(reader.rest())
        case 9:
            try exactly(4)
            self = .cookiePreservative(try reader.u32())
        case 11: self = .hostNameAddress(reader.rest())
        case 12:
            try even()
            var types: [UInt16] = []
            types.reserveCapacity(length / 2)
            while reader.remaining > 0 { types.append(try reader.u16()) }
            self = .supportedAddressTypes(types)
        case 13:
            let request = ReconfigRequestSequence(try reader.u32())
            let response = ReconfigRequestSequence(try reader.u32())
            let lastTSN = TSN(try reader.u32())
            self = .outgoingSSNResetRequest(
                OutgoingSSNResetRequest(
                    requestSequence: request, responseSequence: response,
                    senderLastAssignedTSN: lastTSN, streams: try Self.readStreams(&reader, type: type)))
        case 14:
            let request = ReconfigRequestSequence(try reader.u32())
            self = .incomingSSNResetRequest(
                IncomingSSNResetRequest(requestSequence: request, streams: try Self.readStreams(&reader, type: type)))
        case 15:
            try exactly(4)
            self = .ssnTSNResetRequest(SSNTSNResetRequest(requestSequence: ReconfigRequestSequence(try reader.u32())))
        case 16:
            // RFC 6525 §4.4: the two next-TSN fields are optional, but come together.
            guard length == 8 || length == 16 else {
                throw .malformedParameter(type: type, reason: "value is \(length) bytes, expected 8 or 16")
            }
            let sequence = ReconfigRequestSequence(try reader.u32())
            let result = ReconfigurationResponse.Result(rawValue: try reader.u32())
            var next: (sender: TSN, receiver: TSN)?
            if length == 16 {
                let sender = TSN(try reader.u32())
                next = (sender, TSN(try reader.u32()))
            }
            self = .reconfigurationResponse(
                ReconfigurationResponse(responseSequence: sequence, result: result, nextTSNs: next))
        case 17, 18:
            try exactly(8)
            let request = AddStreamsRequest(
                requestSequence: ReconfigRequestSequence(try reader.u32()), newStreams: try reader.u16())
            self = type == 17 ? .addOutgoingStreamsRequest(request) : .addIncomingStreamsRequest(request)
        case 0x8000: self = .ecnCapable
        case 0x8001:
            try exactly(4)
            self = .zeroChecksumAcceptable(try reader.u32())
        case 0x8002: self = .random(reader.rest())
        case 0x8003: self = .chunkList(Array(reader.rest().readableBytesView))
        case 0x8004:
            try even()
            var ids: [UInt16] = []
            ids.reserveCapacity(length / 2)
            while reader.remaining > 0 { ids.append(try reader.u16()) }
            self = .hmacAlgorithm(ids)
        case 0x8005: self = .padding(length)
        case 0x8008: self = .supportedExtensions(Array(reader.rest().readableBytesView))
        case 0xC000: self = .forwardTSNSupported
        case 0xC001, 0xC002, 0xC004:
            let id = try reader.u32()
            let address = try Self.readAddressTLV(&reader, type: type)
            try reader.expectEnd(.malformedParameter(type: type, reason: "bytes after the address"))
            switch type {
            case 0xC001: self = .addIPAddress(correlationID: id, address: address)
            case 0xC002: self = .deleteIPAddress(correlationID: id, address: address)
            default: self = .setPrimaryAddress(correlationID: id, address: address)
            }
        case 0xC003:
            let id = try reader.u32()
            self = .errorCauseIndication(correlationID: id, causes: try ErrorCause.decodeList(reader.rest()))
        case 0xC005:
            try exactly(4)
            self = .successIndication(correlationID: try reader.u32())
        case 0xC006:
            try exactly(4)
            self = .adaptationLayerIndication(try reader.u32())
        default:
            self = .unknown(type: type, value: reader.rest())
        }
    }

    private static func readAddressBytes(_ reader: inout WireReader, count: Int) throws(WireError) -> SCTPIPAddress {
        let slice = try reader.slice(count)
        guard let ip = SCTPIPAddress(bytes: slice.readableBytesView) else { throw reader.truncated }
        return ip
    }

    private static func readStreams(_ reader: inout WireReader, type: UInt16) throws(WireError) -> [StreamID] {
        guard reader.remaining % 2 == 0 else {
            throw .malformedParameter(type: type, reason: "odd stream list length \(reader.remaining)")
        }
        var streams: [StreamID] = []
        streams.reserveCapacity(reader.remaining / 2)
        while reader.remaining > 0 { streams.append(StreamID(try reader.u16())) }
        return streams
    }

    /// Reads an IPv4 or IPv6 address parameter (whole TLV), as ASCONF parameters embed them (RFC 5061 §4.2.1).
    static func readAddressTLV(_ reader: inout WireReader, type: UInt16) throws(WireError) -> SCTPIPAddress {
        let addressType = try reader.u16()
        let addressLength = try reader.u16()
        switch (addressType, addressLength) {
        case (5, 8): return try readAddressBytes(&reader, count: 4)
        case (6, 20): return try readAddressBytes(&reader, count: 16)
        default:
            throw .malformedParameter(type: type, reason: "bad address parameter \(addressType)/\(addressLength)")
        }
    }

    /// Decodes a sequence of parameters filling `value`.
    public static func decodeList(_ value: ByteBuffer) throws(WireError) -> [Parameter] {
        var parameters: [Parameter] = []
        for item in try splitTLVs(value, kind: .parameter) {
            parameters.append(try Parameter(type: item.type, value: item.value))
        }
        return parameters
    }

    /// Decodes one parameter TLV that fills `buffer` (padding after it allowed).
    public static func decode(_ buffer: ByteBuffer) throws(WireError) -> Parameter {
        let items = try splitTLVs(buffer, kind: .parameter)
        guard items.count == 1, let item = items.first else {
            throw .malformedParameter(
                type: items.first?.type ?? 0, reason: "expected one parameter, found \(items.count)")
        }
        return try Parameter(type: item.type, value: item.value)
    }
}
