import NIOCore

/// Buffers for the messages reassembly builds, handed back by the application once it is done with a message (a
/// relay's TCP write the socket has taken, `SCTPEndpoint.recycleMessageBuffer`) and reused for the next messages:
/// a bulk transfer's message, up to 256 KiB assembled from many DATA chunks, then costs no allocation.
///
/// One pool per endpoint, shared by its associations, so an association holds none of it; bounded by
/// `maximumCount` buffers and `maximumBytes` of storage; emptied once no buffer was taken for `idleInterval`
/// (`trimIfIdle`, at the endpoint's timers), so an idle endpoint keeps nothing, and dropped with the endpoint's last
/// association (`EndpointOutput.releaseSpares`: with none, no timer runs). A buffer is handed out only when
/// nobody else holds its storage any more: one the application handed back while something still holds it (NIO
/// writing it yet) is dropped when its turn comes, never reused.
struct MessageBufferPool {
    /// Buffers handed back, each a whole storage.
    private(set) var spares: [ByteBuffer] = []
    /// Their storage, in bytes.
    private(set) var storedBytes = 0
    /// Whether a buffer was taken since the last `trimIfIdle`, and when one last was (as `trimIfIdle` saw it).
    private var takenSinceCheck = false
    private var lastActive: SCTPTime?

    /// A relay's messages are up to 16 KiB (`AggLimits.maxDataPayload`), and one read batch completes dozens of them
    /// (8 slots of up to 44 datagrams) before the TCP writes of the last batch's come back: 16 spares missed a
    /// quarter of the messages.
    static let maximumCount = 128
    /// 128 messages of 16 KiB.
    static let maximumBytes = 2 << 20
    /// Buffers smaller than this are not kept: the allocation they save is not worth the pool's slot.
    static let minimumBytes = 4096
    static let idleInterval = SCTPDuration.seconds(1)

    /// Keeps `buffer` for a later message if it is a whole storage of a size worth keeping; in a full pool the
    /// oldest spares make room. (Kept out instead, the newest would wait behind spares of a size no message takes any
    /// more, which the idle trim never clears while the endpoint is busy: one peer's odd rooms would stop the pool
    /// for every association.) The caller may still hold it: `take` hands out only buffers nobody else holds.
    mutating func recycle(_ buffer: ByteBuffer) {
        let size = buffer.capacity
        guard size >= Self.minimumBytes, size <= Self.maximumBytes, size == buffer.storageCapacity else { return }
        var evicted = 0
        while spares.count - evicted >= Self.maximumCount || storedBytes + size > Self.maximumBytes {
            storedBytes -= spares[evicted].capacity
            evicted += 1
        }
        spares.removeFirst(evicted)
        spares.append(buffer)
        storedBytes += size
    }

    /// An empty buffer for a message of at least `bytes`, of the size the allocator would give: a spare whose
    /// capacity is at least `bytes` and less than twice that (so it charges the receive window no more than a new
    /// one would) and whose storage nobody else holds, else a new one. Spares still held elsewhere are dropped.
    mutating func take(capacity bytes: Int) -> ByteBuffer {
        takenSinceCheck = true
        var index = spares.count - 1
        while index >= 0 {
            let size = spares[index].capacity
            if size >= bytes, size < 2 * bytes {
                var buffer = spares.remove(at: index)
                storedBytes -= size
                if buffer.modifyIfUniquelyOwned({ $0.clear() }) != nil { return buffer }
            }
            index -= 1
        }
        return ByteBufferAllocator().buffer(capacity: bytes)
    }

    /// At the endpoint's timers: empties the pool once no buffer was taken for `idleInterval`.
    mutating func trimIfIdle(now: SCTPTime) {
        if takenSinceCheck || lastActive == nil {
            takenSinceCheck = false
            lastActive = now
            return
        }
        guard !spares.isEmpty, let lastActive, now - lastActive >= Self.idleInterval else { return }
        spares = []
        storedBytes = 0
    }
}
