import SCTPEngine

/// Which stream ids are in use on one association, and who may take a new one.
///
/// The client allocates: the lowest free id ≥ 1 below `limit` (stream 0 is the control stream). The limit is the
/// smaller of the negotiated outbound and inbound stream counts (both directions of a connection use the same
/// id) and HELLO's `maxStreams` + 1. The server admits: it accepts a client-chosen id while fewer than
/// `limit` streams are in use, else it answers OPEN-RESULT "too many streams" (a terminal, so nothing is kept).
/// Ids are returned with `release` when `StreamState` says the stream is free on this side.
public struct StreamTable: Sendable {
    /// One bit per stream id; bit set = in use.
    private var words: [UInt64]
    /// Client: ids below this may be allocated. Server: the most streams in use at once.
    public private(set) var limit: Int
    public private(set) var count = 0

    public init(limit: Int) {
        self.limit = max(0, min(limit, Int(UInt16.max) + 1))
        words = [UInt64](repeating: 0, count: (Int(UInt16.max) + 1) / 64)
    }

    /// A client table for an association with the given stream counts and the server's HELLO limit.
    public static func client(outboundStreams: UInt16, inboundStreams: UInt16, maxStreams: UInt16) -> StreamTable {
        StreamTable(limit: min(Int(outboundStreams), Int(inboundStreams), Int(maxStreams) + 1))
    }

    public func isInUse(_ id: StreamID) -> Bool {
        words[Int(id.rawValue) >> 6] & (1 << UInt64(id.rawValue & 63)) != 0
    }

    /// Client: takes the lowest free id ≥ 1 below `limit`; nil when all are in use.
    public mutating func allocate() -> StreamID? {
        for index in words.indices where words[index] != .max {
            var free = ~words[index]
            if index == 0 { free &= ~1 }  // Stream 0 is the control stream.
            guard free != 0 else { continue }
            let id = index * 64 + free.trailingZeroBitCount
            guard id < limit else { return nil }
            words[index] |= 1 << UInt64(id & 63)
            count += 1
            return StreamID(UInt16(id))
        }
        return nil
    }

    /// Server: marks a client-chosen id in use. False when stream 0, already in use, or `limit` streams are open.
    public mutating func admit(_ id: StreamID) -> Bool {
        guard id.rawValue != 0, !isInUse(id), count < limit else { return false }
        words[Int(id.rawValue) >> 6] |= 1 << UInt64(id.rawValue & 63)
        count += 1
        return true
    }

    /// Frees an id; false when it was not in use.
    @discardableResult
    public mutating func release(_ id: StreamID) -> Bool {
        guard isInUse(id) else { return false }
        words[Int(id.rawValue) >> 6] &= ~(1 << UInt64(id.rawValue & 63))
        count -= 1
        return true
    }
}
