import NIOCore

/// ASCONF-ACK (RFC 5061 §4.1.2, type 0x80): answers an ASCONF, one response per request that needs one.
public struct ASCONFAckChunk: ChunkBody {
    public static let type: UInt8 = 0x80

    public var serial: ASCONFSerial
    /// Success and Error Cause Indications.
    public var parameters: [Parameter]

    public init(serial: ASCONFSerial, parameters: [Parameter]) {
        self.serial = serial
        self.parameters = parameters
    }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 + Parameter.listLength(parameters) }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeInteger(serial.rawValue)
        Parameter.encodeList(parameters, into: &buffer)
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        serial = ASCONFSerial(try reader.u32())
        parameters = try Parameter.decodeList(reader.rest())
    }
}
