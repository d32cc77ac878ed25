import NIOCore
import NIOPosix
import NIOSOCKS

/// The demo's self-test: a download through the demo's own SOCKS5 listener (so through both paths of its
/// association and its aggserver) from a local TCP source that sends as fast as it may, for a few seconds. It
/// runs on its own event loop, so the source and the sink do not take turns with the client and the server.
enum DemoMeasurement {
    /// What one download got.
    struct Result: Sendable {
        var bytes: Int
        var seconds: Double

        /// Payload bits per second.
        var goodput: Double { seconds > 0 ? Double(bytes) * 8 / seconds : 0 }
    }

    /// Failures of the measurement itself, with what went wrong.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts a source on 127.0.0.1 (any free port), downloads from it through the SOCKS5 proxy at
    /// `socksPort` for `duration`, and returns the bytes and the time from the first byte to the last.
    static func download(socksPort: Int, duration: TimeAmount, on group: any EventLoopGroup) throws -> Result {
        let source = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Source()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? source.close().wait() }
        guard let target = source.localAddress else { throw Failure(description: "the source has no address") }

        let eventLoop = group.next()
        let done = eventLoop.makePromise(of: Result.self)
        let sink = try ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SOCKSClientHandler(targetAddress: .address(target)))
                    try channel.pipeline.syncOperations.addHandler(Sink(duration: duration, done: done))
                }
            }
            .connect(host: "127.0.0.1", port: socksPort).wait()
        // The sink closes itself after `duration` of data; this bounds a download that never starts.
        let timeout = eventLoop.scheduleTask(in: duration + .seconds(10)) {
            done.fail(
                Failure(description: "no data through the proxy within \(duration.nanoseconds / 1_000_000_000 + 10) s"))
            sink.close(promise: nil)
        }
        defer { timeout.cancel() }
        return try done.futureResult.wait()
    }

    /// Sends the same 256 KiB block again and again while the connection is writable, until it closes. The block's
    /// storage is shared by every write: nothing is copied per write.
    final class Source: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var block: ByteBuffer?

        func channelActive(context: ChannelHandlerContext) {
            var block = context.channel.allocator.buffer(capacity: 256 * 1024)
            block.writeRepeatingByte(0x61, count: 256 * 1024)
            self.block = block
            fill(context)
            context.fireChannelActive()
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            fill(context)
            context.fireChannelWritabilityChanged()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        private func fill(_ context: ChannelHandlerContext) {
            guard let block else { return }
            while context.channel.isActive && context.channel.isWritable {
                context.write(wrapOutboundOut(block), promise: nil)
                context.flush()
            }
        }
    }

    /// Counts the bytes that arrive after the proxy handshake; `duration` after the first one it closes the
    /// connection and completes `done`.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let duration: TimeAmount
        private let done: EventLoopPromise<Result>
        private var bytes = 0
        private var first: NIODeadline?

        init(duration: TimeAmount, done: EventLoopPromise<Result>) {
            self.duration = duration
            self.done = done
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let count = unwrapInboundIn(data).readableBytes
            if first == nil, count > 0 {
                first = .now()
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.assumeIsolated().scheduleTask(in: duration) { [self] in
                    finish(loopBound.value)
                }
            }
            bytes += count
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.fail(Failure(description: "the connection through the proxy closed after \(bytes) bytes"))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            done.fail(Failure(description: "the download through the proxy failed: \(error)"))
            context.close(promise: nil)
        }

        private func finish(_ context: ChannelHandlerContext) {
            let seconds = first.map { Double((NIODeadline.now() - $0).nanoseconds) / 1e9 } ?? 0
            done.succeed(Result(bytes: bytes, seconds: seconds))
            context.close(promise: nil)
        }
    }
}
