import NIOCore

/// How the relayed TCP connections read, on both daemons: a bulk transfer's reads grow to 256 KiB (one system call
/// per 256 KiB instead of per 64 KiB, NIO's default ceiling), an idle or interactive connection's stay small (the
/// allocator starts at 2 KiB and shrinks back), so many idle connections cost no more than before.
package enum TCPReads {
    package static let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2_048, maximum: 256 * 1_024)

    /// An egress connection's reads (aggserver's, to the target): the first takes up to 16 KiB, so a small response
    /// (a web page's object, an API reply) arrives in one read and goes out as one message, sent whole in its
    /// stream's first turn, instead of three (2, 4 and 8 KiB) in three turns; a bulk transfer's grow to 256 KiB.
    /// The first read is not cut while the association's send buffer is full: an 8 KiB cut, kept until 2026-12-07,
    /// split every response of 8 to 16 KiB in a burst into two messages, two writes to the application and two
    /// buffers, and measured more memory at 10,000 connections, not less (BENCHMARKS.md, issue 21).
    package static let egressAllocator = AdaptiveRecvByteBufferAllocator(
        minimum: 64, initial: 16 * 1_024, maximum: 256 * 1_024)

    /// Reads per readable event on an egress connection: one, so that a connection whose read filled its buffer
    /// does not read three more at once (NIO reads again while a read fills its buffer, up to four times by
    /// default) past a send buffer that may have filled meanwhile: later reads wait in `StreamSession` for the
    /// buffer to drain. A bulk transfer's reads of up to 256 KiB keep one system call per 256 KiB.
    package static let egressReadsPerEvent = 1
}
