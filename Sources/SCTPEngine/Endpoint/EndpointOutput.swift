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
    /// How many spare buffers are kept: as many as the driver has taken packets at once, at least
    /// `minimumSpareBuffers` and at most `maximumSpareBuffers`. A fixed 64 was too few: at a read batch's end a
    /// paced path sends half a millisecond of its rate at once (130 packets at 3 Gbit/s), and every packet past the
    /// 64th was built in a new buffer, two allocations each (37 % of aggserver's mallocs).
    private(set) var spareBufferLimit = EndpointOutput.minimumSpareBuffers
    static let minimumSpareBuffers = 64
    /// 1,024 buffers of 2 KiB (NIO rounds a packet's capacity up to a power of two): 2 MiB at most per endpoint.
    static let maximumSpareBuffers = 1024
    /// Buffers for the messages reassembly builds, handed back by the application once done with them
    /// (`SCTPEndpoint.recycleMessageBuffer`); shared by the endpoint's associations.
    var messageBuffers = MessageBufferPool()

    func drop(_ reason: SCTPDropReason) { dropped[reason, default: 0] += 1 }

    /// Lets go of every spare buffer, packets' and messages', and of the packet pool's grown limit: the endpoint's
    /// last association closed.
    func releaseSpares() {
        spareBuffers = []
        spareBufferLimit = Self.minimumSpareBuffers
        messageBuffers = MessageBufferPool()
    }

    /// Keeps `buffer` for the next packet built, up to `spareBufferLimit` of them. The caller may still hold it:
    /// only `packetBuffer` needs it unique.
    func recycle(_ buffer: ByteBuffer) {
        guard spareBuffers.count < spareBufferLimit else { return }
        spareBuffers.append(buffer)
    }

    /// A buffer for a packet of up to `capacity` bytes: a recycled one when there is one whose storage nobody else
    /// holds any more, else a new one. A recycled buffer still referenced elsewhere (a driver that kept the packet)
    /// is dropped: its first write would copy it into fresh storage, which costs what a new buffer does.
    func packetBuffer(capacity: Int) -> ByteBuffer {
        while var buffer = spareBuffers.popLast() {
            guard buffer.capacity >= capacity, buffer.modifyIfUniquelyOwned({ $0.clear() }) != nil else { continue }
            return buffer
        }
        // None spare: the driver is about to take more packets at once than the pool keeps. It keeps as many as
        // are queued now, so the next burst of this size finds a buffer for each.
        if datagrams.count >= spareBufferLimit {
            spareBufferLimit = min(datagrams.count + 1, Self.maximumSpareBuffers)
        }
        return ByteBufferAllocator().buffer(capacity: capacity)
    }
}
