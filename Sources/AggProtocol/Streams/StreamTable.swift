import SCTPEngine

/// Which stream ids are in use on one association, and who may take a new one.
///
/// The client allocates: the lowest free id ≥ 1 below `limit` (stream 0 is the control stream). The limit is the
/// smallest of the negotiated outbound and inbound stream counts (both directions of a connection use the same
/// id), HELLO's `maxStreams` + 1 and the client's own `streams-per-association` + 1, so that `limit - 1` streams
/// (the effective limit both daemons report) may be open at once. The server admits: it accepts a client-chosen id while fewer than
/// `limit` streams are in use, else it answers OPEN-RESULT "too many streams" (a terminal, so nothing is kept).
/// Ids are returned with `release` when `StreamState` says the stream is free on this side.
public struct StreamTable: Sendable {
    /// One bit per stream id; bit set = in use. It grows to the word of the highest id used so far, not to all
    /// 65,536 ids at once: an idle association holds none of it (the full bitmap is 8 KiB, a fifth of what an idle
    /// association costs the server; BENCHMARKS.md, "Server scale"), a household's few hundred streams a few words.
    private var words: [UInt64] = []
    /// Client: ids below this may be allocated. Server: the most streams in use at once.
    public private(set) var limit: Int
    public private(set) var count = 0
    /// Client: no word below this one has a free id, so `allocate` starts here (a full table costs one step, not
    /// a scan of every word).
    private var firstWordWithRoom = 0

    /// The most streams open at once: `limit` on the server, `limit - 1` on the client (its ids run 1 ..< `limit`).
    public let streamLimit: Int

    /// A server table that admits up to `limit` streams.
    public init(limit: Int) {
        self.init(limit: limit, streamLimit: limit)
    }

    private init(limit: Int, streamLimit: Int) {
        self.limit = max(0, min(limit, Int(UInt16.max) + 1))
        self.streamLimit = max(0, min(streamLimit, self.limit))
    }

    /// A client table for an association with the given stream counts and the server's HELLO limit.
    public static func client(
        outboundStreams: UInt16, inboundStreams: UInt16, maxStreams: UInt16, ownLimit: Int = Int(UInt16.max)
    ) -> StreamTable {
        let limit = min(Int(outboundStreams), Int(inboundStreams), Int(maxStreams) + 1, ownLimit + 1)
        return StreamTable(limit: limit, streamLimit: limit - 1)
    }

    /// Whether `streamLimit` streams are open.
    public var isFull: Bool { count >= streamLimit }

    public func isInUse(_ id: StreamID) -> Bool {
        let index = Int(id.rawValue) >> 6
        return index < words.count && words[index] & (1 << UInt64(id.rawValue & 63)) != 0
    }

    /// The 64-bit words the bitmap holds now (for tests: it grows with the highest id used, never beyond 1,024).
    var wordCount: Int { words.count }

    /// Client: takes the lowest free id ≥ 1 below `limit`; nil when all are in use.
    public mutating func allocate() -> StreamID? {
        guard !isFull else { return nil }
        var index = firstWordWithRoom
        while index * 64 < limit {
            if index == words.count { words.append(0) }
            if words[index] != .max {
                firstWordWithRoom = index
                var free = ~words[index]
                if index == 0 { free &= ~1 }  // Stream 0 is the control stream.
                if free != 0 {
                    let id = index * 64 + free.trailingZeroBitCount
                    guard id < limit else { return nil }
                    words[index] |= 1 << UInt64(id & 63)
                    count += 1
                    return StreamID(UInt16(id))
                }
            }
            index += 1
        }
        return nil
    }

    /// Server: marks a client-chosen id in use. False when stream 0, already in use, or `limit` streams are open.
    public mutating func admit(_ id: StreamID) -> Bool {
        guard id.rawValue != 0, !isInUse(id), count < streamLimit else { return false }
        let index = Int(id.rawValue) >> 6
        if index >= words.count { words.append(contentsOf: repeatElement(0, count: index + 1 - words.count)) }
        words[index] |= 1 << UInt64(id.rawValue & 63)
        count += 1
        return true
    }

    /// Frees an id; false when it was not in use.
    @discardableResult
    public mutating func release(_ id: StreamID) -> Bool {
        guard isInUse(id) else { return false }
        words[Int(id.rawValue) >> 6] &= ~(1 << UInt64(id.rawValue & 63))
        count -= 1
        firstWordWithRoom = min(firstWordWithRoom, Int(id.rawValue) >> 6)
        return true
    }
}
