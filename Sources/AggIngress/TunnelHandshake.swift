import AggProtocol
import NIOCore
import SCTPEngine

/// What a tunnel handshake state machine asks its handler to do after it has looked at the input.
enum TunnelHandshakeAction: Equatable {
    /// The input so far is a valid prefix: wait for more bytes.
    case needMoreData
    /// Write these bytes and feed the machine again (the handshake goes on).
    case reply([UInt8])
    /// Write these bytes (if any), then close: the handshake failed.
    case replyAndClose([UInt8])
    /// Write these bytes, then close: a defence refused the client (counted as `Refusal`).
    case refuse([UInt8], Refusal)
    /// The request is complete: open the upstream. Bytes left in the buffer are application data.
    case connect(ProxyTarget)
    /// SOCKS5 UDP ASSOCIATE (RFC 1928 §7): set up a UDP relay for the client, which says it will send from
    /// `source` (zeros: not known yet). The TCP connection then only marks the relay's lifetime.
    case associateUDP(ProxyTarget)
    /// The client speaks a protocol other handlers serve (HTTP): install them and leave, passing every byte on
    /// (nothing was consumed).
    case handOver
}

/// A pure SOCKS-style handshake: bytes in, actions out; the handler performs the actions.
protocol TunnelHandshake: Sendable {
    /// Consumes what it can of `buffer`. Incomplete input leaves the reader index where the incomplete message starts.
    mutating func receive(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction
    /// The reply that grants the request.
    func successReply() -> [UInt8]
    /// The reply that reports `failure`.
    func failureReply(_ failure: ProxyFailure) -> [UInt8]
    /// Whether the machine is fed once as soon as the connection is up, before any byte arrives (a transparent
    /// connection knows its target from the socket; the client may be waiting for the server to speak first).
    var connectsAtOnce: Bool { get }
}

extension TunnelHandshake {
    var connectsAtOnce: Bool { false }
}

/// Runs one `TunnelHandshake` on a channel: gathers partial input, calls the connector, writes the reply, and on
/// success leaves the pipeline so the connector's relay carries the raw bytes.
///
/// Bytes that follow the request in the same read go to the connector as `initialData`; bytes that arrive while it
/// connects are held and passed on when the handler leaves. Reading goes on while connecting until such bytes
/// arrive, then stops, so that hold is bounded by one read. A client that waits for the reply, as SOCKS clients do,
/// sends nothing meanwhile: its socket's read interest then stays as it is, where stopping and resuming reads cost
/// two `epoll_ctl` calls per connection. A handshake that hands the connection over (HTTP after protocol detection) has the handlers of
/// `handOver` installed after this one, which then leaves with the deadline cancelled.
final class TunnelHandshakeHandler<Handshake: TunnelHandshake>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        case handshaking
        case connecting
        case removing
        case failed
        /// A UDP relay serves the client; input is discarded until the connection closes.
        case associated
    }

    private var handshake: Handshake
    /// `handshake.connectsAtOnce`, read once: in this generic class each read copies the handshake.
    private let connectsAtOnce: Bool
    private let connector: any ProxyConnector
    private let onRefusal: (@Sendable (Refusal) -> Void)?
    /// When the handshake must be done: the connection's accept time plus the handshake timeout, so a client
    /// dribbling bytes gains nothing from the protocol being detected part-way.
    private let deadline: NIODeadline
    /// The listener's deadline queue on this loop, which closes the channel at `deadline`.
    private let deadlines: HandshakeDeadlines
    /// The channel's entry in `deadlines`; nil once cancelled.
    private var deadlineEntry: HandshakeDeadline?
    /// Makes the handlers that take a handed-over connection (nil: a hand-over closes the connection).
    private let handOver: (@Sendable () -> [any ChannelHandler])?
    private var state = State.handshaking
    private var buffer: ByteBuffer?
    private var pendingRead = false

    init(
        handshake: Handshake, connector: any ProxyConnector, deadline: NIODeadline, deadlines: HandshakeDeadlines,
        onRefusal: (@Sendable (Refusal) -> Void)? = nil, handOver: (@Sendable () -> [any ChannelHandler])? = nil
    ) {
        self.handshake = handshake
        self.connectsAtOnce = handshake.connectsAtOnce
        self.connector = connector
        self.deadline = deadline
        self.deadlines = deadlines
        self.onRefusal = onRefusal
        self.handOver = handOver
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.deadlineEntry = self.deadlines.add(context.channel, deadline: self.deadline)
        self.startIfConnectingAtOnce(context: context)
    }

    /// The handshake is over (done, or the handler leaves): the deadline no longer applies.
    private func cancelDeadline() {
        if let entry = self.deadlineEntry {
            self.deadlineEntry = nil
            self.deadlines.cancel(entry)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        self.startIfConnectingAtOnce(context: context)
    }

    /// Feeds a `connectsAtOnce` handshake an empty buffer once, on the first of `handlerAdded` (channel already
    /// active) or `channelActive`.
    private func startIfConnectingAtOnce(context: ChannelHandlerContext) {
        guard self.connectsAtOnce, self.state == .handshaking, self.buffer == nil,
            context.channel.isActive
        else { return }
        self.buffer = context.channel.allocator.buffer(capacity: 0)
        self.advance(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if case .connecting = self.state {
            self.state = .failed
        }
        self.cancelDeadline()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        switch self.state {
        case .handshaking:
            self.hold(bytes)
            self.advance(context: context)
        case .connecting, .removing:
            self.hold(bytes)
        case .failed, .associated:
            break
        }
    }

    /// Adds `bytes` to the input held; they become it when nothing is held (a SOCKS request read after its
    /// greeting was consumed), without a copy.
    private func hold(_ bytes: ByteBuffer) {
        if self.buffer == nil || self.buffer!.readableBytes == 0 {
            self.buffer = bytes
        } else {
            var bytes = bytes
            self.buffer!.writeBuffer(&bytes)
        }
    }

    func read(context: ChannelHandlerContext) {
        switch self.state {
        case .connecting where self.buffer != nil:
            // Bytes arrived while connecting: they are held, and no more is read until the handler leaves.
            self.pendingRead = true
        case .connecting, .handshaking, .removing, .failed, .associated:
            context.read()
        }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        self.state = .removing
        if let buffer = self.buffer, buffer.readableBytes > 0 {
            self.buffer = nil
            context.fireChannelRead(self.wrapInboundOut(buffer))
            context.fireChannelReadComplete()
        }
        if self.pendingRead {
            self.pendingRead = false
            context.read()
        }
        context.leavePipeline(removalToken: removalToken)
    }

    // MARK: - Driving the handshake

    private func advance(context: ChannelHandlerContext) {
        while self.state == .handshaking, var input = self.buffer {
            let action = self.handshake.receive(&input)
            self.buffer = input
            switch action {
            case .needMoreData:
                self.buffer?.discardReadBytes()
                return
            case .reply(let bytes):
                context.writeAndFlush(
                    Self.outbound(bytes, context), promise: nil)
            case .replyAndClose(let bytes):
                self.fail(context: context, reply: bytes)
            case .refuse(let bytes, let refusal):
                self.onRefusal?(refusal)
                self.fail(context: context, reply: bytes)
            case .connect(let target):
                self.connect(context: context, target: target)
            case .associateUDP(let source):
                self.associateUDP(context: context, source: source)
            case .handOver:
                self.handOver(context: context)
            }
        }
    }

    /// Installs the handlers that serve the connection from here on and leaves; they get every byte read so far.
    private func handOver(context: ChannelHandlerContext) {
        guard let handlers = self.handOver?() else {
            self.fail(context: context, reply: [])
            return
        }
        self.cancelDeadline()
        do {
            try context.pipeline.syncOperations.addHandlers(handlers, position: .after(self))
        } catch {
            self.fail(context: context, reply: [])
            return
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func connect(context: ChannelHandlerContext, target: ProxyTarget) {
        self.state = .connecting
        var initialData: ByteBuffer?
        if let rest = self.buffer, rest.readableBytes > 0 {
            initialData = rest
        }
        self.buffer = nil
        // On the channel's loop, at once or later: no future, no loop-bound boxes.
        self.connector.connect(to: target, initialData: initialData, inbound: context.channel) { result in
            self.connectDone(context: context, result: result)
        }
    }

    private func associateUDP(context: ChannelHandlerContext, source: ProxyTarget) {
        guard self.connector.supportsUDPAssociate else {
            self.fail(context: context, reply: SOCKS5Handshake.reply(SOCKS5Handshake.replyCommandNotSupported))
            return
        }
        self.state = .connecting
        self.buffer = nil
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.connector.associateUDP(expectedSource: source, control: context.channel)
            .hop(to: context.eventLoop)
            .whenComplete { result in
                loopBoundSelf.value.associateDone(context: loopBoundContext.value, result: result)
            }
    }

    private func associateDone(context: ChannelHandlerContext, result: Result<SocketAddress, any Error>) {
        guard case .connecting = self.state else { return }
        switch result {
        case .success(let bound):
            self.cancelDeadline()
            self.state = .associated
            let relay = SCTPSocketAddress(bound) ?? SCTPSocketAddress(ip: .anyV4, port: 0)
            let reply = SOCKS5Handshake.reply(0x00, bound: relay)
            context.writeAndFlush(Self.outbound(reply, context), promise: nil)
            if self.pendingRead {
                self.pendingRead = false
                context.read()
            }
        case .failure(let error):
            self.fail(context: context, reply: self.handshake.failureReply(error.asProxyFailure))
        }
    }

    private func connectDone(context: ChannelHandlerContext, result: Result<Void, any Error>) {
        guard case .connecting = self.state else { return }
        switch result {
        case .success:
            self.cancelDeadline()
            let reply = self.handshake.successReply()
            if !reply.isEmpty {
                context.writeAndFlush(
                    Self.outbound(reply, context), promise: nil)
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .failure(let error):
            self.fail(context: context, reply: self.handshake.failureReply(error.asProxyFailure))
        }
    }

    /// `bytes` as a write: a `NIOAny` of a concrete `ByteBuffer`, where `wrapOutboundOut` of this generic class
    /// looks its types up at run time on every call.
    private static func outbound(_ bytes: [UInt8], _ context: ChannelHandlerContext) -> NIOAny {
        NIOAny(context.channel.allocator.buffer(bytes: bytes))
    }

    private func fail(context: ChannelHandlerContext, reply: [UInt8]) {
        self.state = .failed
        self.buffer = nil
        if reply.isEmpty {
            context.close(promise: nil)
        } else {
            let closeContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(Self.outbound(reply, context))
                .whenComplete { _ in closeContext.value.close(promise: nil) }
        }
    }
}
