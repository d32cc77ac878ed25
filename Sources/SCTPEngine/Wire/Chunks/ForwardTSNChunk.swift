import NIOCore

/// FORWARD TSN (RFC 3758 §3.2, type 192): moves the receiver's cumulative TSN past abandoned data.
public struct ForwardTSNChunk: ChunkBody {
    public static let type: UInt8 = 192

    /// An ordered stream and the largest SSN skipped on it.
    public struct Stream: Hashable, Sendable {
        public var streamID: StreamID
        public var ssn: SSN

        public init(streamID: StreamID, ssn: SSN) {
            self.streamID = streamID
            self.ssn = ssn
        }
    }

    public var newCumulativeTSN: TSN
    public var streams: [Stream]

    public init(newCumulativeTSN: TSN, streams: [Stream] = []) {
        self.newCumulativeTSN = newCumulativeTSN
        self.streams = streams
    }

    public var flags: UInt8 { 0 }
    public var valueLength: Int { 4 + 4 * streams.count }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeInteger(newCumulativeTSN.rawValue)
        for stream in streams {
            buffer.writeInteger(stream.streamID.rawValue)
            buffer.writeInteger(stream.ssn.rawValue)
        }
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        newCumulativeTSN = TSN(try reader.u32())
        guard reader.remaining % 4 == 0 else { throw Self.malformed("stream list of \(reader.remaining) bytes") }
        var streams: [Stream] = []
        streams.reserveCapacity(reader.remaining / 4)
        while reader.remaining > 0 {
            let id = StreamID(try reader.u16())
            streams.append(Stream(streamID: id, ssn: SSN(try reader.u16())))
        }
        self.streams = streams
    }
}
