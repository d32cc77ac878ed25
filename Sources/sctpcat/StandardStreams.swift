import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a line to stderr.
func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { bytes in _ = writeAll(fd: 2, bytes) }
}

/// Writes every byte to a descriptor, retrying partial writes and EINTR. False on any other error.
@discardableResult
func writeAll(fd: CInt, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += n
    }
    return true
}

/// Writes received messages to stdout. Blocking writes keep it simple: a slow stdout slows the reader, and the
/// receive window pushes back on the peer.
struct StandardOutput {
    private(set) var failed = false

    mutating func write(_ buffer: ByteBuffer) {
        guard !failed else { return }
        let ok = buffer.withUnsafeReadableBytes { raw in
            writeAll(fd: 1, raw.assumingMemoryBound(to: UInt8.self))
        }
        if !ok { failed = true }
    }
}

/// Reads stdin on a thread of its own (stdin may be a regular file, which epoll refuses) in chunks of up to
/// `chunkSize` bytes, handing each to `deliver` and waiting until it is accepted: one chunk of back-pressure.
enum StandardInputReader {
    static func start(
        chunkSize: Int, on eventLoop: any EventLoop, pool: NIOThreadPool,
        deliver: @escaping @Sendable (ByteBuffer?) -> EventLoopFuture<Void>
    ) {
        pool.submit { state in
            guard case .active = state else { return }
            let allocator = ByteBufferAllocator()
            while true {
                var buffer = allocator.buffer(capacity: chunkSize)
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: chunkSize) { raw in
                    while true {
                        let n = read(0, raw.baseAddress, chunkSize)
                        if n < 0 && errno == EINTR { continue }
                        return max(0, n)
                    }
                }
                // A read of 0 bytes is EOF (errors count as EOF too: there is nothing more to send).
                if buffer.readableBytes == 0 {
                    _ = try? deliver(nil).wait()
                    return
                }
                do {
                    try deliver(buffer).wait()
                } catch {
                    return
                }
            }
        }
    }
}
