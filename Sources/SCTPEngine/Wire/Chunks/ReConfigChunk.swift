import NIOCore

/// RE-CONFIG (RFC 6525 §3.1, type 130): one or two stream reconfiguration requests or responses.
public struct ReConfigChunk: ChunkBody {
    public static let type: UInt8 = 130

    public var parameters: [Parameter]

    public init(parameters: [Parameter]) { self.parameters = parameters }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { Parameter.listLength(parameters) }
    public func encodeValue(into buffer: inout ByteBuffer) { Parameter.encodeList(parameters, into: &buffer) }
    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        parameters = try Parameter.decodeList(value)
    }
}
