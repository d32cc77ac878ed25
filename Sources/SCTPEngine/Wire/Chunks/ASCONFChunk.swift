import NIOCore

/// ASCONF (RFC 5061 §4.1.1, type 0xC1): asks the peer to add or delete addresses or change the primary.
public struct ASCONFChunk: ChunkBody {
    public static let type: UInt8 = 0xC1

    public var serial: ASCONFSerial
    /// An IPv4 or IPv6 address parameter naming the association when the packet's source cannot.
    public var addressParameter: Parameter
    /// The ASCONF requests: Add IP, Delete IP, Set Primary, and others.
    public var parameters: [Parameter]

    public init(serial: ASCONFSerial, addressParameter: Parameter, parameters: [Parameter]) {
        self.serial = serial
        self.addressParameter = addressParameter
        self.parameters = parameters
    }

    public var flags: UInt8 { 0 }
    public var valueLength: Int {
        parameters.isEmpty
            ? 4 + 4 + addressParameter.valueLength
            : 4 + addressParameter.encodedLength + Parameter.listLength(parameters)
    }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeInteger(serial.rawValue)
        Parameter.encodeList([addressParameter] + parameters, into: &buffer)
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        serial = ASCONFSerial(try reader.u32())
        var all = try Parameter.decodeList(reader.rest())
        // RFC 5061 §4.1.1: "Address Parameter: 8 or 20 bytes (depending on type)" follows the serial number.
        guard !all.isEmpty else { throw Self.malformed("no address parameter") }
        addressParameter = all.removeFirst()
        switch addressParameter {
        case .ipv4Address, .ipv6Address: break
        default: throw Self.malformed("first parameter is type \(addressParameter.type), not an address")
        }
        parameters = all
    }
}
