import AggIngress
import AggProtocol
import AggTransport
import Logging
import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who keeps a `StreamSessionHost`'s session inside a state machine of its own (aggserver's `ServerSession`,
/// aggclient's `ClientSession`): the host reaches the session in place through it, and leaves the performing of
/// actions and the timer to it.
protocol StreamSessionHolder: AnyObject {
    /// Runs `body` on the session in place; nil (and `body` not run) once the holder dropped it.
    func withStreams<R>(_ body: (inout StreamSession) -> R) -> R?
    /// Performs every action pending, the session's through `StreamSessionHost.perform`, then re-arms the holder's
    /// one timer.
    func performActions()
}

/// The NIO side of one association's `StreamSession`: feeds the TCP channels' events to the session, which lives
/// in a `StreamSessionHolder` (aggserver's `ServerSession`, aggclient's `ClientSession`), and performs the
/// session's actions on the channels and the SCTP driver when the holder hands them over. The holder feeds the
/// association's messages, performs its session's actions and keeps the one timer. Nothing is decided here.
/// Confined to the driver's event loop.
final class StreamSessionHost {
    let driver: SCTPDriver
    let association: SCTPAssociationID
    let role: StreamState.Role
    let logger: Logger
    /// The session's keeper.
    private weak var holder: (any StreamSessionHolder)?

    /// Server: connect to the target for a new connection, then call `targetConnected` or `targetFailed`.
    var onConnect: ((ConnectionID, StreamTarget) -> Void)?
    /// No stream was open for the association idle timeout: the owner shuts the association down, or calls
    /// `restartIdleClock` to keep it.
    var onIdle: (() -> Void)?

    /// The TCP channel of each connection (the application's on the client, also before the relay joins it; the
    /// target's on the server), and the relay handler once it is in the pipeline.
    private var channels = ConnectionMap<(channel: any Channel, handler: StreamChannelHandler?)>()
    /// Client: the application's answer for each connection whose OPEN-RESULT is pending; it carries whether the
    /// answer came early (`StreamSession.open`), before the OPEN-RESULT.
    private var openPromises = ConnectionMap<EventLoopPromise<Bool>>()
    /// Client: connections that wait for a stream.
    private var waiting: [UInt64: PendingOpen] = [:]
    /// Connections written to and not yet flushed: flushed together at the end of the event loop's turn, so the
    /// messages one batch of datagrams delivers to a connection leave in one system call, not one each (and
    /// earlier, before DATA that would take the association past its buffered-bytes cap: `prepareToReceive`).
    private var unflushed: [StreamChannelHandler] = []
    private var isFlushScheduled = false
    /// The marker `writeMarker` writes: a copy of one empty buffer, not a new one each time.
    private let emptyBuffer = ByteBuffer()
    /// The room the association's send queue has, which sizes its connections' reads (`RelayReadAllocator`).
    let sendRoom: SendRoom

    private struct PendingOpen {
        let target: StreamTarget
        let initialData: ByteBuffer?
        let inbound: any Channel
        /// Overrides the session's `earlyReply` (the transparent listener's connections).
        let earlyReply: EarlyReply?
        let promise: EventLoopPromise<Bool>
    }

    /// Hosts the session `holder` keeps; the holder performs the actions and keeps the timer.
    init(driver: SCTPDriver, association: SCTPAssociationID, holder: any StreamSessionHolder) {
        self.driver = driver
        self.association = association
        self.holder = holder
        // What was read and not sent: in the engine's send queue, or in the session waiting for credit.
        let unsentReads = holder.withStreams { $0.unsentReads }
        sendRoom = SendRoom(sendBuffer: driver.endpoint.configuration.sendBufferSize) {
            driver.queuedAmount(association) + (unsentReads?.bytes ?? 0)
        }
        role = holder.withStreams { $0.role } ?? .server
        logger = holder.withStreams { $0.logger } ?? Logger(label: "agg.streams")
        holder.withStreams { session in
            session.streamTakesMore = { [unowned driver] stream in driver.isWritable(association, stream: stream) }
            session.readRoom = { [sendRoom] in sendRoom.readRoom }
            session.unsentBytes = { [sendRoom] in sendRoom.unsent }
            session.sendBuffer = sendRoom.sendBuffer
            session.associationWritable = { [unowned driver] in driver.isWritable(association) }
        }
    }

    /// Runs `body` on the session in place; nil once it is gone (the holder dropped it).
    @discardableResult
    private func withSession<R>(_ body: (inout StreamSession) -> R) -> R? {
        holder?.withStreams(body)
    }

    var eventLoop: any EventLoop { driver.eventLoop }
    var activeStreams: Int { withSession { $0.activeStreams } ?? 0 }
    var streamLimit: Int { withSession { $0.table.streamLimit } ?? 0 }
    var streamsOpened: Int { withSession { $0.streamsOpened } ?? 0 }
    var bytesSent: Int { withSession { $0.bytesSent } ?? 0 }
    var bytesReceived: Int { withSession { $0.bytesReceived } ?? 0 }
    var bufferedBytes: Int { withSession { $0.bufferedBytes } ?? 0 }
    /// Bytes read from the sockets that wait in the session for a stream's credit (`StreamSession.unsentReads`).
    var unsentReadBytes: Int { withSession { $0.unsentReads.bytes } ?? 0 }

    // MARK: - Inputs from the association

    /// Before a message on stream 1 or above reaches the session in the holder's machine. Bytes written this turn
    /// and not yet flushed count as buffered, and DATA that would take the association past its cap resets the
    /// stream holding the most: before such a message they go to their sockets, so only bytes a socket did not
    /// take can make a stream the one reset, never a fast download's share of the turn.
    func prepareToReceive(_ message: SCTPMessage) {
        if !unflushed.isEmpty,
            withSession({ $0.wouldExceedBufferedLimit(receiving: message.payload.readableBytes) }) == true
        {
            flushUnflushed()
        }
    }

    /// The association's send buffer drained.
    func resumeWriting() {
        withSession { $0.handleWritable() }
        performActions()
    }

    /// Something other than a stream (a UDP flow) used the association.
    func restartIdleClock() {
        withSession { $0.restartIdleClock(now: .now()) }
    }

    // MARK: - Client: opening

    /// Opens a stream for the application's connection `inbound` and completes `promise` with the OPEN-RESULT, or
    /// with `true` as soon as the OPEN leaves when the session answers early (the relay then joins the channel at
    /// once and the session counts the outcome), waiting up to `wait` for a free stream when all are in use (see
    /// `StreamSession.requestStream`).
    func open(
        _ target: StreamTarget, initialData: ByteBuffer?, inbound: any Channel, earlyReply: EarlyReply? = nil,
        waitingUpTo wait: TimeAmount, queueLimit: Int, promise: EventLoopPromise<Bool>
    ) {
        let pending = PendingOpen(
            target: target, initialData: initialData, inbound: inbound, earlyReply: earlyReply, promise: promise)
        let request =
            withSession { $0.requestStream(waitingUpTo: wait, queueLimit: queueLimit, now: .now()) }
            ?? .refused(.serverUnavailable)
        switch request {
        case .granted(let connection): start(connection, pending)
        case .waiting(let waiter): waiting[waiter] = pending
        case .refused(let failure): promise.fail(failure)
        }
        performActions()
    }

    private func start(_ connection: ConnectionID, _ pending: PendingOpen) {
        guard pending.inbound.isActive else {
            // The application gave up while it waited: the stream is free again at once.
            withSession { $0.cancelBeforeOpen(connection) }
            pending.promise.fail(ProxyFailure.generalFailure)
            return
        }
        channels[connection] = (pending.inbound, nil)
        openPromises[connection] = pending.promise
        let early = withSession {
            $0.open(
                connection, to: pending.target, initialData: pending.initialData, earlyReply: pending.earlyReply,
                requester: pending.inbound.remoteAddress.flatMap { SCTPSocketAddress($0)?.ip }, now: .now())
        }
        if early == true { attach(connection, early: true) }
    }

    /// OPEN-RESULT ok, or an OPEN answered early: the relay joins the application's pipeline, then the
    /// application learns it.
    private func attach(_ connection: ConnectionID, early: Bool = false) {
        guard let promise = openPromises.removeValue(forKey: connection) else { return }
        guard let channel = channels[connection]?.channel, channel.isActive else {
            promise.fail(ProxyFailure.generalFailure)
            channels[connection] = nil
            withSession { $0.handleAttachFailed(connection, .cancelled, text: "the local connection went away") }
            return
        }
        do {
            // The application's FIN must reach us as an event, not close the channel.
            let options = channel.syncOptions
            try options?.setOption(.allowRemoteHalfClosure, value: true)
            // Reads sized by the association's room, one per readable event (`TCPReads.relayReadsPerEvent`).
            let permit = ReadPermit()
            try options?.setOption(.recvAllocator, value: RelayReadAllocator.ingress(sendRoom, permit: permit))
            try options?.setOption(.maxMessagesPerRead, value: UInt(TCPReads.relayReadsPerEvent))
            try install(connection, on: channel, options: options, permit: permit)
        } catch {
            promise.fail(ProxyFailure.generalFailure)
            channels[connection] = nil
            withSession { $0.handleAttachFailed(connection, .internalError, text: "cannot install the relay") }
            return
        }
        promise.succeed(early)
        withSession { $0.handleAttached(connection) }
    }

    /// `options` are the channel's synchronous options (the handler keeps them: each `syncOptions` read looks
    /// their generic type up at run time); `permit` is the one the channel's `RelayReadAllocator` reads.
    private func install(
        _ connection: ConnectionID, on channel: any Channel, options: NIOSynchronousChannelOptions?,
        permit: ReadPermit
    ) throws {
        let handler = StreamChannelHandler(connection: connection, host: self, options: options, permit: permit)
        channels[connection] = (channel, handler)
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    // MARK: - Server: targets

    /// The target accepted: OPEN-RESULT ok, then the relay joins the target's channel. `permit` is the one the
    /// channel's `RelayReadAllocator` reads.
    func targetConnected(_ connection: ConnectionID, channel: any Channel, permit: ReadPermit) {
        guard withSession({ $0.handleTargetConnected(connection) }) == true else {
            channel.close(promise: nil)  // The client reset the stream meanwhile.
            performActions()
            return
        }
        do {
            try install(connection, on: channel, options: channel.syncOptions, permit: permit)
        } catch {
            withSession { $0.handleAttachFailed(connection, .internalError, text: "cannot install the relay") }
        }
        performActions()
    }

    func targetFailed(_ connection: ConnectionID, _ error: EgressError) {
        withSession { $0.handleTargetFailed(connection, error) }
        performActions()
    }

    // MARK: - Inputs from the relay handlers

    /// `allowed`: whether the session allowed the read (`ReadPermit`), or NIO drained the socket at its peer's FIN.
    fileprivate func read(_ connection: ConnectionID, _ bytes: ByteBuffer, allowed: Bool) {
        withSession { $0.handleRead(connection, bytes, allowed: allowed, now: .now()) }
        performActions()
    }

    fileprivate func readRequested(_ connection: ConnectionID) {
        withSession { $0.handleReadRequested(connection, now: .now()) }
        performActions()
    }

    fileprivate func inputEnded(_ connection: ConnectionID) {
        withSession { $0.handleInputEnded(connection) }
        performActions()
    }

    fileprivate func handlerRemoved(_ connection: ConnectionID) {
        channels[connection] = nil
        withSession { $0.handleRemoved(connection) }
        performActions()
    }

    fileprivate func socketClosed(_ connection: ConnectionID) {
        channels[connection] = nil
        withSession { $0.handleSocketClosed(connection) }
        performActions()
    }

    fileprivate func socketError(_ connection: ConnectionID, _ error: any Error) {
        withSession { $0.handleSocketError(connection, "\(error)") }
        performActions()
    }

    // MARK: - Actions

    /// Has the holder perform every action pending; a call while the holder's loop runs (a write that fails at
    /// once) leaves them to that loop. Kept out of line as it was when the host ran its own loop: Swift 6.3.1's
    /// optimizer failed SIL verification when that loop was inlined into `AggClientService.openStream` (a compiler
    /// crash in release builds only).
    @inline(never)
    private func performActions() {
        holder?.performActions()
    }

    /// Performs one of the session's actions on the channels and the association.
    func perform(_ action: StreamSessionAction) {
        switch action {
        case .send(let message, let stream):
            do {
                try driver.send(message.encode(), on: association, stream: stream, ppid: message.ppid)
            } catch {
                logger.debug("send failed", metadata: ["stream": "\(stream)", "error": "\(error)"])
            }
        case .write(let bytes, let connection):
            write(bytes, to: connection)
        case .read(let connection):
            guard let handler = channels[connection]?.handler, let context = handler.context else { break }
            handler.permit.isOpen = true
            context.read()
        case .endOutput(let connection):
            endOutput(connection)
        case .close(let connection, let abortively):
            close(connection, abortively: abortively)
        case .opened(let connection):
            attach(connection)
        case .openFailed(let connection, let failure):
            channels[connection] = nil
            openPromises.removeValue(forKey: connection)?.fail(failure)
        case .connect(let connection, let target):
            onConnect?(connection, target)
        case .streamGranted(let waiter, let connection):
            if let pending = waiting.removeValue(forKey: waiter) {
                start(connection, pending)
            } else {
                withSession { $0.cancelBeforeOpen(connection) }
            }
        case .streamRefused(let waiter, let failure):
            waiting.removeValue(forKey: waiter)?.promise.fail(failure)
        case .idle:
            onIdle?()
        case .abortAssociation, .drained:
            // The holder's machine turns these into its own actions (abort, drained): never handed over.
            break
        }
    }

    /// Hands `bytes` to the connection's channel without a promise: the handler's `writes` learns when they are
    /// done at the flush (`settleWrites`).
    private func write(_ bytes: ByteBuffer, to connection: ConnectionID) {
        let count = bytes.readableBytes
        guard let handler = channels[connection]?.handler, let context = handler.context else {
            withSession { $0.handleWriteCompleted(connection, bytes: count, succeeded: false) }
            return
        }
        handler.writes.handed(bytes)
        context.write(NIOAny(bytes), promise: nil)
        if !handler.needsFlush {
            handler.needsFlush = true
            unflushed.append(handler)
        }
        if !isFlushScheduled {
            isFlushScheduled = true
            // Tasks run once the loop has handled every readable socket of this wake-up.
            eventLoop.assumeIsolated().execute { [self] in flushWritten() }
        }
    }

    /// After `handler`'s channel was flushed: the writes it no longer holds are done, and the session learns of
    /// each (crediting the peer as a promise per write did). What the socket did not take yet is reported when a
    /// marker written after it completes. A channel no longer active failed its writes, as NIO fails their
    /// promises.
    private func settleWrites(_ handler: StreamChannelHandler) {
        guard !handler.writes.isEmpty else { return }
        let connection = handler.connection
        guard let context = handler.context, context.channel.isActive else {
            handler.writes.failAll { write in
                withSession { $0.handleWriteCompleted(connection, bytes: write.readableBytes, succeeded: false) }
            }
            performActions()
            return
        }
        // A channel that cannot say what it holds is taken to hold everything: the marker tells.
        let buffered =
            (try? handler.options?.getOption(.bufferedWritableBytes)) ?? handler.writes.pendingBytes
        var reported = false
        let needsMarker = handler.writes.flushed(channelHolds: buffered) { write in
            writeSucceeded(write, on: connection)
            reported = true
        }
        if needsMarker { writeMarker(handler, context: context) }
        if reported { performActions() }
    }

    /// A write the socket took: the session credits the peer for it, and its buffer, which NIO has let go of, goes
    /// back to the engine for the next message it reassembles.
    private func writeSucceeded(_ write: ByteBuffer, on connection: ConnectionID) {
        withSession { $0.handleWriteCompleted(connection, bytes: write.readableBytes, succeeded: true) }
        driver.recycleMessageBuffer(write)
    }

    /// An empty write after everything handed to `handler`'s channel, with the one promise: it completes once the
    /// socket has taken all of it (or fails with the writes before it).
    private func writeMarker(_ handler: StreamChannelHandler, context: ChannelHandlerContext) {
        handler.writes.markerWritten()
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            let connection = handler.connection
            if case .success = result {
                handler.writes.markerCompleted { write in writeSucceeded(write, on: connection) }
                // Writes handed after the marker and flushed already wait for the next one; unflushed ones are
                // settled at their flush.
                if !handler.writes.isEmpty, !handler.needsFlush {
                    settleWrites(handler)
                    return
                }
            } else {
                handler.writes.failAll { write in
                    withSession { $0.handleWriteCompleted(connection, bytes: write.readableBytes, succeeded: false) }
                }
            }
            performActions()
        }
        context.writeAndFlush(NIOAny(emptyBuffer), promise: promise)
    }

    /// The end of the loop's turn: flushes every connection written to since the last flush.
    private func flushWritten() {
        isFlushScheduled = false
        flushUnflushed()
    }

    /// Flushes every connection written to since the last flush. A write completing during a flush may write
    /// again: that connection joins the next flush.
    private func flushUnflushed() {
        var handlers: [StreamChannelHandler] = []
        swap(&handlers, &unflushed)
        for handler in handlers where handler.needsFlush {
            handler.needsFlush = false
            handler.context?.flush()
            settleWrites(handler)
        }
        if unflushed.isEmpty {
            handlers.removeAll(keepingCapacity: true)
            swap(&handlers, &unflushed)
        }
    }

    /// What was written to `handler`'s connection leaves before the connection's output ends or it closes.
    private func flushNow(_ handler: StreamChannelHandler?) {
        guard let handler, handler.needsFlush else { return }
        handler.needsFlush = false
        handler.context?.flush()
        settleWrites(handler)
    }

    /// Half-closes the socket; on an HTTP forward request the relay leaves the pipeline instead (the proxy handler
    /// takes the output's end as the end of one response, and the next request gets a stream of its own).
    private func endOutput(_ connection: ConnectionID) {
        guard let entry = channels[connection], let handler = entry.handler, let context = handler.context else {
            return
        }
        flushNow(handler)
        context.close(mode: .output, promise: nil)
        if role == .client,
            (try? context.pipeline.syncOperations.context(handlerType: HTTPProxyHandler.self)) != nil
        {
            channels[connection] = nil
            if handler.context != nil { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
        }
    }

    private func close(_ connection: ConnectionID, abortively: Bool) {
        guard let (channel, handler) = channels.removeValue(forKey: connection) else { return }
        if !abortively { flushNow(handler) }
        if abortively, let provider = channel as? any SocketOptionProvider {
            // SO_LINGER 0: close sends RST, so the application sees a reset, not a clean end of stream.
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            channel.close(promise: nil)
        }
    }
}

/// The relay's end in one TCP channel's pipeline: reports the channel's events to the `StreamSessionHost` and holds
/// `read()` until the session asks for it. Everything else is the session's.
final class StreamChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let connection: ConnectionID
    private weak var host: StreamSessionHost?
    private(set) var context: ChannelHandlerContext?
    /// Written to since the host last flushed it.
    var needsFlush = false
    /// The writes handed to the channel whose end the session has not learnt yet.
    var writes = TCPWriteTracker()
    /// The channel's synchronous options, read once.
    let options: NIOSynchronousChannelOptions?
    /// Opened for each read the session allows (the channel's `RelayReadAllocator` cuts only those).
    let permit: ReadPermit

    init(
        connection: ConnectionID, host: StreamSessionHost, options: NIOSynchronousChannelOptions?, permit: ReadPermit
    ) {
        self.connection = connection
        self.host = host
        self.options = options
        self.permit = permit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        host?.handlerRemoved(connection)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        host?.read(connection, unwrapInboundIn(data), allowed: permit.lastReadWasAllowed)
    }

    func read(context: ChannelHandlerContext) {
        host?.readRequested(connection)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            host?.inputEnded(connection)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        host?.socketClosed(connection)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        host?.socketError(connection, error)
    }
}
