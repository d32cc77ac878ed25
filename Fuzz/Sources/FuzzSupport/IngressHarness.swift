import AggIngress
import AggProtocol
import NIOCore
import NIOEmbedded

/// Runs one fuzz input through agg's ingress (protocol detection, SOCKS handshakes, HTTP proxy) on an
/// `EmbeddedChannel`, the way a local application's connection would, with a connector that plays the upstream.
///
/// The client's bytes arrive in pieces whose size the input chooses, so partial-input paths run too. Afterwards
/// the clock jumps past every timeout, which must close the channel, and the harness checks that what the proxy
/// wrote and forwarded stays proportional to what it was given.
public struct IngressHarness {
    /// What the input asks of the run besides the client's bytes.
    public struct Options {
        public var protocols: ProxyProtocols
        public var requireCredentials: Bool
        /// Nil: the upstream opens; else the failure the connector reports.
        public var failure: ProxyFailure?
        /// Bytes per inbound read (0: all at once).
        public var pieceSize: Int
        /// The upstream's reply to a forwarded request (HTTP), written once the upstream opens.
        public var upstreamReply: [UInt8]

        public init(
            protocols: ProxyProtocols, requireCredentials: Bool, failure: ProxyFailure?, pieceSize: Int,
            upstreamReply: [UInt8] = []
        ) {
            self.protocols = protocols
            self.requireCredentials = requireCredentials
            self.failure = failure
            self.pieceSize = pieceSize
            self.upstreamReply = upstreamReply
        }
    }

    /// Decodes the options from the input's first byte: bit 0 credentials, bits 1-3 a connector failure (0 = the
    /// upstream opens), bits 4-6 the piece size.
    public static func options(flags: UInt8, protocols: ProxyProtocols) -> Options {
        let failures = ProxyFailure.allCases
        let failureIndex = Int((flags >> 1) & 7)
        let failure = failureIndex == 0 ? nil : failures[(failureIndex - 1) % failures.count]
        let sizes = [0, 1, 2, 3, 7, 16, 64, 512]
        return Options(
            protocols: protocols, requireCredentials: flags & 1 != 0, failure: failure,
            pieceSize: sizes[Int((flags >> 4) & 7)])
    }

    public static func run(_ bytes: [UInt8], options: Options) {
        var configuration = ProxyIngressConfiguration()
        if options.requireCredentials {
            configuration.credentials = .init(username: "user", password: "pass")
        }
        let connector = FuzzConnector(failure: options.failure, reply: options.upstreamReply)
        let channel = EmbeddedChannel()
        do {
            try ProxyIngress.configure(
                channel: channel, protocols: options.protocols, configuration: configuration, connector: connector)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        } catch {
            fatalError("the ingress could not be set up: \(error)")
        }
        var written = 0
        var offset = 0
        let piece = options.pieceSize == 0 ? max(bytes.count, 1) : options.pieceSize
        while offset < bytes.count, channel.isActive {
            let end = min(bytes.count, offset + piece)
            // An error thrown here is the pipeline refusing input (e.g. a malformed HTTP head): expected.
            _ = try? channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
            offset = end
            written += drain(channel)
        }
        // Past every handshake and header timeout: whatever has not finished must be closed now.
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        written += drain(channel)
        let forwarded = connector.forwarded
        // Replies are short and fixed, and every upstream opened answers with the input's reply once: keep-alive
        // requests legitimately get one response each (a finding of 2026-11-25 was this bound counting the reply
        // once for 35 pipelined requests). The forwarded request is the client's bytes re-framed (a chunked body
        // piece of n bytes grows by its hex size and two CRLFs), so both stay proportional to the input.
        let upstreams = max(connector.relays.count, 1)
        let bound = 8 * bytes.count + 4 * options.upstreamReply.count * upstreams + 65536
        precondition(written <= bound, "the proxy wrote \(written) bytes for \(bytes.count) bytes of input")
        precondition(
            forwarded <= 8 * bytes.count + 65536,
            "the proxy forwarded \(forwarded) bytes for \(bytes.count) bytes of input")
        // One upstream per request at most: a request head is at least "GET http://a/ HTTP/1.1\r\n\r\n".
        precondition(connector.relays.count <= bytes.count / 20 + 1, "more upstreams than requests")
        _ = try? channel.finish()
    }

    /// Reads everything the proxy wrote towards the client; returns the byte count.
    static func drain(_ channel: EmbeddedChannel) -> Int {
        var count = 0
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
            count += buffer.readableBytes
        }
        return count
    }
}

/// A connector that opens (or fails) at once and installs a `FuzzRelay` as the upstream.
final class FuzzConnector: ProxyConnector, @unchecked Sendable {
    let failure: ProxyFailure?
    let reply: [UInt8]
    var relays: [FuzzRelay] = []

    init(failure: ProxyFailure?, reply: [UInt8]) {
        self.failure = failure
        self.reply = reply
    }

    var forwarded: Int { relays.reduce(0) { $0 + $1.received } }

    func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void> {
        if let failure { return inbound.eventLoop.makeFailedFuture(failure) }
        let relay = FuzzRelay(initial: initialData?.readableBytes ?? 0, reply: reply)
        relays.append(relay)
        do {
            try inbound.pipeline.syncOperations.addHandler(relay)
        } catch {
            return inbound.eventLoop.makeFailedFuture(error)
        }
        return inbound.eventLoop.makeSucceededFuture(())
    }
}

/// The upstream's stand-in: counts the bytes sent upstream and, once the request has begun, answers with the
/// input's reply and ends (as an origin that closes after its response).
final class FuzzRelay: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var received: Int
    let reply: [UInt8]
    var replied = false

    init(initial: Int, reply: [UInt8]) {
        self.received = initial
        self.reply = reply
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard !reply.isEmpty else { return }
        // The reply comes on a later loop tick, as it would from the network.
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBoundSelf.value.answer(context: loopBoundContext.value)
        }
    }

    func answer(context: ChannelHandlerContext) {
        guard !replied, context.channel.isActive else { return }
        replied = true
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: reply)), promise: nil)
        context.close(mode: .output, promise: nil)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
    }
}
