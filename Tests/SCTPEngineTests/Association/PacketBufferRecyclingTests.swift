import NIOCore
import Testing

@testable import SCTPEngine

/// `SCTPEndpoint.recycle`: a driver that has sealed a packet hands its buffer back and the next packets are built
/// in it; a buffer somebody still holds is never written over.
@Suite struct PacketBufferRecyclingTests {
    static func baseAddress(_ buffer: ByteBuffer) -> UInt? {
        buffer.withUnsafeReadableBytes { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    /// An established pair and a DATA packet the client has queued.
    static func established() -> (Lockstep, SCTPAssociationID) {
        let l = Lockstep()
        let id = l.connect()
        l.exchange()
        #expect(l.clientEstablished && l.serverEstablished)
        return (l, id)
    }

    @Test func theNextPacketIsBuiltInARecycledBuffer() throws {
        let (l, id) = Self.established()
        try l.client.send(ByteBuffer(repeating: 1, count: 1000), on: id, stream: StreamID(0), now: l.now)
        // Taken without #require, whose record of the value would hold the buffer.
        var first = l.take(l.client).first
        #expect(first != nil)
        let storage = Self.baseAddress(first!.payload)
        l.client.recycle(first!.payload)
        // The only other reference goes, as the driver's does once it has sealed the packet: the buffer is unique
        // and the next packet is written in place.
        first = nil
        try l.client.send(ByteBuffer(repeating: 2, count: 1000), on: id, stream: StreamID(0), now: l.now)
        let second = try #require(l.take(l.client).first)
        #expect(Self.baseAddress(second.payload) == storage)
        #expect(second.payload.readableBytes > 1000)
        #expect(Lockstep.chunkTypes(second).contains(DataChunk.type))
    }

    @Test func aBufferStillHeldElsewhereIsNotWrittenOver() throws {
        let (l, id) = Self.established()
        try l.client.send(ByteBuffer(repeating: 1, count: 1000), on: id, stream: StreamID(0), now: l.now)
        let first = try #require(l.take(l.client).first)
        let kept = first.payload
        let before = Array(kept.readableBytesView)
        l.client.recycle(first.payload)
        try l.client.send(ByteBuffer(repeating: 2, count: 1000), on: id, stream: StreamID(0), now: l.now)
        let second = try #require(l.take(l.client).first)
        #expect(Array(kept.readableBytesView) == before)
        #expect(Self.baseAddress(second.payload) != Self.baseAddress(kept))
        // Both packets reach the server intact.
        l.deliver([first, second], to: l.server)
        let received = l.serverEvents.compactMap { event -> Int? in
            if case .message(_, let message) = event { message.payload.readableBytes } else { nil }
        }
        #expect(received == [1000, 1000])
    }
}

/// `EndpointOutput`'s pool of packet buffers: it keeps as many as the driver takes at once, and never hands out a
/// buffer whose storage somebody else still holds.
@Suite struct PacketBufferPoolTests {
    static let capacity = 1452

    /// Builds `count` packets the way `transmitDeferred` does (each queued before the driver drains any), then
    /// drains and recycles them all; the storage of each.
    static func burst(_ output: EndpointOutput, _ count: Int) -> Set<UInt> {
        var storages: Set<UInt> = []
        for _ in 0..<count {
            var buffer = output.packetBuffer(capacity: capacity)
            buffer.writeRepeatingByte(7, count: 1000)
            storages.insert(PacketBufferRecyclingTests.baseAddress(buffer)!)
            output.datagrams.append(
                SCTPDatagram(
                    source: .init(ip: .anyV4, port: 1), destination: .init(ip: .anyV4, port: 2), payload: buffer))
        }
        while let datagram = output.datagrams.popFirst() { output.recycle(datagram.payload) }
        return storages
    }

    @Test func aBurstLargerThanTheMinimumIsBuiltInRecycledBuffersTheNextTime() {
        let output = EndpointOutput()
        let count = EndpointOutput.minimumSpareBuffers * 2 + 10
        let first = Self.burst(output, count)
        #expect(first.count == count)
        #expect(output.spareBufferLimit >= count)
        #expect(output.spareBuffers.count == count)
        // Every packet of the same burst again goes into a buffer of the first: no new storage.
        let second = Self.burst(output, count)
        #expect(second == first)
    }

    @Test func thePoolStopsGrowingAtItsMaximum() {
        let output = EndpointOutput()
        _ = Self.burst(output, EndpointOutput.maximumSpareBuffers + 50)
        #expect(output.spareBufferLimit == EndpointOutput.maximumSpareBuffers)
        #expect(output.spareBuffers.count == EndpointOutput.maximumSpareBuffers)
    }

    @Test func aBufferStillReferencedIsNeverHandedOut() {
        let output = EndpointOutput()
        var kept = output.packetBuffer(capacity: Self.capacity)
        kept.writeRepeatingByte(1, count: 100)
        var free = output.packetBuffer(capacity: Self.capacity)
        free.writeRepeatingByte(2, count: 100)
        let keptStorage = PacketBufferRecyclingTests.baseAddress(kept)
        let freeStorage = PacketBufferRecyclingTests.baseAddress(free)
        // `free` is recycled with its last reference; `kept` is recycled while the caller still holds it, on top.
        output.recycle(free)
        free = ByteBuffer()
        output.recycle(kept)
        // The pool skips `kept` (its first write would copy it) and hands out `free`'s storage, cleared.
        var reused = output.packetBuffer(capacity: Self.capacity)
        #expect(reused.readableBytes == 0)
        reused.writeRepeatingByte(3, count: 10)
        #expect(PacketBufferRecyclingTests.baseAddress(reused) == freeStorage)
        #expect(PacketBufferRecyclingTests.baseAddress(reused) != keptStorage)
        #expect(Array(kept.readableBytesView) == Array(repeating: 1, count: 100))
        #expect(output.spareBuffers.isEmpty)
    }

    @Test func aBufferTooSmallForThePacketIsNotUsed() {
        let output = EndpointOutput()
        output.recycle(ByteBufferAllocator().buffer(capacity: 64))
        let buffer = output.packetBuffer(capacity: Self.capacity)
        #expect(buffer.capacity >= Self.capacity)
        #expect(output.spareBuffers.isEmpty)
    }
}
