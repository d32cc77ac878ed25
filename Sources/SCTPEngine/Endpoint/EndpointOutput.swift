import DequeModule
import NIOCore

/// The queues an endpoint and its associations fill and the driver drains: datagrams to send and application
/// events. Shared by reference so each association appends without copying.
final class EndpointOutput {
    var datagrams = Deque<SCTPDatagram>()
    var events = Deque<SCTPEvent>()
    /// Packets dropped on input, by reason, for metrics.
    var dropped: [SCTPDropReason: Int] = [:]
    /// Requests refused because a limit was reached, for metrics.
    var refusals = SCTPLimitRefusals()
    /// What PR-SCTP abandoned and skipped, for metrics.
    var partialReliability = SCTPPartialReliabilityCounters()

    /// Packet buffers the driver handed back once it had sealed their packets (`SCTPEndpoint.recycle`), reused by
    /// the next packets built: an encrypting driver's plaintext packet then costs no allocation.
    var spareBuffers: [ByteBuffer] = []
    static let spareBufferLimit = 64

    func drop(_ reason: SCTPDropReason) { dropped[reason, default: 0] += 1 }

    /// Keeps `buffer` for the next packet built, up to `spareBufferLimit` of them.
    func recycle(_ buffer: ByteBuffer) {
        guard spareBuffers.count < Self.spareBufferLimit else { return }
        spareBuffers.append(buffer)
    }

    /// A buffer for a packet of up to `capacity` bytes: a recycled one when there is one (still shared, it is
    /// replaced by fresh storage on its first write, as any ByteBuffer would be), else a new one.
    func packetBuffer(capacity: Int) -> ByteBuffer {
        while var buffer = spareBuffers.popLast() {
            guard buffer.capacity >= capacity else { continue }
            buffer.clear()
            return consume buffer
        }
        return ByteBufferAllocator().buffer(capacity: capacity)
    }
}
