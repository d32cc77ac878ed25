import Crypto
import NIOCore
import NIOPosix
import Synchronization

// The scale benchmark's traffic: a TCP byte source on loopback, and downloads from it through a client's SOCKS5
// listener whose every byte is counted and hashed.

/// What one download got: its bytes, their SHA-256, and when the last byte arrived.
struct DownloadResult: Sendable {
    var bytes: Int
    var digest: [UInt8]
    var finished: NIODeadline
}

/// A failed download, with the reason.
struct DownloadFailure: Error, CustomStringConvertible {
    var description: String
}

/// The digests the source computed over what it sent, by download id, so a download can be checked against what
/// actually went in rather than against a second copy of the generator.
final class SentDigests: Sendable {
    private let digests = Mutex<[UInt64: [UInt8]]>([:])

    func record(_ digest: [UInt8], for id: UInt64) { digests.withLock { $0[id] = digest } }
    func digest(for id: UInt64) -> [UInt8]? { digests.withLock { $0[id] } }
    func removeAll() { digests.withLock { $0.removeAll() } }
}

/// A TCP server on 127.0.0.1 that reads a 16-byte request (length, then download id, both big-endian UInt64) and
/// sends that many bytes of a random block, starting at an offset that depends on the id (so no two downloads carry
/// the same bytes), as fast as the connection takes them; then records the SHA-256 of what it sent and closes.
/// Every write is a slice of one shared block: nothing is copied or generated per write.
enum ByteSource {
    static let blockSize = 256 * 1024

    static func bind(on loop: any EventLoop, digests: SentDigests) throws -> any Channel {
        var generator = SystemRandomNumberGenerator()
        var block = ByteBuffer()
        block.reserveCapacity(2 * blockSize)
        for _ in 0..<(blockSize / 8) { block.writeInteger(generator.next() as UInt64) }
        // Twice the block, so a slice of up to `blockSize` bytes may start anywhere in the first copy.
        block.writeImmutableBuffer(block)
        let shared = block
        return try ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Sender(block: shared, digests: digests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// Sends one download's bytes on one accepted connection.
    final class Sender: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private let block: ByteBuffer
        private let digests: SentDigests
        private var request = ByteBuffer()
        private var id: UInt64 = 0
        private var remaining = 0
        private var offset = 0
        private var hasher = SHA256()
        private var isSending = false

        init(block: ByteBuffer, digests: SentDigests) {
            self.block = block
            self.digests = digests
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !isSending else { return }
            var bytes = unwrapInboundIn(data)
            request.writeBuffer(&bytes)
            guard let length = request.readInteger(as: UInt64.self), let id = request.readInteger(as: UInt64.self)
            else {
                request.moveReaderIndex(to: 0)
                return
            }
            self.id = id
            remaining = Int(length)
            offset = Int(id &* 7919 % UInt64(ByteSource.blockSize))
            isSending = true
            fill(context)
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            fill(context)
            context.fireChannelWritabilityChanged()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            isSending = false
            context.close(promise: nil)
        }

        private func fill(_ context: ChannelHandlerContext) {
            while isSending, remaining > 0, context.channel.isActive, context.channel.isWritable {
                let length = min(remaining, 64 * 1024)
                let chunk = block.getSlice(at: offset, length: length)!
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                offset = (offset + length) % ByteSource.blockSize
                remaining -= length
                context.write(wrapOutboundOut(chunk), promise: nil)
                context.flush()
            }
            guard isSending, remaining == 0 else { return }
            isSending = false
            digests.record(Array(hasher.finalize()), for: id)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in loopBound.value.close(promise: nil)
            }
        }
    }
}

/// One download through a SOCKS5 proxy (no authentication): greeting and CONNECT to the source in one write, the
/// request once the proxy has answered, then every byte counted and hashed until the source closes.
final class VerifiedDownload: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let sourcePort: Int
    private let length: Int
    private let id: UInt64
    private let done: EventLoopPromise<DownloadResult>
    private var reply = ByteBuffer()
    private var isConnected = false
    private var bytes = 0
    private var hasher = SHA256()

    /// The method selection (2 bytes) and the CONNECT reply with an IPv4 bound address (10 bytes).
    private static let replyLength = 12

    init(sourcePort: Int, length: Int, id: UInt64, done: EventLoopPromise<DownloadResult>) {
        self.sourcePort = sourcePort
        self.length = length
        self.id = id
        self.done = done
    }

    /// Connects to the SOCKS5 listener at `socksPort` on `loop` and downloads `length` bytes as download `id`.
    static func start(
        socksPort: Int, sourcePort: Int, length: Int, id: UInt64, on loop: any EventLoop
    ) -> EventLoopFuture<DownloadResult> {
        let done = loop.makePromise(of: DownloadResult.self)
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = VerifiedDownload(sourcePort: sourcePort, length: length, id: id, done: done)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: "127.0.0.1", port: socksPort)
            .whenFailure { done.fail($0) }
        return done.futureResult
    }

    func channelActive(context: ChannelHandlerContext) {
        let port = UInt16(sourcePort)
        var greeting = context.channel.allocator.buffer(capacity: 13)
        greeting.writeBytes([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF)])
        context.writeAndFlush(wrapOutboundOut(greeting), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var data = unwrapInboundIn(data)
        if !isConnected {
            reply.writeBuffer(&data)
            guard reply.readableBytes >= Self.replyLength else { return }
            let head = reply.readBytes(length: Self.replyLength)!
            guard head[0] == 5, head[1] == 0, head[2] == 5, head[3] == 0 else {
                done.fail(DownloadFailure(description: "SOCKS5 refused: \(head)"))
                context.close(promise: nil)
                return
            }
            isConnected = true
            var request = context.channel.allocator.buffer(capacity: 16)
            request.writeInteger(UInt64(length))
            request.writeInteger(id)
            context.writeAndFlush(wrapOutboundOut(request), promise: nil)
            data = reply
        }
        bytes += data.readableBytes
        data.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if isConnected {
            done.succeed(DownloadResult(bytes: bytes, digest: Array(hasher.finalize()), finished: .now()))
        } else {
            done.fail(DownloadFailure(description: "the proxy closed before CONNECT succeeded"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(DownloadFailure(description: "download \(id) after \(bytes) bytes: \(error)"))
        context.close(promise: nil)
    }
}
