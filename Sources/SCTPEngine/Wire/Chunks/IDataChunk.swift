import NIOCore

/// I-DATA (RFC 8260 §2.1, type 64): a message fragment numbered by MID and FSN, so messages can interleave.
public struct IDataChunk: ChunkBody {
    public static let type: UInt8 = 64
    /// Bytes before the user data: the 4-byte chunk header, then TSN, stream, reserved, MID and PPID/FSN.
    public static let headerSize = 20

    public var tsn: TSN
    public var streamID: StreamID
    public var mid: MID
    /// Meaningful when `isBeginning`; on the wire it shares a field with `fsn`.
    public var ppid: PPID
    /// Fragment sequence number, meaningful when not `isBeginning` (the first fragment's FSN is 0).
    public var fsn: UInt32
    public var isUnordered: Bool
    public var isBeginning: Bool
    public var isEnding: Bool
    public var isImmediate: Bool
    public var userData: ByteBuffer

    public init(
        tsn: TSN, streamID: StreamID, mid: MID, ppid: PPID = PPID(0), fsn: UInt32 = 0,
        isUnordered: Bool = false, isBeginning: Bool = true, isEnding: Bool = true, isImmediate: Bool = false,
        userData: ByteBuffer
    ) {
        self.tsn = tsn
        self.streamID = streamID
        self.mid = mid
        self.ppid = isBeginning ? ppid : PPID(0)
        self.fsn = isBeginning ? 0 : fsn
        self.isUnordered = isUnordered
        self.isBeginning = isBeginning
        self.isEnding = isEnding
        self.isImmediate = isImmediate
        self.userData = userData
    }

    public var flags: UInt8 { DataFlags.encode(isUnordered, isBeginning, isEnding, isImmediate) }
    public var valueLength: Int { Self.headerSize - 4 + userData.readableBytes }

    public func encodeValue(into buffer: inout ByteBuffer) {
        buffer.writeInteger(tsn.rawValue)
        buffer.writeInteger(streamID.rawValue)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(mid.rawValue)
        // RFC 8260 §2.1: "Payload Protocol Identifier / Fragment Sequence Number": PPID when B is set, FSN otherwise.
        buffer.writeInteger(isBeginning ? ppid.rawValue : fsn)
        buffer.writeBytes(of: userData)
    }

    public init(flags: UInt8, value: ByteBuffer) throws(WireError) {
        var reader = Self.reader(value)
        tsn = TSN(try reader.u32())
        streamID = StreamID(try reader.u16())
        _ = try reader.u16()
        mid = MID(try reader.u32())
        let ppidOrFSN = try reader.u32()
        (isUnordered, isBeginning, isEnding, isImmediate) = DataFlags.decode(flags)
        ppid = isBeginning ? PPID(ppidOrFSN) : PPID(0)
        fsn = isBeginning ? 0 : ppidOrFSN
        userData = reader.rest()
    }
}
