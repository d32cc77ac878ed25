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
