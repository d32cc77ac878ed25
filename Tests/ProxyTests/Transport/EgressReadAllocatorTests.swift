import AggTransport
import NIOCore
import Testing

/// The egress connections' read sizes: a whole small response in the first read, and a bulk transfer's reads
/// grown to 256 KiB.
@Suite struct EgressReadAllocatorTests {
    let allocator = ByteBufferAllocator()

    @Test func theFirstReadTakesSixteenKiB() {
        var reads = TCPReads.egressAllocator
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
        #expect(reads.nextBufferSize() == 16 * 1_024)
        // A 10 KB response read whole does not shrink the next read below a whole small response at once.
        _ = reads.record(actualReadBytes: 10_240)
        #expect(reads.buffer(allocator: allocator).capacity == 16 * 1_024)
    }

    @Test func aBulkTransferGrowsItsReadsTo256KiB() {
        var reads = TCPReads.egressAllocator
        var size = reads.buffer(allocator: allocator).capacity
        for _ in 0..<10 {
            _ = reads.record(actualReadBytes: size)
            size = reads.buffer(allocator: allocator).capacity
        }
        #expect(size == 256 * 1_024)
    }
}
