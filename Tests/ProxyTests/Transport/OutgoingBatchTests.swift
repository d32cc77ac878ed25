import NIOCore
import SCTPEngine
import Testing

@testable import AggTransport
@testable import Proxy

/// Which datagrams may share one segmented write (UDP_SEGMENT): one socket, one destination, all of the first's
/// size but a shorter last one, at most 64 of them and 65,507 bytes.
@Suite struct OutgoingBatchTests {
    let peer = SCTPSocketAddress("127.0.0.1:9899")!
    let other = SCTPSocketAddress("127.0.0.2:9899")!

    func datagram(_ size: Int, _ fill: UInt8 = 0) -> ByteBuffer {
        ByteBuffer(repeating: fill, count: size)
    }

    func batch(startingWith size: Int) -> SCTPDriver.OutgoingBatch {
        SCTPDriver.OutgoingBatch(
            index: 0, destination: peer, remote: remote, datagram: datagram(size, 1))
    }

    var remote: RawSocketAddress { RawSocketAddress(peer) }

    func run() -> ByteBuffer { ByteBufferAllocator().buffer(capacity: SCTPDriver.OutgoingBatch.maxBytes) }

    func join(
        _ batch: inout SCTPDriver.OutgoingBatch, _ datagram: ByteBuffer, index: Int, destination: SCTPSocketAddress
    ) -> Bool {
        batch.append(datagram, index: index, destination: destination, run: run)
    }

    @Test func equalDatagramsJoinEndToEndInOrder() {
        var batch = batch(startingWith: 1_200)
        #expect(join(&batch, datagram(1_200, 2), index: 0, destination: peer))
        #expect(join(&batch, datagram(1_200, 3), index: 0, destination: peer))
        #expect(batch.count == 3)
        #expect(batch.buffer.readableBytes == 3_600)
        #expect(batch.buffer.getInteger(at: 0, as: UInt8.self) == 1)
        #expect(batch.buffer.getInteger(at: 1_200, as: UInt8.self) == 2)
        #expect(batch.buffer.getInteger(at: 3_599, as: UInt8.self) == 3)
    }

    @Test func aShorterDatagramEndsTheBatchAndALongerOneNeverJoins() {
        var batch = batch(startingWith: 1_200)
        #expect(!join(&batch, datagram(1_201), index: 0, destination: peer))
        #expect(join(&batch, datagram(100), index: 0, destination: peer))
        #expect(batch.isClosed)
        #expect(!join(&batch, datagram(100), index: 0, destination: peer))
        #expect(!join(&batch, datagram(1_200), index: 0, destination: peer))
        #expect(batch.count == 2)
        #expect(batch.buffer.readableBytes == 1_300)
    }

    @Test func anotherSocketOrDestinationStartsAnotherBatch() {
        var batch = batch(startingWith: 1_200)
        #expect(!join(&batch, datagram(1_200), index: 1, destination: peer))
        #expect(!join(&batch, datagram(1_200), index: 0, destination: other))
        #expect(batch.count == 1)
        #expect(batch.buffer.readableBytes == 1_200)
    }

    @Test func atMost64SegmentsAndOneUDPPayload() {
        var small = batch(startingWith: 100)
        while join(&small, datagram(100), index: 0, destination: peer) {}
        #expect(small.count == SCTPDriver.OutgoingBatch.maxSegments)

        var large = batch(startingWith: 1_472)
        while join(&large, datagram(1_472), index: 0, destination: peer) {}
        #expect(large.count == 44)  // 44 × 1,472 = 64,768; a 45th would pass 65,507 bytes.
        #expect(large.buffer.readableBytes <= SCTPDriver.OutgoingBatch.maxBytes)
    }

    /// The sealing path: an empty batch on a run buffer takes its segment size from the first datagram written
    /// onto it, and the same rules from there.
    @Test func aRunStartsEmptyAndTakesItsSegmentSizeFromTheFirstDatagram() {
        var batch = SCTPDriver.OutgoingBatch(index: 0, destination: peer, remote: remote, run: run())
        #expect(batch.count == 0 && batch.isRun)
        #expect(!batch.accepts(1_200, index: 1, destination: peer))
        #expect(batch.accepts(1_200, index: 0, destination: peer))
        batch.buffer.writeImmutableBuffer(datagram(1_200, 1))
        batch.appended(1_200)
        #expect(batch.segmentSize == 1_200 && batch.count == 1)
        #expect(!batch.accepts(1_201, index: 0, destination: peer))
        #expect(join(&batch, datagram(1_200, 2), index: 0, destination: peer))
        #expect(join(&batch, datagram(80, 3), index: 0, destination: peer))
        #expect(batch.isClosed && batch.count == 3)
        #expect(batch.buffer.readableBytes == 2_480)
        #expect(batch.buffer.getInteger(at: 1_200, as: UInt8.self) == 2)
    }
}
