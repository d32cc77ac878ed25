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

/// Joins one stream of the association to one TCP connection, with backpressure and half-close both ways: the
/// local application's connection on the client, the target's on the server.
///
/// TCP → stream: bytes read go out as DATA within the stream's credit; while credit (or the association's send
/// buffer) is exhausted the handler holds the channel's `read()`, so the socket stops being read. TCP EOF becomes
/// FIN once everything read has been sent. Stream → TCP: DATA is written to the channel and its credit returned
/// (WINDOW-UPDATE, via `StreamState.consumed`) only once the write completed, so a reader that stops reading
/// stalls only its own stream. FIN half-closes the socket after the last write. RESET, a protocol violation or
/// the loss of the association closes the socket abortively (RST).
///
/// On the client it is also the connector's pending OPEN: it is added to the application's pipeline when
/// OPEN-RESULT reports success, as the `ProxyConnector` contract asks. Confined to the driver's event loop.
final class StreamRelay: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: StreamID
    private(set) var state: StreamState
    /// Nil once the stream is free on this side: nothing more is sent for this connection.
    private(set) weak var multiplexer: StreamMultiplexer?
    private(set) var lastActivity = NIODeadline.now()

    private var context: ChannelHandlerContext?
    /// The TCP channel, also before the handler is added to it.
    private var channel: (any Channel)?
    /// The channel is gone or was closed by us: nothing more is written or read.
    private var isChannelDone = false

    // MARK: TCP → stream
    /// Bytes read from the socket that wait for credit.
    private var pending = CircularBuffer<ByteBuffer>()
    private var inputEnded = false
    private var finSent = false
    private var pendingRead = false

    // MARK: Stream → TCP
    /// DATA that arrived before the channel was attached (server: while connecting to the target).
    private var backlog: [ByteBuffer] = []
    private var writesInFlight = 0
    /// Bytes of `backlog` and of writes in flight: this stream's share of the association's buffered bytes.
    private(set) var bufferedBytes = 0
    /// Credit the stream owes the peer but holds while the association is at its buffered-bytes limit.
    private var heldCredit: UInt32 = 0
    /// The multiplexer whose buffered-bytes count includes ours; unlike `multiplexer` it stays set after the
    /// stream is released, so writes that complete later are still counted out.
    private weak var ledger: StreamMultiplexer?
    private var outputEndRequested = false
    private var outputEnded = false

    // MARK: Client OPEN
    private var openPromise: EventLoopPromise<Void>?
    private var openTimer: Scheduled<Void>?

    init(id: StreamID, state: StreamState, multiplexer: StreamMultiplexer) {
        self.id = id
        self.state = state
        self.multiplexer = multiplexer
        self.ledger = multiplexer
    }

    private var logger: Logger { multiplexer?.logger ?? Logger(label: "agg.stream") }

    // MARK: - Client: opening

    /// The connection this relay was made for went away before OPEN: nothing was sent, so the stream is free again
    /// at once.
    func cancelBeforeOpen() {
        multiplexer?.release(self)
    }

    /// Sends OPEN (and `initialData` right behind it, within the HELLO credit) and completes `promise` when
    /// OPEN-RESULT arrives, or with `.timeout` after `timeout`.
    func open(
        _ target: StreamTarget, initialData: ByteBuffer?, inbound: any Channel, timeout: TimeAmount,
        promise: EventLoopPromise<Void>
    ) {
        guard let multiplexer else {
            promise.fail(ProxyFailure.serverUnavailable)
            return
        }
        channel = inbound
        openPromise = promise
        let open = StreamMessage.open(target, initialCredit: multiplexer.receiveCredit)
        do {
            _ = try state.send(open)
        } catch {
            multiplexer.release(self)
            promise.fail(ProxyFailure.generalFailure)
            return
        }
        multiplexer.send(open, on: id)
        if let initialData, initialData.readableBytes > 0 { pending.append(initialData) }
        flushPending()
        openTimer = inbound.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            guard let self, let promise = self.openPromise else { return }
            self.openPromise = nil
            self.reset(.cancelled, text: "no OPEN-RESULT in time", closeChannel: false)
            promise.fail(ProxyFailure.timeout)
        }
    }

    private func opened() {
        openTimer?.cancel()
        guard let promise = openPromise, let channel, channel.isActive else {
            openPromise?.fail(ProxyFailure.generalFailure)
            openPromise = nil
            reset(.cancelled, text: "the local connection went away")
            return
        }
        openPromise = nil
        do {
            // The application's FIN must reach us as an event, not close the channel.
            try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
            try channel.pipeline.syncOperations.addHandler(self)
        } catch {
            promise.fail(ProxyFailure.generalFailure)
            reset(.internalError, text: "cannot install the relay")
            return
        }
        promise.succeed()
        writeBacklog()
    }

    private func openFailed(_ code: OpenResultCode, text: String?) {
        openTimer?.cancel()
        multiplexer?.release(self)
        multiplexer = nil
        isChannelDone = true
        logger.debug("OPEN failed", metadata: ["stream": "\(id)", "code": "\(code)", "text": "\(text ?? "")"])
        openPromise?.fail(ProxyFailure(code) ?? .generalFailure)
        openPromise = nil
    }

    // MARK: - Server: opening

    /// Runs a received OPEN through the (free) state; returns the action, or nil when the state refused it.
    func receiveOpen(_ message: StreamMessage) -> StreamReceiveAction? {
        try? state.receive(message)
    }

    /// Answers OPEN with a failed OPEN-RESULT, which frees the stream.
    func refuse(_ code: OpenResultCode, text: String?) {
        let result = StreamMessage.openResult(code, text: text)
        guard (try? state.send(result)) != nil else { return }
        multiplexer?.send(result, on: id)
        multiplexer?.release(self)
        multiplexer = nil
        channel?.close(promise: nil)
        isChannelDone = true
    }

    /// The target accepted: OPEN-RESULT ok, then the relay joins the target's channel.
    func connected(_ target: any Channel) {
        guard let multiplexer, state.phase != .idle else {
            target.close(promise: nil)  // The client reset the stream meanwhile.
            return
        }
        let result = StreamMessage.openResult(.ok, text: nil)
        guard (try? state.send(result)) != nil else {
            target.close(promise: nil)
            return
        }
        multiplexer.send(result, on: id)
        channel = target
        do {
            try target.pipeline.syncOperations.addHandler(self)
        } catch {
            reset(.internalError, text: "cannot install the relay")
            return
        }
        writeBacklog()
        flushPending()
    }

    func connectFailed(_ error: EgressError) {
        logger.debug("egress failed", metadata: ["stream": "\(id)", "error": "\(error)"])
        guard multiplexer != nil, state.phase != .idle else { return }
        refuse(error.code, text: error.detail)
    }

    // MARK: - Messages from the peer

    func receive(_ message: StreamMessage) {
        lastActivity = .now()
        let action: StreamReceiveAction
        do {
            action = try state.receive(message)
        } catch .openOnBusyStream {
            multiplexer?.fatal("OPEN on stream \(id), which is still in use")
            return
        } catch {
            reset(error.resetReason, text: "\(error)")
            return
        }
        switch action {
        case .open:
            break  // Only on a free server stream: `receiveOpen`.
        case .opened:
            opened()
        case .openFailed(let code, let text):
            openFailed(code, text: text)
        case .deliver(let bytes):
            deliver(bytes)
        case .remoteFinished:
            outputEndRequested = true
            endOutputIfDone()
        case .remoteFinishedMustSendClosed:
            outputEndRequested = true
            sendClosedAndRelease()
            endOutputIfDone()
        case .credit:
            flushPending()
        case .resetByPeer(let reason, let text, let mustAnswer):
            logger.debug(
                "stream reset by peer", metadata: ["stream": "\(id)", "reason": "\(reason)", "text": "\(text ?? "")"])
            if mustAnswer { multiplexer?.send(.reset(reason, text: nil), on: id) }
            multiplexer?.release(self)
            multiplexer = nil
            openTimer?.cancel()
            openPromise?.fail(ProxyFailure.generalFailure)
            openPromise = nil
            closeChannel(abortively: true)
        case .released:
            multiplexer?.release(self)
            multiplexer = nil
            closeIfFinished()
        case .ignored:
            break
        }
    }

    private func sendClosedAndRelease() {
        guard (try? state.send(.closed)) != nil else { return }
        multiplexer?.send(.closed, on: id)
        multiplexer?.release(self)
        multiplexer = nil
    }

    // MARK: - Stream → TCP

    private func deliver(_ bytes: ByteBuffer) {
        guard !isChannelDone else { return }
        account(bytes.readableBytes)
        guard let context else {
            backlog.append(bytes)
            return
        }
        write(bytes, context: context)
    }

    private func writeBacklog() {
        guard let context else { return }
        let queued = backlog
        backlog = []  // Still counted: `write` counts each out when it completes.
        for bytes in queued { write(bytes, context: context) }
        endOutputIfDone()
    }

    private func write(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        let count = bytes.readableBytes
        writesInFlight += 1
        context.writeAndFlush(wrapOutboundOut(bytes)).assumeIsolated().whenComplete { [self] result in
            writesInFlight -= 1
            account(-count)
            if case .success = result, let multiplexer, case .windowUpdate(let credit)? = state.consumed(count) {
                returnCredit(credit, via: multiplexer)
            }
            endOutputIfDone()
        }
    }

    // MARK: - Buffered bytes and credit

    /// Adds `delta` to this stream's buffered bytes and to the association's. Credit held back while bytes were
    /// waiting goes out once the socket has taken them all.
    private func account(_ delta: Int) {
        guard delta != 0 else { return }
        bufferedBytes += delta
        ledger?.bufferedBytesChanged(by: delta)
        if bufferedBytes == 0, heldCredit > 0 { sendHeldCredit() }
    }

    /// Drops DATA that waits for the channel (the stream is over); it no longer counts as buffered.
    private func dropBacklog() {
        let dropped = backlog.reduce(0) { $0 + $1.readableBytes }
        backlog.removeAll()
        account(-dropped)
    }

    /// Sends a WINDOW-UPDATE, or holds it while the association is at its buffered-bytes limit
    /// (`StreamLimits.bufferedBytesPerAssociation`) and this stream still has bytes its socket has not taken: a
    /// stalled stream's peer then runs out of credit and stops, while a stream whose socket keeps up (nothing left
    /// buffered) keeps its credit flowing, so one slow reader does not stall the others.
    private func returnCredit(_ credit: UInt32, via multiplexer: StreamMultiplexer) {
        let total = heldCredit &+ credit
        guard !multiplexer.isOverBufferedLimit || bufferedBytes == 0 else {
            heldCredit = total
            multiplexer.waitForCredit(self)
            return
        }
        heldCredit = 0
        multiplexer.send(.windowUpdate(credit: total), on: id)
    }

    /// The association is below its limit again: the held credit goes out (if the peer may still send).
    func sendHeldCredit() {
        let credit = heldCredit
        heldCredit = 0
        guard credit > 0, let multiplexer, state.mayReceiveData else { return }
        multiplexer.send(.windowUpdate(credit: credit), on: id)
    }

    /// After the peer's FIN and the last write: half-close the socket (the ingress may take the close itself).
    private func endOutputIfDone() {
        guard outputEndRequested, !outputEnded, writesInFlight == 0, backlog.isEmpty, let context else { return }
        outputEnded = true
        if state.role == .client, isForwardingHTTP(context) {
            // The HTTP proxy handler takes the close as the end of one response; this relay leaves, and the next
            // request gets a stream of its own.
            context.close(mode: .output, promise: nil)
            if self.context != nil { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
            return
        }
        context.close(mode: .output, promise: nil)
        closeIfFinished()
    }

    /// Whether an HTTP forward proxy handler sits in front of the relay (CONNECT tunnels have left by now).
    private func isForwardingHTTP(_ context: ChannelHandlerContext) -> Bool {
        (try? context.pipeline.syncOperations.context(handlerType: HTTPProxyHandler.self)) != nil
    }

    /// Both directions are finished: the socket closes.
    private func closeIfFinished() {
        guard outputEnded, finSent, writesInFlight == 0 else { return }
        closeChannel(abortively: false)
    }

    // MARK: - TCP → stream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        guard bytes.readableBytes > 0, !inputEnded, !isChannelDone, multiplexer != nil else { return }
        lastActivity = .now()
        pending.append(bytes)
        flushPending()
    }

    func read(context: ChannelHandlerContext) {
        if pending.isEmpty, multiplexer?.isWritable == true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            inputEnded = true
            flushPending()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Sends pending bytes within the credit, then FIN once input ended; reads again when all went out.
    private func flushPending() {
        guard let multiplexer else { return }
        while var first = pending.first, state.maySendData, state.sendWindow.available > 0 {
            let size = min(first.readableBytes, state.sendWindow.available, AggLimits.maxDataPayload)
            let slice = first.readSlice(length: size)!
            let data = StreamMessage.data(slice)
            guard (try? state.send(data)) != nil else { break }
            multiplexer.send(data, on: id)
            if first.readableBytes == 0 {
                pending.removeFirst()
            } else {
                pending[pending.startIndex] = first
            }
        }
        if pending.isEmpty, inputEnded, !finSent {
            sendFin()
        }
        readIfPossible()
    }

    /// Credit arrived or the association's send buffer drained: send what waits, read again if nothing does.
    func resume() {
        flushPending()
    }

    private func readIfPossible() {
        guard pendingRead, pending.isEmpty, multiplexer?.isWritable == true, let context else { return }
        pendingRead = false
        context.read()
    }

    private func sendFin() {
        guard let multiplexer, state.maySendData else { return }
        let result: StreamSendResult
        do {
            result = try state.send(.fin)
        } catch {
            return
        }
        finSent = true
        multiplexer.send(.fin, on: id)
        if result == .mustSendClosed { sendClosedAndRelease() }
        closeIfFinished()
    }

    // MARK: - Channel life

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        guard !isChannelDone else { return }
        // The HTTP proxy removed us after the response: the request direction is finished too.
        if outputEnded {
            pending.removeAll()
            inputEnded = true
            if !finSent { sendFin() }
            isChannelDone = true
        } else {
            reset(.cancelled, text: "relay removed", closeChannel: false)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        channelGone()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("TCP error", metadata: ["stream": "\(id)", "error": "\(error)"])
        reset(.connectionReset, text: "\(error)")
    }

    /// The socket closed: a connection that is not finished both ways is reset.
    private func channelGone() {
        guard !isChannelDone else { return }
        isChannelDone = true
        if outputEnded {
            // Everything from the peer was delivered and the application closed: that is its end of input.
            inputEnded = true
            flushPending()
        } else {
            reset(.connectionReset, text: "the TCP connection closed", closeChannel: false)
        }
    }

    // MARK: - Aborting

    /// Abortive close from this side: RESET to the peer (unless the stream is already over) and RST on the socket.
    func reset(_ reason: ResetReason, text: String?, closeChannel close: Bool = true) {
        if let multiplexer, state.phase != .idle, state.phase != .closed || state.role == .server {
            let message = StreamMessage.reset(reason, text: text)
            if let result = try? state.send(message) {
                multiplexer.send(message, on: id)
                if result == .released {
                    multiplexer.release(self)
                    self.multiplexer = nil
                }
            }
        }
        openTimer?.cancel()
        openPromise?.fail(ProxyFailure.generalFailure)
        openPromise = nil
        pending.removeAll()
        dropBacklog()
        if close { closeChannel(abortively: true) }
    }

    /// The association is gone: the socket is reset and a pending OPEN fails as "server unavailable".
    func associationLost() {
        multiplexer = nil
        dropBacklog()
        openTimer?.cancel()
        openPromise?.fail(ProxyFailure.serverUnavailable)
        openPromise = nil
        if context != nil || state.role == .server {
            closeChannel(abortively: true)
        }
    }

    private func closeChannel(abortively: Bool) {
        pending.removeAll()
        dropBacklog()
        guard let channel else { return }
        if context == nil, state.role == .client {
            // Never attached (the OPEN failed or is pending): the ingress owns the channel and answers it.
            return
        }
        isChannelDone = true
        self.channel = nil
        if abortively, let provider = channel as? any SocketOptionProvider {
            // SO_LINGER 0: close sends RST, so the application sees a reset, not a clean end of stream.
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            channel.close(promise: nil)
        }
    }
}
