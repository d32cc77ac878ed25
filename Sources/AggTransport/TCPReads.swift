import NIOCore

/// How the relayed TCP connections read, on both daemons: a bulk transfer's reads grow to 256 KiB (one system call
/// per 256 KiB instead of per 64 KiB, NIO's default ceiling), an idle or interactive connection's stay small (the
/// allocator starts at 2 KiB and shrinks back), so many idle connections cost no more than before.
package enum TCPReads {
    package static let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2_048, maximum: 256 * 1_024)

    /// An egress connection's reads (aggserver's, to the target): the first takes up to 16 KiB, so a small response
    /// (a web page's object, an API reply) arrives in one read and goes out as one message, sent whole in its
    /// stream's first turn, instead of three (2, 4 and 8 KiB) in three turns; a bulk transfer's grow to 256 KiB.
    /// A burst's first reads are not cut at the send buffer's high watermark: an 8 KiB cut there, kept until
    /// 2026-12-07, split every response of 8 to 16 KiB in a burst into two messages, two writes to the application
    /// and two buffers, and measured more memory at 10,000 connections, not less (BENCHMARKS.md, issue 21). Only
    /// past twice the send buffer does a first read shrink (`EgressReadAllocator`).
    package static let egressAllocator = AdaptiveRecvByteBufferAllocator(
        minimum: 64, initial: 16 * 1_024, maximum: 256 * 1_024)

    /// An egress connection's first read while its association holds more than twice its send buffer unsent
    /// (`ReadPressure`): small, so that what many connections' first reads add past the buffer stays small.
    package static let overfullFirstRead = 2 * 1_024

    /// Reads per readable event on an egress connection: one, so that a connection whose read filled its buffer
    /// does not read three more at once (NIO reads again while a read fills its buffer, up to four times by
    /// default) past a send buffer that may have filled meanwhile: later reads wait in `StreamSession` for the
    /// buffer to drain. A bulk transfer's reads of up to 256 KiB keep one system call per 256 KiB.
    package static let egressReadsPerEvent = 1
}

/// Whether one association holds more than twice its send buffer (`SCTPConfiguration.sendBufferSize`) unsent, as
/// its egress connections' first reads see it. Confined to the association's event loop (the driver's), where the
/// stream session host keeps it current after every batch of actions and the egress channels, on the same loop, read
/// it.
package final class ReadPressure: @unchecked Sendable {
    package var isOverfull = false

    package init() {}
}

/// An egress connection's reads: `TCPReads.egressAllocator`'s, except a first read made while the association holds
/// more than twice its send buffer unsent, which takes `TCPReads.overfullFirstRead`.
///
/// Every egress connection arms its first read as it comes up, before the relay joins its channel, so that read is
/// not held back by the session (later reads wait in `StreamSession` for the buffer to drain), and the engine's
/// send queue takes whatever it brings. Unbounded in size, a client that opens many streams to targets that answer
/// at once and then acknowledges nothing would have the server queue one full read per stream past its buffer (16 KiB
/// × 16,384 streams: 256 MiB per association). Past twice the buffer each takes 2 KiB (32 MiB at most for 16,384);
/// a burst's responses stay whole until its queue passes that.
package struct EgressReadAllocator: RecvByteBufferAllocator {
    private var adaptive = TCPReads.egressAllocator
    private var isFirstRead = true
    let pressure: ReadPressure

    package init(pressure: ReadPressure) {
        self.pressure = pressure
    }

    private var isCut: Bool { isFirstRead && pressure.isOverfull }

    package func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        isCut ? allocator.buffer(capacity: TCPReads.overfullFirstRead) : adaptive.buffer(allocator: allocator)
    }

    package func nextBufferSize() -> Int? {
        isCut ? TCPReads.overfullFirstRead : adaptive.nextBufferSize()
    }

    package mutating func record(actualReadBytes: Int) -> Bool {
        // A read cut short says nothing about the connection's rate: the adaptive sizes ignore it.
        defer { isFirstRead = false }
        return isCut ? false : adaptive.record(actualReadBytes: actualReadBytes)
    }
}
