import AggTransport
import NIOCore
import Testing

/// The egress connections' read sizes: a whole small response in the first read, 2 KiB while the association holds
/// more than twice its send buffer, and the adaptive sizes untouched by a read the pressure cut short.
@Suite struct EgressReadAllocatorTests {
    let allocator = ByteBufferAllocator()

    @Test func theFirstReadTakesSixteenKiBOrTwoWhileTheAssociationIsOverfull() {
        let pressure = ReadPressure()
        var reads = EgressReadAllocator(pressure: pressure)
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
        #expect(reads.nextBufferSize() == 16 * 1_024)
        pressure.isOverfull = true
        #expect(reads.buffer(allocator: allocator).capacity == 2 * 1_024)
        #expect(reads.nextBufferSize() == 2 * 1_024)
        // The cut read says nothing about the connection: it does not shrink its later reads.
        let grew = reads.record(actualReadBytes: 2 * 1_024)
        #expect(!grew)
        // Later reads wait for the buffer to drain in the session, so the pressure no longer cuts them.
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
    }

    @Test func aBulkTransferGrowsItsReadsTo256KiB() {
        var reads = EgressReadAllocator(pressure: ReadPressure())
        var size = reads.buffer(allocator: allocator).capacity
        for _ in 0..<10 {
            _ = reads.record(actualReadBytes: size)
            size = reads.buffer(allocator: allocator).capacity
        }
        #expect(size == 256 * 1_024)
    }
}
