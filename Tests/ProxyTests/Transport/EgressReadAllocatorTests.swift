import AggTransport
import NIOCore
import Testing

/// The egress connections' read sizes: a whole small response in the first read while the association has room,
/// small reads while its send buffer is full, and the adaptive sizes untouched by reads the pressure cut short.
@Suite struct EgressReadAllocatorTests {
    let allocator = ByteBufferAllocator()

    @Test func theFirstReadTakesSixteenKiBOrEightWhileTheAssociationIsFull() {
        let pressure = ReadPressure()
        var reads = EgressReadAllocator(pressure: pressure)
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
        #expect(reads.nextBufferSize() == 16 * 1_024)
        pressure.isHigh = true
        #expect(reads.buffer(allocator: allocator).capacity == 8 * 1_024)
        #expect(reads.nextBufferSize() == 8 * 1_024)
        // The cut read says nothing about the connection: it does not shrink its later reads.
        let grew = reads.record(actualReadBytes: 8 * 1_024)
        #expect(!grew)
        // Later reads wait for the buffer to drain in the session, so the pressure no longer cuts them.
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
        pressure.isHigh = false
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
    }

    @Test func aBulkTransferStillGrowsItsReadsWhileTheAssociationHasRoom() {
        var reads = EgressReadAllocator(pressure: ReadPressure())
        var size = reads.buffer(allocator: allocator).capacity
        for _ in 0..<10 {
            _ = reads.record(actualReadBytes: size)
            size = reads.buffer(allocator: allocator).capacity
        }
        #expect(size == 256 * 1_024)
    }
}
