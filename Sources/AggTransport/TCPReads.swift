import NIOCore

/// How the relayed TCP connections read, on both daemons: a bulk transfer's reads grow to 256 KiB (one system call
/// per 256 KiB instead of per 64 KiB, NIO's default ceiling), an idle or interactive connection's stay small (the
/// allocator starts at 2 KiB and shrinks back), so many idle connections cost no more than before.
package enum TCPReads {
    package static let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2_048, maximum: 256 * 1_024)

    /// The first read of an egress connection (aggserver's, to the target): up to 16 KiB, so a small response (a
    /// web page's object, an API reply) arrives in one read and goes out as one message, sent whole in its
    /// stream's first turn, instead of three (2, 4 and 8 KiB) in three turns.
    package static let egressInitialRead = 16 * 1_024

    /// A read made while the association's send buffer is over its high watermark: small, so that the connections
    /// whose reads were armed before the buffer filled (every connection arms one as it comes up, long before its
    /// response arrives) take a little each and leave the rest in their socket until the buffer drains.
    package static let pressuredRead = 8 * 1_024

    /// Reads per readable event on an egress connection: one, so that a read cut to `pressuredRead` is not
    /// followed at once by three more (NIO reads again while a read fills its buffer, up to four times by default).
    /// A bulk transfer's reads of up to 256 KiB keep one system call per 256 KiB.
    package static let egressReadsPerEvent = 1
}

/// Whether one association's send buffer is over its high watermark, as its egress connections' reads see it.
/// Confined to the association's event loop (the driver's), where the stream session host keeps it current and
/// the egress channels, on the same loop, read it.
package final class ReadPressure: @unchecked Sendable {
    package var isHigh = false

    package init() {}
}

/// An egress connection's reads: NIO's adaptive sizes from `TCPReads.egressInitialRead` up to 256 KiB, except the
/// connection's first read while the association's send buffer is full, which takes `TCPReads.pressuredRead`.
/// Only the first: it is armed when the connection comes up, whatever the buffer holds then, while every later read
/// waits for the buffer to drain (`StreamSession.readIfPossible`), so a bulk transfer keeps its full-size reads.
package struct EgressReadAllocator: RecvByteBufferAllocator {
    private var adaptive = AdaptiveRecvByteBufferAllocator(
        minimum: 64, initial: TCPReads.egressInitialRead, maximum: 256 * 1_024)
    private var isFirstRead = true
    let pressure: ReadPressure

    package init(pressure: ReadPressure) {
        self.pressure = pressure
    }

    private var isCut: Bool { isFirstRead && pressure.isHigh }

    package func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        isCut ? allocator.buffer(capacity: TCPReads.pressuredRead) : adaptive.buffer(allocator: allocator)
    }

    package func nextBufferSize() -> Int? {
        isCut ? TCPReads.pressuredRead : adaptive.nextBufferSize()
    }

    package mutating func record(actualReadBytes: Int) -> Bool {
        // A read cut short by the pressure says nothing about the connection's rate: the adaptive sizes ignore it.
        defer { isFirstRead = false }
        return isCut ? false : adaptive.record(actualReadBytes: actualReadBytes)
    }
}
