import DequeModule
import Logging
import NIOCore
import SCTPEngine

/// Carries the proxied connections of one authenticated association: it decodes every message on streams 1 and up,
/// hands it to that stream's `StreamRelay`, sends what the relays ask for through the driver, and keeps the stream
/// table. Both roles use it; the client allocates stream ids, the server admits them. Confined to the driver's
/// event loop.
final class StreamMultiplexer {
    let driver: SCTPDriver
    let association: SCTPAssociationID
    let role: StreamState.Role
    let logger: Logger
    /// The window this side grants the peer per stream (OPEN's credit on the client, HELLO's on the server).
    let receiveCredit: UInt32
    /// Client: the credit each new stream starts with for its DATA (HELLO's stream credit).
    let sendCredit: UInt32
    /// Streams without DATA either way for this long are reset.
    let idleTimeout: TimeAmount
    /// With no stream open for this long, `onIdle` is called once.
    let associationIdleTimeout: TimeAmount
    /// `StreamLimits.bufferedBytesPerAssociation`: at or above it, streams whose socket has not taken all their
    /// bytes hold back the credit they would return, and new streams are refused (server: OPEN-RESULT "too many
    /// streams"; client: the connection fails), until the sockets drain below it. It is a hard ceiling: when DATA
    /// would take the association past it, the stream holding the most buffered bytes is reset (`makeRoom`); the
    /// streams together may hold more credit than the cap, since each brings its own when it opens.
    let bufferedBytesLimit: Int

    private(set) var table: StreamTable
    private(set) var relays: [StreamID: StreamRelay] = [:]
    private(set) var isClosed = false
    private var idleSweep: Scheduled<Void>?
    /// Since when no stream has been open; nil while one is.
    private var idleSince: NIODeadline? = .now()

    /// Server: a client asked for a connection; connect and call `relay.connected` or `relay.connectFailed`.
    var onOpen: ((StreamRelay, StreamTarget) -> Void)?
    /// The peer broke the association-wide rules (stream reuse): the owner aborts the association.
    var onFatalError: ((String) -> Void)?
    /// No stream was open for `associationIdleTimeout`: the owner shuts the association down or aborts it.
    var onIdle: (() -> Void)?

    /// The service's proxy counters (bytes relayed, refused connections); nil in tests that need none.
    var metrics: ProxyMetrics?
    /// Bytes of DATA moved, for status displays.
    private(set) var bytesSent = 0
    private(set) var bytesReceived = 0
    /// Connections opened over this association.
    private(set) var streamsOpened = 0
    /// DATA bytes received from the peer and not yet accepted by a local socket, over every stream (a released
    /// stream counts until its last write completes or is dropped). Relays report changes through
    /// `bufferedBytesChanged`.
    private(set) var bufferedBytes = 0
    /// Relays that hold back a WINDOW-UPDATE because `bufferedBytes` reached the limit; asked to send it once it
    /// is below again.
    private var creditWaiters: [StreamRelay] = []
    /// Client: new connections waiting for a stream (every one was in use, or the buffered bytes at their limit),
    /// oldest first; each is served when a stream frees, or refused when its wait ends.
    private var streamWaiters = Deque<StreamWaiter>()
    private var nextWaiterID = 0
    /// Client: when the last "every stream is in use" warning was logged, and how many were held back since.
    private var fullTableLog: (at: NIODeadline, heldBack: Int)?

    private struct StreamWaiter {
        let id: Int
        let callback: (Result<StreamRelay, ProxyFailure>) -> Void
        let timer: Scheduled<Void>
    }

    init(
        driver: SCTPDriver, association: SCTPAssociationID, role: StreamState.Role, table: StreamTable,
        receiveCredit: UInt32, sendCredit: UInt32, idleTimeout: TimeAmount,
        associationIdleTimeout: TimeAmount = TimeAmount(StreamLimits().associationIdleTimeout),
        bufferedBytesLimit: Int = StreamLimits().bufferedBytesPerAssociation, logger: Logger
    ) {
        self.driver = driver
        self.association = association
        self.role = role
        self.table = table
        self.receiveCredit = receiveCredit
        self.sendCredit = sendCredit
        self.idleTimeout = idleTimeout
        self.associationIdleTimeout = associationIdleTimeout
        self.bufferedBytesLimit = bufferedBytesLimit
        self.logger = logger
        scheduleIdleSweep()
    }

    var eventLoop: any EventLoop { driver.eventLoop }

    /// Whether the association's send buffer has room: relays stop reading their sockets while it has not.
    var isWritable: Bool { !isClosed && driver.isWritable(association) }

    var activeStreams: Int { relays.count }

    // MARK: - Client: new streams

    /// Takes a free stream id for a new connection and registers its relay; nil when every id is in use or the
    /// association already buffers `bufferedBytesLimit` bytes (the new stream's credit would add to it).
    func makeClientRelay() -> StreamRelay? {
        precondition(role == .client)
        guard !isClosed, !isOverBufferedLimit, let id = table.allocate() else { return nil }
        let relay = StreamRelay(
            id: id, state: StreamState(role: .client, receiveCredit: receiveCredit, initialSendCredit: sendCredit),
            multiplexer: self)
        relays[id] = relay
        idleSince = nil
        streamsOpened += 1
        return relay
    }

    /// Client: a relay for a new connection, at once when a stream is free, else after waiting up to `wait` for one
    /// (at most `queueLimit` connections wait). Fails with `.tooManyStreams` when none freed in time or the queue
    /// is full, `.serverUnavailable` when the association goes away meanwhile. Every wait and refusal is counted.
    func makeClientRelay(
        waitingUpTo wait: TimeAmount, queueLimit: Int, _ callback: @escaping (Result<StreamRelay, ProxyFailure>) -> Void
    ) {
        if streamWaiters.isEmpty, let relay = makeClientRelay() {
            callback(.success(relay))
            return
        }
        guard !isClosed else {
            callback(.failure(.serverUnavailable))
            return
        }
        logTableFull()
        guard wait > .zero, streamWaiters.count < queueLimit else {
            refuseStream(callback)
            return
        }
        metrics?.recordStreamWait()
        let id = nextWaiterID
        nextWaiterID += 1
        let timer = eventLoop.assumeIsolated().scheduleTask(in: wait) { [weak self] in
            guard let self, let index = self.streamWaiters.firstIndex(where: { $0.id == id }) else { return }
            let waiter = self.streamWaiters.remove(at: index)
            self.refuseStream(waiter.callback)
        }
        streamWaiters.append(StreamWaiter(id: id, callback: callback, timer: timer))
    }

    private func refuseStream(_ callback: (Result<StreamRelay, ProxyFailure>) -> Void) {
        metrics?.recordRefusal(isOverBufferedLimit ? .bufferedBytesPerAssociation : .streamsPerAssociation)
        callback(.failure(.tooManyStreams))
    }

    /// Gives freed streams to waiting connections, oldest first.
    private func serveStreamWaiters() {
        while !streamWaiters.isEmpty, let relay = makeClientRelay() {
            let waiter = streamWaiters.removeFirst()
            waiter.timer.cancel()
            waiter.callback(.success(relay))
        }
    }

    /// One warning per minute at most while connections find every stream in use: the operator learns the limit
    /// and how to raise it.
    private func logTableFull() {
        let now = NIODeadline.now()
        if let last = fullTableLog, now - last.at < .seconds(60) {
            fullTableLog?.heldBack += 1
            return
        }
        let reason =
            isOverBufferedLimit
            ? "the association buffers \(bufferedBytes) bytes, its limit (limits.buffered-bytes-per-association)"
            : "all \(table.streamLimit) streams are in use (limits.streams-per-association, on the server too)"
        logger.warning(
            "new connections wait for a stream: \(reason)",
            metadata: ["held_back": "\(fullTableLog?.heldBack ?? 0)", "waiting": "\(streamWaiters.count)"])
        fullTableLog = (now, 0)
    }

    // MARK: - Sending

    /// Sends one message of `relay`'s stream. The caller has run it through the stream's state already.
    func send(_ message: StreamMessage, on stream: StreamID) {
        guard !isClosed else { return }
        if case .data(let bytes) = message { bytesSent += bytes.readableBytes }
        if case .data(let bytes) = message { metrics?.recordRelayed(bytes.readableBytes, up: role == .client) }
        do {
            try driver.send(message.encode(), on: association, stream: stream, ppid: message.ppid)
        } catch {
            logger.debug("send failed", metadata: ["stream": "\(stream)", "error": "\(error)"])
        }
    }

    /// Forgets a stream that is free on this side: its id may be used again.
    func release(_ relay: StreamRelay) {
        guard relays[relay.id] === relay else { return }
        relays[relay.id] = nil
        table.release(relay.id)
        creditWaiters.removeAll { $0 === relay }
        if relays.isEmpty { idleSince = .now() }
        serveStreamWaiters()
    }

    // MARK: - Buffered bytes

    /// Whether this side has as many received bytes waiting for sockets as it may hold: credit stays with us.
    var isOverBufferedLimit: Bool { bufferedBytes >= bufferedBytesLimit }

    /// A relay's received-but-unwritten bytes changed by `delta`; below the limit again, held credit goes out.
    func bufferedBytesChanged(by delta: Int) {
        bufferedBytes += delta
        assert(bufferedBytes >= 0, "buffered bytes went negative: \(bufferedBytes)")
        guard !isOverBufferedLimit else { return }
        if !streamWaiters.isEmpty { serveStreamWaiters() }
        guard !creditWaiters.isEmpty else { return }
        let waiters = creditWaiters
        creditWaiters.removeAll()
        for relay in waiters { relay.sendHeldCredit() }
    }

    /// Keeps the association within `bufferedBytesLimit` when `count` more bytes arrive on `relay`: each stream's
    /// credit is within the rules, but together the streams may hold more credit than the cap. While the bytes do
    /// not fit, the stream holding the most buffered bytes (one whose socket does not keep up) is reset, which
    /// drops its bytes at once; streams whose sockets drain keep going. False when the arriving stream was the one
    /// reset (its DATA is dropped). Each reset is counted. The scan for the largest holder runs only at the cap, and
    /// each one frees at least the average holding, so a peer must send that much again to cause the next.
    private func makeRoom(for count: Int, arrivingOn relay: StreamRelay) -> Bool {
        while bufferedBytes + count > bufferedBytesLimit {
            let victim = relays.values.max { $0.bufferedBytes < $1.bufferedBytes }
            // Nothing to take back from a stream (the bytes belong to finished streams' last writes): the arriving
            // stream goes.
            let target = victim.flatMap { $0.bufferedBytes > 0 ? $0 : nil } ?? relay
            let before = bufferedBytes
            metrics?.recordRefusal(.bufferedBytesPerAssociation)
            logger.debug(
                "stream reset at the association's buffered-bytes limit",
                metadata: ["stream": "\(target.id)", "holding": "\(target.bufferedBytes)", "buffered": "\(before)"])
            target.reset(
                .flowControlError,
                text: "the association buffers \(before) bytes, its limit is \(bufferedBytesLimit)")
            if target === relay { return false }
            if bufferedBytes >= before {
                // The reset stream's bytes are not freed yet: do not take more streams down for them.
                relay.reset(.flowControlError, text: "the association buffers \(before) bytes")
                metrics?.recordRefusal(.bufferedBytesPerAssociation)
                return false
            }
        }
        return true
    }

    /// `relay` holds back credit until the association is below its limit.
    func waitForCredit(_ relay: StreamRelay) {
        guard !creditWaiters.contains(where: { $0 === relay }) else { return }
        creditWaiters.append(relay)
    }

    // MARK: - Receiving

    /// A message on stream 1 or above.
    func receive(_ message: SCTPMessage) {
        guard !isClosed else { return }
        let decoded: StreamMessage
        do {
            decoded = try StreamMessage.decode(ppid: message.ppid, payload: message.payload, stream: message.stream)
            if message.isUnordered { throw StreamDecodingError.unorderedNotAllowed(decoded.kind) }
        } catch {
            logger.debug("undecodable stream message", metadata: ["stream": "\(message.stream)", "error": "\(error)"])
            relays[message.stream]?.reset(.protocolError, text: "\(error)")
            return
        }
        if case .data(let bytes) = decoded { bytesReceived += bytes.readableBytes }
        if case .data(let bytes) = decoded { metrics?.recordRelayed(bytes.readableBytes, up: role == .server) }
        if let relay = relays[message.stream] {
            if case .data(let bytes) = decoded, !makeRoom(for: bytes.readableBytes, arrivingOn: relay) { return }
            relay.receive(decoded)
            return
        }
        switch role {
        case .client:
            // The server sends nothing after its terminal, so a message on a free stream is a late bug of the peer.
            logger.debug(
                "message on a free stream", metadata: ["stream": "\(message.stream)", "kind": "\(decoded.kind)"])
        case .server:
            receiveOnFreeServerStream(decoded, stream: message.stream)
        }
    }

    /// Server: OPEN creates a connection; anything else is the tail of one we already freed and is ignored.
    private func receiveOnFreeServerStream(_ message: StreamMessage, stream: StreamID) {
        guard case .open = message else { return }
        let relay = StreamRelay(
            id: stream, state: StreamState(role: .server, receiveCredit: receiveCredit), multiplexer: self)
        guard case .open(let target)? = relay.receiveOpen(message) else { return }
        guard !isOverBufferedLimit else {
            // The DATA that may follow this OPEN arrives on a free stream and is dropped: nothing is buffered.
            metrics?.recordConnection(.tooManyStreams)
            metrics?.recordRefusal(.bufferedBytesPerAssociation)
            relay.refuse(.tooManyStreams, text: "the association buffers \(bufferedBytes) bytes, at its limit")
            return
        }
        guard table.admit(stream) else {
            metrics?.recordConnection(.tooManyStreams)
            metrics?.recordRefusal(.streamsPerAssociation)
            relay.refuse(.tooManyStreams, text: "at most \(table.streamLimit) streams per association")
            return
        }
        relays[stream] = relay
        idleSince = nil
        streamsOpened += 1
        onOpen?(relay, target)
    }

    /// The association breaks a rule that stream boundaries depend on.
    func fatal(_ reason: String) {
        onFatalError?(reason)
    }

    /// The association's send buffer drained: relays waiting for it read again.
    func resumeWriting() {
        for relay in Array(relays.values) { relay.resume() }
    }

    // MARK: - Teardown

    /// Something other than a stream (a UDP flow) used the association: the idle clock starts again from now.
    func restartIdleClock() {
        if relays.isEmpty { idleSince = .now() }
    }

    /// The association is gone: every connection is reset, pending opens fail.
    func associationLost() {
        guard !isClosed else { return }
        isClosed = true
        idleSweep?.cancel()
        let all = Array(relays.values)
        relays.removeAll()
        creditWaiters.removeAll()
        let waiting = streamWaiters
        streamWaiters.removeAll()
        for waiter in waiting {
            waiter.timer.cancel()
            waiter.callback(.failure(.serverUnavailable))
        }
        for relay in all { relay.associationLost() }
    }

    private func scheduleIdleSweep() {
        let interval = min(idleTimeout, associationIdleTimeout, .seconds(30))
        idleSweep = eventLoop.assumeIsolated().scheduleTask(in: interval) { [weak self] in
            guard let self, !self.isClosed else { return }
            let now = NIODeadline.now()
            for relay in Array(self.relays.values) where now - relay.lastActivity > self.idleTimeout {
                relay.reset(.idleTimeout, text: "no data for \(self.idleTimeout.nanoseconds / 1_000_000_000) s")
            }
            if let since = self.idleSince, now - since >= self.associationIdleTimeout {
                self.idleSince = nil
                self.onIdle?()
                guard !self.isClosed else { return }
            }
            self.scheduleIdleSweep()
        }
    }
}
