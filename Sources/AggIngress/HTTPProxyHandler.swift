import AggProtocol
import NIOCore
import NIOHTTP1

/// Speaks HTTP/1.1 as a proxy (RFC 9110, RFC 9112) to a local application: `CONNECT host:port` becomes a tunnel,
/// absolute-form requests are forwarded to their origin, one at a time, over one upstream per request.
///
/// It sits behind `ByteToMessageHandler(HTTPRequestDecoder)`. Forwarded requests go to the connector's relay as
/// re-serialized bytes (origin-form, `Host` set, hop-by-hop headers dropped, `Connection: close`); the relay's writes
/// (the origin's response bytes) come back through this handler, which rewrites the response head and passes the body
/// untouched. Because the origin is told `Connection: close`, the upstream ending marks the end of the response: the
/// relay reports it with `close(mode: .output)`, which this handler consumes. That costs one upstream per request —
/// one SCTP stream, no extra handshake — and spares parsing response bodies. The client's connection stays open when
/// it asked for keep-alive and the response is self-delimiting; pipelined requests wait their turn.
///
/// While a forwarded request's upstream opens, its body waits here; past `maxPendingBody` bytes the handler stops
/// reading from the client until the upstream is open, so a large upload to a slow target holds at most that plus
/// one read in memory.
package final class HTTPProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// One forwarded request and its response.
    struct Exchange {
        var request: HTTPProxyMessages.ForwardRequest
        var keepAlive: Bool
        var requestEnded = false
        /// The response head gathered so far; nil once it has been relayed.
        var responseHead: ByteBuffer? = ByteBuffer()
        /// The response body runs to the end of the upstream, so the client's connection must close after it.
        var responseMustClose = false
    }

    enum State {
        /// Waiting for a request head; the header timer runs.
        case idle
        /// A CONNECT request's upstream is being opened; `requestEnded` once the decoder has delivered its end.
        case tunnelConnecting(requestEnded: Bool)
        /// The tunnel is open and the 200 written, but the decoder has yet to deliver the CONNECT request's end.
        case tunnelAwaitingEnd
        /// A forward request's upstream is being opened; its body waits in `pendingBody` (`pendingBodyBytes` long).
        case connecting(Exchange)
        /// The request body goes up, the response comes down.
        case forwarding(Exchange)
        /// Tunnel established or connection closing: nothing more is parsed.
        case done
    }

    /// Largest response head accepted from an origin.
    static let maxResponseHeadSize = 64 * 1024

    private let configuration: ProxyIngressConfiguration
    private let connector: any ProxyConnector
    private var state = State.idle
    private var pendingBody: [ByteBuffer] = []
    /// The bytes in `pendingBody`, whose limit is `ProxyIngressConfiguration.maxPendingBody`.
    private(set) var pendingBodyBytes = 0
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var pendingRead = false
    private var headerTimer: Scheduled<Void>?
    private var isRemoved = false

    init(configuration: ProxyIngressConfiguration, connector: any ProxyConnector) {
        self.configuration = configuration
        self.connector = connector
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.armHeaderTimer(context: context)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.isRemoved = true
        self.headerTimer?.cancel()
        self.headerTimer = nil
    }

    // MARK: - Requests

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.receive(context: context, part: self.unwrapInboundIn(data))
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        switch self.state {
        case .idle, .connecting, .forwarding, .tunnelConnecting, .tunnelAwaitingEnd:
            let status =
                parserError == .headerOverflow
                ? HTTPStatusLine(code: 431, reason: "Request Header Fields Too Large")
                : HTTPStatusLine(code: 400, reason: "Bad Request")
            self.respondAndClose(context: context, HTTPProxyMessages.errorResponse(status))
        case .done:
            context.close(promise: nil)
        }
    }

    package func read(context: ChannelHandlerContext) {
        if self.isHoldingReads {
            self.pendingRead = true
        } else {
            context.read()
        }
    }

    /// Reads wait while a tunnel's upstream opens, while a forwarded request's body waiting for its upstream is at
    /// its limit, and while a response is outstanding for a finished request.
    private var isHoldingReads: Bool {
        switch self.state {
        case .idle, .done: return false
        case .tunnelConnecting, .tunnelAwaitingEnd: return true
        case .connecting(let exchange):
            return exchange.requestEnded || self.pendingBodyBytes >= self.configuration.maxPendingBody
        case .forwarding(let exchange): return exchange.requestEnded
        }
    }

    /// Whether the next part belongs to the current state, rather than waiting in `queued`.
    private var acceptsParts: Bool {
        switch self.state {
        case .idle, .tunnelConnecting, .tunnelAwaitingEnd, .done: return true
        case .connecting(let exchange), .forwarding(let exchange): return !exchange.requestEnded
        }
    }

    private func receive(context: ChannelHandlerContext, part: HTTPServerRequestPart) {
        guard self.acceptsParts else {
            self.queued.append(part)
            return
        }
        switch self.state {
        case .idle:
            guard case .head(let head) = part else { return }
            self.receiveHead(context: context, head)
        case .tunnelConnecting:
            // RFC 9110 §9.3.6: "A CONNECT request message does not have content"; whatever follows is tunnel data
            // and stays in the decoder.
            if case .end = part { self.state = .tunnelConnecting(requestEnded: true) }
        case .tunnelAwaitingEnd:
            if case .end = part {
                self.state = .done
                self.leavePipelineForTunnel(context: context)
            }
        case .done:
            return
        case .connecting(var exchange):
            for bytes in self.encodeBody(part, framing: exchange.request.framing, context: context) {
                self.pendingBody.append(bytes)
                self.pendingBodyBytes += bytes.readableBytes
            }
            if case .end = part { exchange.requestEnded = true }
            self.state = .connecting(exchange)
        case .forwarding(var exchange):
            for bytes in self.encodeBody(part, framing: exchange.request.framing, context: context) {
                context.fireChannelRead(self.wrapInboundOut(bytes))
            }
            if case .end = part { exchange.requestEnded = true }
            self.state = .forwarding(exchange)
        }
    }

    private func receiveHead(context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        self.headerTimer?.cancel()
        self.headerTimer = nil
        guard HTTPProxyMessages.isAuthorized(head, users: self.configuration.users) else {
            self.configuration.onRefusal?(.proxyAuthentication)
            let status = HTTPStatusLine(code: 407, reason: "Proxy Authentication Required")
            let reply = HTTPProxyMessages.errorResponse(
                status, extraHeaders: ["Proxy-Authenticate: Basic realm=\"agg\""])
            self.respondAndClose(context: context, reply)
            return
        }
        if head.method == .CONNECT {
            // RFC 9112 §3.2.3: CONNECT carries authority-form, "host:port"; the port is required.
            guard let target = ProxyTarget(authority: Substring(head.uri), defaultPort: nil) else {
                self.respondAndClose(
                    context: context, HTTPProxyMessages.errorResponse(.init(code: 400, reason: "Bad Request")))
                return
            }
            self.state = .tunnelConnecting(requestEnded: false)
            self.openUpstream(context: context, target: target, initialData: nil, forwarding: false)
            return
        }
        let request: HTTPProxyMessages.ForwardRequest
        do {
            request = try HTTPProxyMessages.forwardRequest(head)
        } catch {
            self.respondAndClose(
                context: context, HTTPProxyMessages.errorResponse(.init(code: 400, reason: "Bad Request")))
            return
        }
        let proxyConnection = head.headers["proxy-connection"].map { $0.lowercased() }
        let keepAlive = head.isKeepAlive && !proxyConnection.contains("close")
        self.state = .connecting(Exchange(request: request, keepAlive: keepAlive))
        self.pendingBody = []
        self.pendingBodyBytes = 0
        let initialData = context.channel.allocator.buffer(bytes: request.head)
        self.openUpstream(context: context, target: request.target, initialData: initialData, forwarding: true)
    }

    /// A request body part in the framing chosen for the origin.
    private func encodeBody(
        _ part: HTTPServerRequestPart,
        framing: HTTPProxyMessages.BodyFraming,
        context: ChannelHandlerContext
    ) -> [ByteBuffer] {
        switch (part, framing) {
        case (.head, _):
            return []
        case (.body(let bytes), .chunked):
            guard bytes.readableBytes > 0 else { return [] }
            var chunk = context.channel.allocator.buffer(capacity: bytes.readableBytes + 12)
            chunk.writeString(String(bytes.readableBytes, radix: 16) + "\r\n")
            chunk.writeImmutableBuffer(bytes)
            chunk.writeString("\r\n")
            return [chunk]
        case (.body(let bytes), _):
            return [bytes]
        case (.end, .chunked):
            // Trailers are dropped: RFC 9110 §6.5.1 lets a recipient discard them.
            return [context.channel.allocator.buffer(string: "0\r\n\r\n")]
        case (.end, _):
            return []
        }
    }

    // MARK: - Upstream

    /// Opens the upstream of a CONNECT tunnel, or of a forwarded request (`forwarding`), whose failure must be
    /// answered with an HTTP status: the connector then waits for the target (`connectWaitingForTarget`).
    private func openUpstream(
        context: ChannelHandlerContext, target: ProxyTarget, initialData: ByteBuffer?, forwarding: Bool
    ) {
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        let opened =
            forwarding
            ? self.connector.connectWaitingForTarget(to: target, initialData: initialData, inbound: context.channel)
            : self.connector.connect(to: target, initialData: initialData, inbound: context.channel)
        opened
            .hop(to: context.eventLoop)
            .whenComplete { result in
                loopBoundSelf.value.upstreamOpened(context: loopBoundContext.value, result: result)
            }
    }

    private func upstreamOpened(context: ChannelHandlerContext, result: Result<Void, any Error>) {
        guard !self.isRemoved else { return }
        switch (self.state, result) {
        case (.tunnelConnecting(let requestEnded), .success):
            context.writeAndFlush(
                self.wrapOutboundOut(
                    context.channel.allocator.buffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n")),
                promise: nil
            )
            // The decoder must deliver the request's end to us, not to the relay, before we leave.
            if requestEnded {
                self.state = .done
                self.leavePipelineForTunnel(context: context)
            } else {
                self.state = .tunnelAwaitingEnd
            }
        case (.connecting(let exchange), .success):
            self.state = .forwarding(exchange)
            let body = self.pendingBody
            self.pendingBody = []
            self.pendingBodyBytes = 0
            for bytes in body {
                context.fireChannelRead(self.wrapInboundOut(bytes))
            }
            context.fireChannelReadComplete()
            // Reads held because the body reached its limit go on now, into the upstream's backpressure.
            if self.pendingRead, !self.isHoldingReads {
                self.pendingRead = false
                context.read()
            }
        case (.tunnelConnecting, .failure(let error)), (.connecting, .failure(let error)):
            self.respondAndClose(context: context, HTTPProxyMessages.errorResponse(error.asProxyFailure.httpStatus))
        case (.idle, _), (.forwarding, _), (.done, _), (.tunnelConnecting, _), (.connecting, _),
            (.tunnelAwaitingEnd, _):
            return
        }
    }

    /// Removes this handler, then the decoder, which hands the bytes after the CONNECT request to the relay.
    private func leavePipelineForTunnel(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        let hadPendingRead = self.pendingRead
        pipeline.removeHandler(context: context, promise: nil)
        if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
            pipeline.removeHandler(decoder, promise: nil)
        }
        if hadPendingRead {
            context.channel.read()
        }
    }

    // MARK: - Responses

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .forwarding(var exchange) = self.state else {
            context.write(data, promise: promise)
            return
        }
        var bytes = self.unwrapOutboundIn(data)
        guard var head = exchange.responseHead else {
            context.write(data, promise: promise)
            return
        }
        head.writeBuffer(&bytes)
        while let end = head.readableBytesView.firstRange(of: [13, 10, 13, 10]) {
            let length = end.upperBound - head.readerIndex
            let raw = head.readSlice(length: length)!
            guard let parsed = HTTPProxyMessages.parseResponseHead(raw.readableBytesView) else {
                promise?.fail(ChannelError.ioOnClosedChannel)
                self.respondAndClose(
                    context: context, HTTPProxyMessages.errorResponse(.init(code: 502, reason: "Bad Gateway")))
                return
            }
            if parsed.status < 200 {
                // 1xx: relayed as they come, then the final head follows.
                let interim = HTTPProxyMessages.clientResponseHead(parsed, keepAlive: exchange.keepAlive)
                context.write(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: interim)), promise: nil)
                continue
            }
            exchange.responseMustClose = !HTTPProxyMessages.isSelfDelimiting(
                parsed, requestWasHEAD: exchange.request.isHEAD)
            let keepAlive = exchange.keepAlive && !exchange.responseMustClose
            var out = context.channel.allocator.buffer(
                bytes: HTTPProxyMessages.clientResponseHead(parsed, keepAlive: keepAlive))
            out.writeBuffer(&head)
            exchange.responseHead = nil
            self.state = .forwarding(exchange)
            context.write(self.wrapOutboundOut(out), promise: promise)
            return
        }
        guard head.readableBytes <= Self.maxResponseHeadSize else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            self.respondAndClose(
                context: context, HTTPProxyMessages.errorResponse(.init(code: 502, reason: "Bad Gateway")))
            return
        }
        exchange.responseHead = head
        self.state = .forwarding(exchange)
        promise?.succeed()
    }

    package func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard case .forwarding(let exchange) = self.state, mode == .output else {
            context.close(mode: mode, promise: promise)
            return
        }
        // The relay's upstream has ended: so has the response.
        promise?.succeed()
        guard exchange.responseHead == nil else {
            self.respondAndClose(
                context: context, HTTPProxyMessages.errorResponse(.init(code: 502, reason: "Bad Gateway")))
            return
        }
        guard exchange.keepAlive, !exchange.responseMustClose, exchange.requestEnded else {
            self.state = .done
            context.flush()
            context.close(promise: nil)
            return
        }
        self.state = .idle
        context.flush()
        self.armHeaderTimer(context: context)
        // The relay leaves the pipeline right after this call returns; the next request waits until it has.
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBoundSelf.value.resume(context: loopBoundContext.value)
        }
    }

    private func resume(context: ChannelHandlerContext) {
        guard !self.isRemoved else { return }
        while self.acceptsParts, let part = self.queued.popFirst() {
            self.receive(context: context, part: part)
        }
        if self.pendingRead, !self.isHoldingReads {
            self.pendingRead = false
            context.read()
        }
    }

    // MARK: - Ending

    private func armHeaderTimer(context: ChannelHandlerContext) {
        self.headerTimer?.cancel()
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.headerTimer = context.eventLoop.scheduleTask(in: self.configuration.httpHeaderTimeout) {
            let handler = loopBoundSelf.value
            guard !handler.isRemoved, case .idle = handler.state else { return }
            handler.respondAndClose(
                context: loopBoundContext.value,
                HTTPProxyMessages.errorResponse(.init(code: 408, reason: "Request Timeout"))
            )
        }
    }

    private func respondAndClose(context: ChannelHandlerContext, _ reply: [UInt8]) {
        self.state = .done
        self.headerTimer?.cancel()
        self.headerTimer = nil
        self.queued.removeAll()
        self.pendingBody = []
        self.pendingBodyBytes = 0
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: reply)))
            .whenComplete { _ in loopBoundContext.value.close(promise: nil) }
    }
}
