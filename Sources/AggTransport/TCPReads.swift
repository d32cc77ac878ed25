import NIOCore

/// How the relayed TCP connections read, on both daemons: a bulk transfer's reads grow to 256 KiB (one system call
/// per 256 KiB instead of per 64 KiB, NIO's default ceiling), an idle or interactive connection's stay small (the
/// allocator starts at 2 KiB and shrinks back), so many idle connections cost no more than before.
package enum TCPReads {
    package static let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2_048, maximum: 256 * 1_024)
}
