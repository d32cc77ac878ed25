import DequeModule
import Logging
import NIOCore
import SCTPEngine

/// One proxied TCP connection for the life of a session. A stream id is reused by later connections; a
/// connection id never is, so a late event of a finished connection cannot reach the next one on its stream.
/// The id carries the slot of the session's `ConnectionTable` that holds the connection's record, so a lookup
/// indexes instead of hashing; the serial number (`rawValue`) alone identifies the connection.
package struct ConnectionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let rawValue: UInt64
    /// The record's slot in the session's `ConnectionTable` (reused by later connections).
    package let slot: UInt32

    init(rawValue: UInt64, slot: UInt32) {
        self.rawValue = rawValue
        self.slot = slot
    }

    package static func == (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue == rhs.rawValue }

    package func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }

    package static func < (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue < rhs.rawValue }

    package var description: String { "c\(rawValue)" }
}

/// What a `StreamSession` asks its glue to do. The glue performs each in order; the session never sees a channel
/// or the SCTP driver.
package enum StreamSessionAction: Equatable {
    /// Encode `message` and send it on `stream` of the association.
    case send(StreamMessage, on: StreamID)
    /// Write `bytes` to the connection's socket, flushed by the end of the glue's turn at the latest (and before
    /// DATA for which `wouldExceedBufferedLimit`); report `handleWriteCompleted` when the write is done.
    case write(ByteBuffer, to: ConnectionID)
    /// Read the socket once more (the handler held the last `read()` back).
    case read(ConnectionID)
    /// The peer finished sending and everything was written: shut down the socket's output. (On an HTTP forward
    /// request the glue removes the relay from the pipeline instead, the handler taking the output's end as the
    /// end of one response, and reports `handleRemoved`.)
    case endOutput(ConnectionID)
    /// Close the socket: abortively (RST) when the connection was reset or lost.
    case close(ConnectionID, abortively: Bool)
    /// Client: the target accepted. Join the application's channel to the connection, then report
    /// `handleAttached` (or `handleAttachFailed`) and answer the application.
    case opened(ConnectionID)
    /// Client: the connection could not be opened; answer the application with `failure`. The channel is the
    /// ingress's: the session forgets the connection.
    case openFailed(ConnectionID, ProxyFailure)
    /// Server: connect to `target`, then report `handleTargetConnected` or `handleTargetFailed`.
    case connect(ConnectionID, StreamTarget)
    /// Client: a connection that waited for a stream got one; call `open` (or `cancelBeforeOpen`).
    case streamGranted(waiter: UInt64, ConnectionID)
    /// Client: a connection that waited for a stream gets none.
    case streamRefused(waiter: UInt64, ProxyFailure)
    /// The peer broke a rule stream boundaries depend on: abort the association.
    case abortAssociation(String)
    /// No stream was open for the association idle timeout (reported once; `restartIdleClock` re-arms it).
    case idle
    /// Draining (`handleDrain`) and the last stream is free: the association may shut down. Reported once.
    case drained
}

/// The proxied connections of one authenticated association, for either role, as a state machine without I/O.
///
/// Inputs are the association's stream messages, the TCP sockets' events (read, input ended, write completed,
/// gone) and time; outputs are `StreamSessionAction`s, taken with `pollAction`, and `nextDeadline`. Each
/// connection joins one stream of the association to one TCP connection with backpressure and half-close both
/// ways: the local application's on the client, the target's on the server.
///
/// TCP → stream: bytes read go out as DATA within the stream's credit; while credit (or the association's send
/// buffer) is exhausted the session holds the socket's `read()`. Input's end becomes FIN once everything read was
/// sent. Stream → TCP: DATA is written to the socket and its credit returned (WINDOW-UPDATE) only once the write
/// completed, so a reader that stops reading stalls only its own stream. FIN half-closes the socket after the last
/// write. RESET, a protocol violation or the loss of the association closes the socket abortively.
///
/// Association-wide: the stream table (the client allocates ids, the server admits them), the buffered-bytes
/// ceiling (`StreamLimits.bufferedBytesPerAssociation`), connections that wait for a stream (client), stream and
/// association idle timeouts, and the counters the status displays show.
package struct StreamSession {
    package let role: StreamState.Role
    /// The window this side grants the peer per stream (OPEN's credit on the client, HELLO's on the server).
    let receiveCredit: UInt32
    /// Client: the credit each new stream starts with for its DATA (HELLO's stream credit).
    let sendCredit: UInt32
    /// Streams without DATA either way for this long are reset.
    let idleTimeout: TimeAmount
    /// With no stream open for this long, `.idle` is reported once.
    let associationIdleTimeout: TimeAmount
    /// Client: a connection's OPEN-RESULT must arrive within this.
    let openTimeout: TimeAmount
    /// At or above it, streams whose socket has not taken all their bytes hold back the credit they would return,
    /// and new streams are refused, until the sockets drain below it. When DATA would take the association past it,
    /// the stream holding the most buffered bytes is reset (`makeRoom`).
    let bufferedBytesLimit: Int
    package let logger: Logger
    /// The service's proxy counters; nil in tests that need none.
    package var metrics: (any StreamSessionMetrics)?

    package private(set) var table: StreamTable
    private var connections = ConnectionTable<Connection>()
    /// Client: when the application hears that its target is connected (`open`'s answer).
    package var earlyReply = EarlyReply.never
    /// Client: targets that accepted a connection lately, for `EarlyReply.known`.
    private var knownTargets = KnownTargets()
    /// Client: DATA bytes a connection sends before its OPEN-RESULT at most (the rest waits for it). The server
    /// holds them until its connect completes; a target that never answers parks no more than this per stream.
    static let dataBeforeOpenResult = 64 * 1024
    /// The connection that owns each stream id in use on this side.
    private var streams: [StreamID: ConnectionID] = [:]
    private var actions = Deque<StreamSessionAction>()
    package private(set) var isClosed = false
    /// The daemon is stopping: `.drained` is reported once no stream is in use.
    private(set) var isDraining = false
    private var drainedReported = false

    /// Whether the association's send buffer has room now: connections stop reading their sockets while it has
    /// not. Asked of the glue, which asks the engine, whenever the session decides a read or whether a read grant's
    /// expiry is its next deadline, so that the answer is never older than the input deciding it. By default it
    /// always has.
    package var associationWritable: () -> Bool = { true }
    private var isAssociationWritable: Bool { associationWritable() }
    /// Whether the association still takes bytes on a stream while it is not writable (a light stream, which the
    /// stream scheduler sends before the bulk ones): such a connection keeps reading. Asked of the glue, which
    /// asks the engine; by default no stream is.
    package var streamTakesMore: (StreamID) -> Bool = { _ in false }
    /// Bytes read from the sockets and not yet sent as DATA (they wait for credit), over every connection: what the
    /// association's send queue does not show of what was read. The glue sizes reads by both (`SendRoom`).
    package let unsentReads = ByteTally()
    /// Connections that want to read and have not been allowed to (`Connection.readWanted`), each once, in the
    /// order they asked: what `resumeReads` looks at, so that room coming back costs what waits on it, not one step
    /// per open stream.
    private var readWaiters = Deque<ConnectionID>()
    /// Bytes the association takes before its connections' reads are cut (`RelayReadAllocator`: twice its send
    /// buffer less what was read and not sent). The glue sets it; by default there is always room.
    package var readRoom: () -> Int = { .max }
    /// Bytes read from the sockets and not sent yet, on the association (its send queue) and in `unsentReads`. The
    /// glue answers (`SendRoom.unsent`); nothing by default.
    package var unsentBytes: () -> Int = { 0 }
    /// The association's send buffer at its largest (the glue sets it): `unsentLimit` is at least eight of it.
    package var sendBuffer = 0
    /// The most bytes the association holds read and not sent before a read the session did not allow resets its
    /// stream (`handleRead`): four times `bufferedBytesLimit`, the cap on the other direction (a benign burst of
    /// 10,000 small responses, each followed by its FIN, queued 105 MB on loopback, and up to 103 MB with connects
    /// waiting), and at least eight send buffers, far above what the reads the session allows keep (under twice the
    /// buffer and a small read per stream). From an eighth of it (half the buffered-bytes cap) the server's new
    /// connections wait to connect (`connectOrWait`).
    var unsentLimit: Int { max(4 * bufferedBytesLimit, 8 * sendBuffer) }
    /// Server: what was read and not sent from which new connections wait to connect.
    var connectGate: Int { unsentLimit / 8 }
    /// Server: connections whose OPEN came while the association held `connectGate` read and not sent,
    /// oldest first: their connects wait for it to drain (`resumeConnects`), so that a burst of targets answering
    /// and closing at once (whose bytes come whatever the read bound) stays far from the limit. An entry whose
    /// connection went meanwhile (`Connection.isWaitingToConnect` false) is dropped when it reaches the front, and
    /// all such entries once they outnumber the live ones (`liveWaitingConnects`): a client resetting each OPEN as
    /// it waits leaves nothing behind.
    private var waitingConnects = Deque<(connection: ConnectionID, target: StreamTarget)>()
    private var liveWaitingConnects = 0
    /// When `resumeConnects` may let the next waiting connects go.
    private var nextConnectStep = NIODeadline.uptimeNanoseconds(0)
    /// Server: connects `resumeConnects` let go whose target has sent nothing yet, oldest first, each until its
    /// first bytes come, its input ends, it goes, or `connectReservationLifetime` passes: `connectReservation`
    /// each is counted against the room under `connectGate`, since their targets' bytes show a round trip later.
    private var connectReservations = Deque<(connection: ConnectionID, expiry: NIODeadline)>()
    private var openConnectReservations = 0
    /// Reads allowed (`.read`) whose bytes have not come, oldest first, each until it comes or `readGrantLifetime`
    /// passes: the room they will take is set aside for them (`readReservation` each), so that room for a few
    /// hundred whole reads lets a few hundred connections read, not every waiting one a sliver of it.
    private var readGrants = Deque<(connection: ConnectionID, number: UInt64, expiry: NIODeadline)>()
    private var nextReadGrant: UInt64 = 1
    /// The entries of `readGrants` whose bytes have not come and that did not expire.
    private var openReadGrants = 0
    /// The room set aside for a read allowed and not yet made: an egress connection's first read (16 KiB,
    /// `TCPReads.egressAllocator`), which a small response fits.
    static let readReservation = 16 * 1_024
    /// How long an allowed read holds its reservation, at least (at most twice: `grantExpiry`): a socket with
    /// nothing to read keeps its read pending for as long as it stays quiet, and must not hold room meanwhile. A
    /// read of bytes already there comes in the loop's next turn.
    static let readGrantLifetime = TimeAmount.milliseconds(10)

    /// Bytes of DATA moved, for status displays.
    package private(set) var bytesSent = 0
    package private(set) var bytesReceived = 0
    /// Connections opened over this association.
    package private(set) var streamsOpened = 0
    /// DATA received and not yet taken by a local socket, over every connection (a finished connection counts
    /// until its last write completes).
    package private(set) var bufferedBytes = 0
    /// Connections holding back a WINDOW-UPDATE until `bufferedBytes` is below the limit again.
    private var creditWaiters: [ConnectionID] = []

    // MARK: Deadlines
    /// Client: OPEN-RESULT deadlines, in the order sent (one timeout for all, so the order is the deadlines').
    private var openDeadlines = Deque<(deadline: NIODeadline, connection: ConnectionID)>()
    /// Client: connections waiting for a stream, oldest first (their waits end in the same order).
    private var streamWaiters = Deque<(id: UInt64, deadline: NIODeadline)>()
    private var nextWaiter: UInt64 = 1
    private var nextSweep: NIODeadline
    /// Since when no stream has been open; nil while one is, or after `.idle` was reported.
    private var idleSince: NIODeadline?
    /// Client: when the last "every stream is in use" warning was logged, and how many were held back since.
    private var fullTableLog: (at: NIODeadline, heldBack: Int)?
    /// The latest time an input brought: inputs without a time of their own (a write completed) use it.
    private var clock: NIODeadline

    /// One TCP connection and its stream. The socket and the relay's two directions each move through their own
    /// states; the record lives until the stream is free on this side, the socket is done and its last write
    /// completed.
    private final class Connection {
        let stream: StreamID
        var state: StreamState
        /// The stream id is free on this side: nothing more is sent for this connection.
        var released = false
        var lastActivity: NIODeadline
        var socket = SocketState.unattached
        /// Client: the OPEN was answered early (`open` returned true) and its OPEN-RESULT has not arrived; the
        /// socket is the relay's meanwhile.
        var answeredEarly = false
        /// Client, under `EarlyReply.known`: the OPEN's target (as the application's host reaches it) until its
        /// OPEN-RESULT, which vouches for it or not.
        var openTarget: KnownTargets.Key?

        // TCP → stream
        var input = InputState.reading
        /// Bytes read and not yet sent (they wait for credit), oldest first; `appendPending`, `consumePending` and
        /// `dropPending` keep `unsent` current, and a record that goes with bytes left takes them out of it.
        private(set) var pending = Deque<ByteBuffer>()
        private var pendingBytes = 0
        let unsent: ByteTally
        /// The socket's handler asked to read and has not been allowed to yet.
        var readWanted = false
        /// On `readWaiters` (membership of that list, not a state of the stream).
        var isReadWaiter = false
        /// The number of the read allowed and not yet come, while it holds room (`readGrants`); 0 when none.
        var readGrant: UInt64 = 0
        /// Server: its connect waits on `waitingConnects`.
        var isWaitingToConnect = false
        /// Server: its connect was let go by `resumeConnects` and its target has sent nothing yet
        /// (`connectReservations`).
        var holdsConnectReservation = false

        // Stream → TCP
        var output = OutputState.writing
        /// DATA that arrived before a socket was attached.
        var backlog: [ByteBuffer] = []
        var writesInFlight = 0
        /// Bytes of `backlog` and of writes in flight.
        var bufferedBytes = 0
        /// Credit owed to the peer but held while the association is at its buffered-bytes limit.
        var heldCredit: UInt32 = 0

        init(stream: StreamID, state: StreamState, lastActivity: NIODeadline, unsent: ByteTally) {
            self.stream = stream
            self.state = state
            self.lastActivity = lastActivity
            self.unsent = unsent
        }

        deinit { unsent.bytes -= pendingBytes }

        func appendPending(_ bytes: ByteBuffer) {
            pending.append(bytes)
            countPending(bytes.readableBytes)
        }

        /// `count` bytes of the oldest pending buffer went out.
        func consumePending(_ count: Int) {
            pending[pending.startIndex].moveReaderIndex(forwardBy: count)
            if pending[pending.startIndex].readableBytes == 0 { pending.removeFirst() }
            countPending(-count)
        }

        func dropPending() {
            pending.removeAll()
            countPending(-pendingBytes)
        }

        private func countPending(_ change: Int) {
            pendingBytes += change
            unsent.bytes += change
        }
    }

    /// The TCP socket of a connection, as the session sees it.
    private enum SocketState: Equatable {
        /// No socket takes writes yet: the client's before OPEN and between OPEN-RESULT ok and `handleAttached`
        /// (DATA waits in the backlog), the server's while it connects to the target.
        case unattached
        /// Client: OPEN sent, the application waits for the answer; its socket is still the ingress's.
        case awaitingOpenResult
        /// Takes writes and is read: client after OPEN-RESULT ok and `handleAttached`, server after the connect.
        case attached
        /// Gone or closed by us (or, on the client, handed back to the ingress with a failure): nothing more is
        /// written to it or read from it.
        case done
    }

    /// TCP → stream: the socket's input, then the FIN that ends it on the stream.
    private enum InputState: Equatable {
        /// Bytes read go out as DATA.
        case reading
        /// The socket's input ended: FIN follows once every byte read went out.
        case ended
        /// FIN sent: this direction is finished.
        case finSent
    }

    /// Stream → TCP: the peer's DATA, then its FIN, which half-closes the socket after the last write.
    private enum OutputState: Equatable {
        /// DATA is written to the socket.
        case writing
        /// The peer sent FIN: the socket's output ends once the backlog and every write in flight are done.
        case finReceived
        /// The socket's output was ended (`.endOutput`): this direction is finished.
        case ended
    }

    package init(
        role: StreamState.Role, table: StreamTable, receiveCredit: UInt32, sendCredit: UInt32,
        idleTimeout: TimeAmount, associationIdleTimeout: TimeAmount = TimeAmount(StreamLimits().associationIdleTimeout),
        openTimeout: TimeAmount = .seconds(10), bufferedBytesLimit: Int = StreamLimits().bufferedBytesPerAssociation,
        logger: Logger, now: NIODeadline
    ) {
        self.role = role
        self.table = table
        self.receiveCredit = receiveCredit
        self.sendCredit = sendCredit
        self.idleTimeout = idleTimeout
        self.associationIdleTimeout = associationIdleTimeout
        self.openTimeout = openTimeout
        self.bufferedBytesLimit = bufferedBytesLimit
        self.logger = logger
        self.idleSince = now
        self.clock = now
        self.nextSweep = now + Self.sweepInterval(idleTimeout, associationIdleTimeout)
    }

    private static func sweepInterval(_ idle: TimeAmount, _ associationIdle: TimeAmount) -> TimeAmount {
        min(idle, associationIdle, .seconds(30))
    }

    // MARK: - Outputs

    package mutating func pollAction() -> StreamSessionAction? { actions.popFirst() }

    /// When `handleTimeout` must run next; nil once the session is closed.
    /// `nextDeadline` for a holder that keeps the session in a class property and asks after every input: a
    /// mutating access reads it in place, where reading the property from another module copies the whole session
    /// (every dictionary and queue retained and released) each time.
    package mutating func readNextDeadline() -> NIODeadline? { nextDeadline }

    package var nextDeadline: NIODeadline? {
        guard !isClosed else { return nil }
        var next = nextSweep
        if let open = openDeadlines.first { next = min(next, open.deadline) }
        if let waiter = streamWaiters.first { next = min(next, waiter.deadline) }
        // Waiting reads go on when an allowed read expires (one that comes resumes them itself).
        if !readWaiters.isEmpty, let grant = readGrants.first, isAssociationWritable { next = min(next, grant.expiry) }
        if !waitingConnects.isEmpty { next = min(next, nextConnectStep) }
        return next
    }

    /// Connections whose stream is in use on this side.
    package var activeStreams: Int { streams.count }

    /// Whether this side holds as many received bytes waiting for sockets as it may: credit stays with us.
    var isOverBufferedLimit: Bool { bufferedBytes >= bufferedBytesLimit }

    /// Whether DATA of `count` bytes would take the association past its buffered-bytes limit, so that receiving
    /// it resets the stream holding the most (`makeRoom`). The glue flushes unflushed writes before such DATA.
    package func wouldExceedBufferedLimit(receiving count: Int) -> Bool { bufferedBytes + count > bufferedBytesLimit }

    /// The bytes `connection` holds for its socket (tests and the reset choice at the cap).
    func bufferedBytes(of connection: ConnectionID) -> Int? { connections[connection]?.bufferedBytes }

    /// The stream a live connection uses.
    func stream(of connection: ConnectionID) -> StreamID? { connections[connection]?.stream }

    /// Whether the session still tracks `connection`.
    func contains(_ connection: ConnectionID) -> Bool { connections[connection] != nil }

    // MARK: - Client: new connections

    /// What `requestStream` decided.
    package enum StreamRequest: Equatable {
        /// A stream is free: call `open` (or `cancelBeforeOpen`) with this connection.
        case granted(ConnectionID)
        /// Every stream is in use: `.streamGranted` or `.streamRefused` with this waiter id follows.
        case waiting(UInt64)
        case refused(ProxyFailure)
    }

    /// Client: a stream for a new connection, at once when one is free, else after waiting up to `wait` for one
    /// (at most `queueLimit` connections wait). Every wait and refusal is counted.
    package mutating func requestStream(
        waitingUpTo wait: TimeAmount, queueLimit: Int, now: NIODeadline
    ) -> StreamRequest {
        precondition(role == .client)
        clock = max(clock, now)
        guard !isClosed else { return .refused(.serverUnavailable) }
        if streamWaiters.isEmpty, let connection = allocateClientConnection(now: now) {
            return .granted(connection)
        }
        logTableFull(now: now)
        guard wait > .zero, streamWaiters.count < queueLimit else {
            metrics?.recordRefusal(isOverBufferedLimit ? .bufferedBytesPerAssociation : .streamsPerAssociation)
            return .refused(.tooManyStreams)
        }
        metrics?.recordStreamWait()
        let id = nextWaiter
        nextWaiter += 1
        streamWaiters.append((id, now + wait))
        return .waiting(id)
    }

    private mutating func allocateClientConnection(now: NIODeadline) -> ConnectionID? {
        guard !isClosed, !isOverBufferedLimit, let stream = table.allocate() else { return nil }
        let state = StreamState(role: .client, receiveCredit: receiveCredit, initialSendCredit: sendCredit)
        return addConnection(stream: stream, state: state, now: now)
    }

    private mutating func addConnection(stream: StreamID, state: StreamState, now: NIODeadline) -> ConnectionID {
        let id = connections.add(Connection(stream: stream, state: state, lastActivity: now, unsent: unsentReads))
        streams[stream] = id
        idleSince = nil
        streamsOpened += 1
        return id
    }

    /// Client: the application went away before OPEN was sent: the stream is free again at once.
    package mutating func cancelBeforeOpen(_ connection: ConnectionID) {
        guard let record = connections[connection], record.state.isFree else { return }
        release(connection)
        forgetIfDone(connection)
    }

    /// Client: sends OPEN, and `initialData` right behind it within the HELLO credit (at most
    /// `dataBeforeOpenResult` before the OPEN-RESULT). Returns whether the application is answered now (`policy`,
    /// else the session's `earlyReply`; under `known`, for targets `requester` reached lately): the glue then joins
    /// the relay to its socket at once and calls `handleAttached`, the socket's bytes follow the OPEN, and a failed
    /// OPEN-RESULT (or none in time) resets the socket. Otherwise `.opened` or `.openFailed` follows
    /// (`.openFailed(.timeout)` when no OPEN-RESULT arrives within `openTimeout`). An early answer's outcome is
    /// counted when the OPEN-RESULT comes.
    @discardableResult
    package mutating func open(
        _ connection: ConnectionID, to target: StreamTarget, initialData: ByteBuffer?,
        earlyReply policy: EarlyReply? = nil, requester: SCTPIPAddress? = nil, now: NIODeadline
    ) -> Bool {
        clock = max(clock, now)
        guard let record = connections[connection] else {
            actions.append(.openFailed(connection, .serverUnavailable))
            return false
        }
        guard transmit(.open(target, initialCredit: receiveCredit), on: record) != nil else {
            release(connection)
            forgetIfDone(connection)
            actions.append(.openFailed(connection, .generalFailure))
            return false
        }
        let early: Bool
        switch policy ?? earlyReply {
        case .never:
            early = false
        case .known:
            let key = KnownTargets.Key(target: target, requester: requester)
            early = knownTargets.contains(key, now: now)
            record.openTarget = key
        case .always:
            early = true
        }
        if early {
            record.answeredEarly = true
        } else {
            record.socket = .awaitingOpenResult
        }
        if let initialData, initialData.readableBytes > 0 { record.appendPending(initialData) }
        flushPending(connection)
        openDeadlines.append((now + openTimeout, connection))
        return early
    }

    /// Client: an early-answered open is over with `outcome` (the OPEN-RESULT came, or the connection ended
    /// first): counted once.
    private mutating func settleEarlyOpen(_ record: Connection, _ outcome: ConnectionOutcome) {
        guard record.answeredEarly else { return }
        record.answeredEarly = false
        metrics?.recordConnection(outcome)
    }

    /// Client: the OPEN's target reached (`succeeded`) or not, for `EarlyReply.known`.
    private mutating func learnTarget(_ record: Connection, succeeded: Bool, now: NIODeadline) {
        guard let target = record.openTarget else { return }
        record.openTarget = nil
        if succeeded {
            knownTargets.add(target, now: now)
        } else {
            knownTargets.remove(target)
        }
    }

    /// Client: the relay joined the application's channel after `.opened`, or right after an early-answered
    /// `open`: what arrived meanwhile is written.
    package mutating func handleAttached(_ connection: ConnectionID) {
        guard let record = connections[connection], record.socket == .unattached else { return }
        record.socket = .attached
        writeBacklog(connection)
    }

    /// After `.opened` (client) or a connect (server), the channel was gone or would not take the relay.
    package mutating func handleAttachFailed(_ connection: ConnectionID, _ reason: ResetReason, text: String) {
        // The glue reports this failure to the application, and counts it, as it would a failed OPEN-RESULT.
        connections[connection]?.answeredEarly = false
        reset(connection, reason, text: text)
    }

    // MARK: - Server: targets

    /// Server: the target accepted. False when the connection is over meanwhile (the client reset it): the glue
    /// closes the target's channel. Otherwise OPEN-RESULT ok goes out and what waited is written.
    package mutating func handleTargetConnected(_ connection: ConnectionID) -> Bool {
        guard let record = connections[connection], !record.released, record.state.phase != .idle else { return false }
        guard transmit(.openResult(.ok, text: nil), on: record) != nil else { return false }
        record.socket = .attached
        writeBacklog(connection)
        flushPending(connection)
        return true
    }

    /// Server: the connect failed; a failed OPEN-RESULT frees the stream.
    package mutating func handleTargetFailed(_ connection: ConnectionID, _ error: EgressError) {
        logger.debug("egress failed", metadata: ["connection": "\(connection)", "error": "\(error)"])
        guard let record = connections[connection], !record.released, record.state.phase != .idle else { return }
        refuse(connection, error.code, text: error.detail)
    }

    /// Server: answers OPEN with a failed OPEN-RESULT, which frees the stream.
    private mutating func refuse(_ connection: ConnectionID, _ code: OpenResultCode, text: String?) {
        guard let record = connections[connection] else { return }
        guard transmit(.openResult(code, text: text), on: record) != nil else { return }
        record.socket = .done
        release(connection)
        actions.append(.close(connection, abortively: false))
        forgetIfDone(connection)
    }

    // MARK: - Messages from the peer

    /// A message on stream 1 or above.
    package mutating func handleMessage(_ message: SCTPMessage, now: NIODeadline) {
        guard !isClosed else { return }
        clock = max(clock, now)
        let decoded: StreamMessage
        do {
            decoded = try StreamMessage.decode(ppid: message.ppid, payload: message.payload, stream: message.stream)
            if message.isUnordered { throw StreamDecodingError.unorderedNotAllowed(decoded.kind) }
        } catch {
            logger.debug("undecodable stream message", metadata: ["stream": "\(message.stream)", "error": "\(error)"])
            if let connection = streams[message.stream] { reset(connection, .protocolError, text: "\(error)") }
            return
        }
        if case .data(let bytes) = decoded {
            bytesReceived += bytes.readableBytes
            metrics?.recordRelayed(bytes.readableBytes, up: role == .server)
        }
        if let connection = streams[message.stream] {
            if case .data(let bytes) = decoded, !makeRoom(for: bytes.readableBytes, arrivingOn: connection) { return }
            receive(decoded, on: connection, now: now)
            return
        }
        switch role {
        case .client:
            // The server sends nothing after its terminal, so a message on a free stream is a late bug of the peer.
            logger.debug(
                "message on a free stream", metadata: ["stream": "\(message.stream)", "kind": "\(decoded.kind)"])
        case .server:
            receiveOnFreeServerStream(decoded, stream: message.stream, now: now)
        }
    }

    /// Server: OPEN creates a connection; anything else is the tail of one we already freed and is ignored.
    private mutating func receiveOnFreeServerStream(_ message: StreamMessage, stream: StreamID, now: NIODeadline) {
        guard case .open = message else { return }
        var state = StreamState(role: .server, receiveCredit: receiveCredit)
        guard case .open(let target)? = try? state.receive(message) else { return }
        let refusal: (code: OpenResultCode, text: String, reason: Refusal)?
        if isOverBufferedLimit {
            // The DATA that may follow this OPEN arrives on a free stream and is dropped: nothing is buffered.
            refusal = (
                .tooManyStreams, "the association buffers \(bufferedBytes) bytes, at its limit",
                .bufferedBytesPerAssociation
            )
        } else if !table.admit(stream) {
            refusal = (.tooManyStreams, "at most \(table.streamLimit) streams per association", .streamsPerAssociation)
        } else {
            refusal = nil
        }
        if let refusal {
            metrics?.recordConnection(.tooManyStreams)
            metrics?.recordRefusal(refusal.reason)
            let result = StreamMessage.openResult(refusal.code, text: refusal.text)
            if (try? state.send(result)) != nil { send(result, on: stream) }
            return
        }
        let connection = addConnection(stream: stream, state: state, now: now)
        logger.debug("OPEN", metadata: ["stream": "\(stream)", "target": "\(target)"])
        connectOrWait(connection, to: target)
    }

    /// Server: connects to the target at once, or, while the association holds `connectGate` read and not sent
    /// (with what the connects let go while it did and not heard from yet may bring) or connections wait already,
    /// behind the connections that wait. A target's bytes that come with its FIN are read whatever the read bound
    /// (`handleRead`): a burst of 10,000 small responses, each followed by the server's FIN, queued all of its
    /// 105 MB at once on loopback before connects waited.
    private mutating func connectOrWait(_ connection: ConnectionID, to target: StreamTarget) {
        let record = connections[connection]!
        guard liveWaitingConnects == 0, connectRoom() >= Self.connectReservation else {
            if liveWaitingConnects == 0 {
                nextConnectStep = Self.grantExpiry(after: clock)
                logger.debug(
                    "new connections wait to connect",
                    metadata: ["unsent": "\(unsentBytes())", "gate": "\(connectGate)"])
            }
            record.isWaitingToConnect = true
            liveWaitingConnects += 1
            waitingConnects.append((connection, target))
            return
        }
        actions.append(.connect(connection, target))
    }

    /// Server: the bytes a connection that connects may bring at once before any read is allowed (its target's
    /// answer and FIN), counted for each connect `resumeConnects` lets go until its target's first bytes come: the
    /// receive window Linux opens a connection with (`tcp_rmem`'s default), which a socket nobody reads does not
    /// grow. Connects made while nothing waits reserve nothing: thousands of connections opened at once to targets
    /// that stay silent would otherwise wait for each other's reservations.
    static let connectReservation = 64 * 1024
    /// Server: how long a connect holds its `connectReservation` when its target sends nothing: past a lost SYN's
    /// first retransmission (1 s), which a burst that overflows a target's backlog meets.
    static let connectReservationLifetime = TimeAmount.seconds(3)

    /// Server: the room under `connectGate` left by what was read and not sent and what the connects let go and
    /// not heard from yet may bring.
    private mutating func connectRoom() -> Int {
        expireConnectReservations()
        return connectGate - unsentBytes() - openConnectReservations * Self.connectReservation
    }

    /// Server: lets waiting connects go, oldest first, at most once per `readGrantLifetime`, as many as the room
    /// takes `connectReservation` each. A connect waits as long as the room lacks: one that waits past the
    /// client's OPEN timeout (10 s) is reset by the client and never goes. (Letting such connects go after 5 s
    /// whatever the room, tried, released the tail of a burst of 10,000 at once.)
    private mutating func resumeConnects() {
        guard !waitingConnects.isEmpty, clock >= nextConnectStep else { return }
        nextConnectStep = Self.grantExpiry(after: clock)
        var room = connectRoom()
        while let first = waitingConnects.first {
            guard let record = connections[first.connection], record.isWaitingToConnect else {
                waitingConnects.removeFirst()  // It went meanwhile.
                continue
            }
            guard room >= Self.connectReservation else { return }
            waitingConnects.removeFirst()
            stopWaitingToConnect(record)
            room -= Self.connectReservation
            record.holdsConnectReservation = true
            openConnectReservations += 1
            connectReservations.append((first.connection, clock + Self.connectReservationLifetime))
            actions.append(.connect(first.connection, first.target))
        }
    }

    private mutating func stopWaitingToConnect(_ record: Connection) {
        guard record.isWaitingToConnect else { return }
        record.isWaitingToConnect = false
        liveWaitingConnects -= 1
        // Entries of connections that went are dropped as they reach the front; when they outnumber the live
        // ones (a client resetting its OPENs as they wait), all at once.
        if waitingConnects.count > 2 * liveWaitingConnects + 64 {
            waitingConnects.removeAll { connections[$0.connection]?.isWaitingToConnect != true }
        }
    }

    /// The connection's target sent its first bytes or ended, or the connection is gone: its reservation is free.
    private mutating func settleConnectReservation(_ record: Connection) {
        guard record.holdsConnectReservation else { return }
        record.holdsConnectReservation = false
        openConnectReservations -= 1
    }

    /// Drops the reservations that were settled or expired from the front of `connectReservations`.
    private mutating func expireConnectReservations() {
        while let first = connectReservations.first {
            let record = connections[first.connection]
            if let record, record.holdsConnectReservation, first.expiry > clock { return }
            connectReservations.removeFirst()
            if let record { settleConnectReservation(record) }
        }
    }

    /// Waiting connects (for tests).
    var waitingConnectCount: (live: Int, listed: Int) { (liveWaitingConnects, waitingConnects.count) }

    private mutating func receive(_ message: StreamMessage, on connection: ConnectionID, now: NIODeadline) {
        guard let record = connections[connection] else { return }
        record.lastActivity = now
        let action: StreamReceiveAction
        do {
            action = try record.state.receive(message)
        } catch .openOnBusyStream {
            actions.append(.abortAssociation("OPEN on stream \(record.stream), which is still in use"))
            return
        } catch {
            reset(connection, error.resetReason, text: "\(error)")
            return
        }
        switch action {
        case .open:
            break  // Only on a free server stream: `receiveOnFreeServerStream`.
        case .opened:
            learnTarget(record, succeeded: true, now: now)
            // Bytes held back by `dataBeforeOpenResult` go now.
            flushPending(connection)
            if record.answeredEarly {
                settleEarlyOpen(record, .success)
                return
            }
            if record.socket == .awaitingOpenResult { record.socket = .unattached }
            actions.append(.opened(connection))
        case .openFailed(let code, let text):
            logger.debug(
                "OPEN failed", metadata: ["stream": "\(record.stream)", "code": "\(code)", "text": "\(text ?? "")"])
            // "Too many streams" is about the association, not the target.
            if code != .tooManyStreams { learnTarget(record, succeeded: false, now: now) }
            if record.answeredEarly {
                // The application was told it is connected: it learns otherwise from a reset.
                settleEarlyOpen(record, ConnectionOutcome(code))
                release(connection)
                closeSocket(connection, abortively: true)
                forgetIfDone(connection)
                return
            }
            record.socket = .done
            release(connection)
            forgetIfDone(connection)
            actions.append(.openFailed(connection, ProxyFailure(code) ?? .generalFailure))
        case .deliver(let bytes):
            deliver(bytes, to: connection)
        case .remoteFinished:
            record.output = .finReceived
            endOutputIfDone(connection)
        case .remoteFinishedMustSendClosed:
            record.output = .finReceived
            sendClosedAndRelease(connection)
            endOutputIfDone(connection)
        case .credit:
            flushPending(connection)
        case .resetByPeer(let reason, let text, let mustAnswer):
            logger.debug(
                "stream reset by peer",
                metadata: ["stream": "\(record.stream)", "reason": "\(reason)", "text": "\(text ?? "")"])
            if mustAnswer { send(.reset(reason, text: nil), on: record.stream) }
            release(connection)
            settleEarlyOpen(record, .generalFailure)
            if record.socket == .awaitingOpenResult {
                record.socket = .done
                actions.append(.openFailed(connection, .generalFailure))
            }
            closeSocket(connection, abortively: true)
        case .released:
            release(connection)
            closeIfFinished(connection)
            forgetIfDone(connection)
        case .ignored:
            break
        }
    }

    private mutating func sendClosedAndRelease(_ connection: ConnectionID) {
        guard let record = connections[connection], transmit(.closed, on: record) != nil else { return }
        release(connection)
    }

    // MARK: - Stream → TCP

    private mutating func deliver(_ bytes: ByteBuffer, to connection: ConnectionID) {
        guard let record = connections[connection], record.socket != .done else { return }
        account(bytes.readableBytes, on: connection)
        if record.socket == .attached {
            write(bytes, to: connection)
        } else {
            record.backlog.append(bytes)
        }
    }

    private mutating func writeBacklog(_ connection: ConnectionID) {
        guard let record = connections[connection], record.socket == .attached else { return }
        let queued = record.backlog
        record.backlog = []  // Still counted: each is counted out when its write completes.
        for bytes in queued { write(bytes, to: connection) }
        endOutputIfDone(connection)
    }

    private mutating func write(_ bytes: ByteBuffer, to connection: ConnectionID) {
        guard let record = connections[connection] else { return }
        record.writesInFlight += 1
        actions.append(.write(bytes, to: connection))
    }

    /// A `.write` finished (`succeeded`: the socket took the bytes). Credit for them goes back to the peer.
    package mutating func handleWriteCompleted(_ connection: ConnectionID, bytes count: Int, succeeded: Bool) {
        // After this side closed the socket, its writes were already counted out.
        guard let record = connections[connection], record.writesInFlight > 0 else { return }
        record.writesInFlight -= 1
        account(-count, on: connection)
        if succeeded, !record.released,
            case .windowUpdate(let credit)? = record.state.consumed(count)
        {
            returnCredit(credit, on: connection)
        }
        endOutputIfDone(connection)
        forgetIfDone(connection)
    }

    // MARK: - Buffered bytes and credit

    /// Adds `delta` to the connection's buffered bytes and to the association's. Credit held back while bytes were
    /// waiting goes out once the socket has taken them all; below the limit, waiters are served.
    private mutating func account(_ delta: Int, on connection: ConnectionID) {
        guard delta != 0, let record = connections[connection] else { return }
        record.bufferedBytes += delta
        bufferedBytes += delta
        assert(bufferedBytes >= 0, "buffered bytes went negative: \(bufferedBytes)")
        if record.bufferedBytes == 0, record.heldCredit > 0 {
            sendHeldCredit(connection)
        }
        guard delta < 0, !isOverBufferedLimit else { return }
        if !streamWaiters.isEmpty { serveStreamWaiters() }
        guard !creditWaiters.isEmpty else { return }
        let waiters = creditWaiters
        creditWaiters.removeAll()
        for waiter in waiters { sendHeldCredit(waiter) }
    }

    /// Drops DATA that waits for a socket (the connection is over); it no longer counts as buffered.
    private mutating func dropBacklog(_ connection: ConnectionID) {
        guard let record = connections[connection], !record.backlog.isEmpty else { return }
        let dropped = record.backlog.reduce(0) { $0 + $1.readableBytes }
        record.backlog.removeAll()
        account(-dropped, on: connection)
    }

    /// Sends a WINDOW-UPDATE, or holds it while the association is at its buffered-bytes limit and this connection
    /// still has bytes its socket has not taken: a stalled stream's peer then runs out of credit and stops, while
    /// a stream whose socket keeps up keeps its credit flowing, so one slow reader does not stall the others.
    private mutating func returnCredit(_ credit: UInt32, on connection: ConnectionID) {
        let record = connections[connection]!
        let total = record.heldCredit &+ credit
        guard !isOverBufferedLimit || record.bufferedBytes == 0 else {
            record.heldCredit = total
            if !creditWaiters.contains(connection) { creditWaiters.append(connection) }
            return
        }
        record.heldCredit = 0
        send(.windowUpdate(credit: total), on: record.stream)
    }

    /// Below the limit again (or the socket took everything): held credit goes out if the peer may still send.
    private mutating func sendHeldCredit(_ connection: ConnectionID) {
        guard let record = connections[connection] else { return }
        let credit = record.heldCredit
        record.heldCredit = 0
        guard credit > 0, !record.released, record.state.mayReceiveData else { return }
        send(.windowUpdate(credit: credit), on: record.stream)
    }

    /// Keeps the association within `bufferedBytesLimit` when `count` more bytes arrive on `connection`: each
    /// stream's credit is within the rules, but together the streams may hold more credit than the cap. While the
    /// bytes do not fit, the connection holding the most buffered bytes is reset, which drops its bytes at once.
    /// False when the arriving connection was the one reset (its DATA is dropped). Each reset is counted. The scan
    /// runs only at the cap, and each reset frees at least the average holding.
    private mutating func makeRoom(for count: Int, arrivingOn connection: ConnectionID) -> Bool {
        while bufferedBytes + count > bufferedBytesLimit {
            let victim = streams.values.max { connections[$0]!.bufferedBytes < connections[$1]!.bufferedBytes }
            // Nothing to take back from a stream (the bytes belong to finished connections' last writes): the
            // arriving connection goes.
            let target = victim.flatMap { connections[$0]!.bufferedBytes > 0 ? $0 : nil } ?? connection
            let before = bufferedBytes
            metrics?.recordRefusal(.bufferedBytesPerAssociation)
            logger.debug(
                "stream reset at the association's buffered-bytes limit",
                metadata: [
                    "connection": "\(target)", "holding": "\(connections[target]?.bufferedBytes ?? 0)",
                    "buffered": "\(before)",
                ])
            reset(
                target, .flowControlError,
                text: "the association buffers \(before) bytes, its limit is \(bufferedBytesLimit)")
            if target == connection { return false }
            if bufferedBytes >= before {
                // The reset connection's bytes are not freed yet: do not take more streams down for them.
                reset(connection, .flowControlError, text: "the association buffers \(before) bytes")
                metrics?.recordRefusal(.bufferedBytesPerAssociation)
                return false
            }
        }
        return true
    }

    /// After the peer's FIN and the last write: half-close the socket (or detach from an HTTP forward request).
    private mutating func endOutputIfDone(_ connection: ConnectionID) {
        guard let record = connections[connection], record.output == .finReceived, record.writesInFlight == 0,
            record.backlog.isEmpty, record.socket == .attached
        else { return }
        record.output = .ended
        actions.append(.endOutput(connection))
        closeIfFinished(connection)
    }

    /// Both directions are finished: the socket closes.
    private mutating func closeIfFinished(_ connection: ConnectionID) {
        guard let record = connections[connection], record.output == .ended, record.input == .finSent,
            record.writesInFlight == 0
        else { return }
        closeSocket(connection, abortively: false)
    }

    // MARK: - TCP → stream

    /// Bytes read from the connection's socket. `allowed` is false for a read the session did not allow: at a
    /// peer's FIN, NIO reads everything the kernel holds for the socket (`EPOLLRDHUP`), whatever the reads allowed.
    /// Such a read that would take what the association read and has not sent past `unsentLimit` resets its stream
    /// and drops its bytes: it brings the socket's receive window, 64 KiB for one held back from the start and up
    /// to 6 MiB for one that read fast before, and a client whose targets all fill it and close could otherwise
    /// queue that much for every stream (1 GiB at 16,384 streams). Counted as a refusal at the buffered-bytes limit.
    package mutating func handleRead(
        _ connection: ConnectionID, _ bytes: ByteBuffer, allowed: Bool = true, now: NIODeadline
    ) {
        guard let record = connections[connection], bytes.readableBytes > 0, record.input == .reading,
            record.socket != .done, !record.released
        else { return }
        clock = max(clock, now)
        record.lastActivity = now
        settleReadGrant(record)
        settleConnectReservation(record)
        if !allowed, case let unsent = unsentBytes(), unsent + bytes.readableBytes > unsentLimit {
            metrics?.recordRefusal(.bufferedBytesPerAssociation)
            logger.debug(
                "stream reset: its socket's last bytes would take the association past its limit",
                metadata: ["connection": "\(connection)", "read": "\(bytes.readableBytes)", "unsent": "\(unsent)"])
            reset(
                connection, .flowControlError,
                text: "the association holds \(unsent) bytes read and not sent, its limit is \(unsentLimit)")
            resumeReads()
            return
        }
        record.appendPending(Self.ownStorage(bytes))
        flushPending(connection)
        resumeReads()
    }

    /// `bytes`, in a buffer of their own when their storage is more than twice their size. DATA goes out as slices
    /// of what the socket read, and the association's send queue counts the bytes it holds, not their storage: a
    /// short read into a large buffer (a connection's reads shrink only after two short ones) would pin the whole
    /// buffer while counting a few bytes. Copied, what is queued holds at most twice what is counted.
    static func ownStorage(_ bytes: ByteBuffer) -> ByteBuffer {
        guard bytes.storageCapacity > 2 * bytes.readableBytes else { return bytes }
        var copy = ByteBufferAllocator().buffer(capacity: bytes.readableBytes)
        copy.writeImmutableBuffer(bytes)
        return copy
    }

    /// The socket's handler wants to read more: it does at once when its bytes went out and the association has
    /// room for it, behind the connections already waiting for room.
    package mutating func handleReadRequested(_ connection: ConnectionID, now: NIODeadline) {
        guard let record = connections[connection] else { return }
        clock = max(clock, now)
        record.readWanted = true
        guard record.pending.isEmpty, !record.released else { return }  // It reads once they go.
        if readWaiters.isEmpty || !isAssociationWritable, mayRead(record) {
            grantRead(connection, record)
        } else {
            addReadWaiter(connection, record)
        }
    }

    /// Whether the association takes what the connection's socket would give now. While the association is
    /// writable, when the reads already allowed leave room for one more; past its watermark, when it still takes
    /// bytes on this connection's stream (`streamTakesMore`: a light stream's few bytes, which the scheduler sends
    /// before the bulk ones).
    ///
    /// With less room than one reservation (bytes waiting for the streams' credit can hold it while the queue is
    /// writable) reads are not held back: they would be cut to 2 KiB anyway, and one at a time each would wait for
    /// the last grant to come or expire.
    private mutating func mayRead(_ record: Connection) -> Bool {
        guard isAssociationWritable else { return streamTakesMore(record.stream) }
        expireReadGrants()
        guard openReadGrants > 0 else { return true }
        let room = readRoom()
        return room < Self.readReservation || room >= (openReadGrants + 1) * Self.readReservation
    }

    private mutating func grantRead(_ connection: ConnectionID, _ record: Connection) {
        record.readWanted = false
        if record.readGrant == 0 { openReadGrants += 1 }
        record.readGrant = nextReadGrant
        readGrants.append((connection, nextReadGrant, Self.grantExpiry(after: clock)))
        nextReadGrant += 1
        actions.append(.read(connection))
    }

    /// When a read allowed at `now` stops holding room: `readGrantLifetime` later, rounded up to a multiple of it,
    /// so that the session's deadline, which follows the oldest grant while reads wait, moves once per lifetime
    /// and not with every grant (each move re-arms the holder's timer).
    static func grantExpiry(after now: NIODeadline) -> NIODeadline {
        let lifetime = readGrantLifetime.nanoseconds
        let end = Int64(truncatingIfNeeded: now.uptimeNanoseconds) + lifetime
        return .uptimeNanoseconds(UInt64(end + (lifetime - end % lifetime) % lifetime))
    }

    /// The connection's allowed read came (bytes, or the end of its input), or the connection is gone: the room
    /// set aside for it is free.
    private mutating func settleReadGrant(_ record: Connection) {
        guard record.readGrant != 0 else { return }
        record.readGrant = 0
        openReadGrants -= 1
    }

    /// Drops the grants that came or expired from the front of `readGrants`: an expired one's room is free.
    private mutating func expireReadGrants() {
        while let first = readGrants.first {
            let record = connections[first.connection]
            let isOpen = record?.readGrant == first.number
            guard !isOpen || first.expiry <= clock else { return }
            readGrants.removeFirst()
            if isOpen, let record { settleReadGrant(record) }
        }
    }

    /// Lists a connection whose read waits for room (a read that waits for credit or for its socket resumes when
    /// that comes), once.
    private mutating func addReadWaiter(_ connection: ConnectionID, _ record: Connection) {
        guard !record.isReadWaiter else { return }
        record.isReadWaiter = true
        readWaiters.append(connection)
    }

    /// Lets waiting connections read, in the order they asked, while the association is writable and has room:
    /// when it drains, when an allowed read comes, when one expires.
    private mutating func resumeReads() {
        // Letting a read in only queues an action: the association's answer holds for the whole loop.
        guard !readWaiters.isEmpty, isAssociationWritable else { return }
        while let connection = readWaiters.first {
            guard let record = connections[connection] else {
                readWaiters.removeFirst()
                continue
            }
            guard mayRead(record) else { return }
            readWaiters.removeFirst()
            record.isReadWaiter = false
            flushPending(connection)
        }
    }

    /// The application (client) or target (server) finished sending: FIN once everything read went out.
    package mutating func handleInputEnded(_ connection: ConnectionID) {
        guard let record = connections[connection] else { return }
        if record.input == .reading { record.input = .ended }
        settleReadGrant(record)
        settleConnectReservation(record)
        flushPending(connection)
        resumeReads()
    }

    /// Sends pending bytes within the credit, then FIN once input ended; reads again when all went out.
    private mutating func flushPending(_ connection: ConnectionID) {
        guard let record = connections[connection], !record.released else { return }
        while let first = record.pending.first, record.state.maySendData, case let window = sendable(record),
            window > 0
        {
            let size = min(first.readableBytes, window, AggLimits.maxDataPayload)
            guard transmit(.data(first.getSlice(at: first.readerIndex, length: size)!), on: record) != nil else {
                break
            }
            record.consumePending(size)
        }
        if record.pending.isEmpty, record.input == .ended { sendFin(connection) }
        readIfPossible(connection)
    }

    /// DATA bytes the connection may send now: its credit, and before the OPEN-RESULT (client) at most
    /// `dataBeforeOpenResult` in all, so a connection to a target that never answers parks little on the server.
    private func sendable(_ record: Connection) -> Int {
        let available = record.state.sendWindow.available
        guard role == .client, case .opening = record.state.phase, Int(sendCredit) > Self.dataBeforeOpenResult
        else { return available }
        // No WINDOW-UPDATE comes before the OPEN-RESULT: what was sent is the initial credit less what is left.
        return max(0, available - (Int(sendCredit) - Self.dataBeforeOpenResult))
    }

    private mutating func readIfPossible(_ connection: ConnectionID) {
        guard let record = connections[connection], record.readWanted else { return }
        guard record.socket != .done else {
            record.readWanted = false  // Nothing is read from a socket that is gone.
            return
        }
        guard record.pending.isEmpty, !record.released, record.socket == .attached else {
            return  // It reads once its bytes went out, once it is attached.
        }
        // A listed connection reads in its turn; past the watermark, a light one at once.
        guard !record.isReadWaiter || (!isAssociationWritable && streamTakesMore(record.stream)) else { return }
        if mayRead(record) {
            grantRead(connection, record)
        } else {
            addReadWaiter(connection, record)
        }
    }

    private mutating func sendFin(_ connection: ConnectionID) {
        guard let record = connections[connection], !record.released, record.state.maySendData,
            let result = transmit(.fin, on: record)
        else { return }
        record.input = .finSent
        if result == .mustSendClosed { sendClosedAndRelease(connection) }
        closeIfFinished(connection)
    }

    /// The association's send buffer drained (the engine's writable event): connections waiting for it read again
    /// while it is still writable, as many as its room takes.
    package mutating func handleWritable() {
        resumeReads()
    }

    // MARK: - Socket life

    /// Client, HTTP forward request: the relay left the pipeline after the response. The request direction is
    /// finished too.
    private mutating func handleDetached(_ connection: ConnectionID) {
        guard let record = connections[connection], record.socket != .done else { return }
        record.dropPending()
        if record.input != .finSent {
            record.input = .ended
            sendFin(connection)
        }
        record.socket = .done
        forgetIfDone(connection)
    }

    /// The relay was removed from the socket's pipeline by something else: the connection is cancelled.
    package mutating func handleRemoved(_ connection: ConnectionID) {
        guard let record = connections[connection], record.socket != .done else { return }
        if record.output == .ended {
            handleDetached(connection)
        } else {
            reset(connection, .cancelled, text: "relay removed", closeSocket: false)
            record.socket = .done
            forgetIfDone(connection)
        }
    }

    /// The socket closed: a connection that is not finished both ways is reset.
    package mutating func handleSocketClosed(_ connection: ConnectionID) {
        guard let record = connections[connection], record.socket != .done else { return }
        if record.output == .ended {
            // Everything from the peer was delivered and the socket closed: that is its end of input.
            record.socket = .done
            if record.input == .reading { record.input = .ended }
            flushPending(connection)
        } else {
            // An application still waiting for OPEN-RESULT is answered by the reset, which marks its socket done.
            if record.socket != .awaitingOpenResult { record.socket = .done }
            reset(connection, .connectionReset, text: "the TCP connection closed", closeSocket: false)
        }
        forgetIfDone(connection)
    }

    /// The socket failed.
    package mutating func handleSocketError(_ connection: ConnectionID, _ error: String) {
        logger.debug("TCP error", metadata: ["connection": "\(connection)", "error": "\(error)"])
        reset(connection, .connectionReset, text: error)
    }

    // MARK: - Aborting

    /// Abortive close from this side: RESET to the peer (unless the stream is already over) and RST on the socket.
    mutating func reset(
        _ connection: ConnectionID, _ reason: ResetReason, text: String?, closeSocket close: Bool = true
    ) {
        guard let record = connections[connection] else { return }
        if !record.released, record.state.phase != .idle, record.state.phase != .closed || role == .server {
            if transmit(.reset(reason, text: text), on: record) == .released { release(connection) }
        }
        if record.socket == .awaitingOpenResult {
            record.socket = .done
            actions.append(.openFailed(connection, .generalFailure))
        }
        settleEarlyOpen(record, .generalFailure)
        record.dropPending()
        dropBacklog(connection)
        if close { closeSocket(connection, abortively: true) }
        forgetIfDone(connection)
    }

    private mutating func closeSocket(_ connection: ConnectionID, abortively: Bool) {
        guard let record = connections[connection] else { return }
        record.dropPending()
        dropBacklog(connection)
        guard ownsSocket(record) else { return }
        record.socket = .done
        actions.append(.close(connection, abortively: abortively))
        // Closing drops what the socket has not taken: those writes fail and their bytes no longer count, at once
        // (the cap makes room with this).
        if record.bufferedBytes > 0 { account(-record.bufferedBytes, on: connection) }
        record.writesInFlight = 0
        forgetIfDone(connection)
    }

    /// Whether the session closes the connection's socket: an attached one, or the server's target connection
    /// while it is made. A client socket never attached (the OPEN failed or is pending) belongs to the ingress,
    /// which answers it.
    private func ownsSocket(_ record: Connection) -> Bool {
        switch record.socket {
        case .attached: return true
        case .unattached: return role == .server
        case .awaitingOpenResult, .done: return false
        }
    }

    /// The stream id is free on this side: nothing more is sent for the connection, and a new one may take it.
    private mutating func release(_ connection: ConnectionID) {
        guard let record = connections[connection], !record.released else { return }
        record.released = true
        stopWaitingToConnect(record)
        settleConnectReservation(record)
        if streams[record.stream] == connection {
            streams[record.stream] = nil
            table.release(record.stream)
        }
        creditWaiters.removeAll { $0 == connection }
        if streams.isEmpty, idleSince == nil { idleSince = clock }
        if streams.isEmpty { reportDrainedIfDone() }
        if !streamWaiters.isEmpty { serveStreamWaiters() }
    }

    /// Drops the record of a finished connection: its stream is free, its socket done (or never attached) and
    /// its last write completed.
    private mutating func forgetIfDone(_ connection: ConnectionID) {
        guard let record = connections[connection], record.released, record.writesInFlight == 0,
            record.socket == .done || record.socket == .unattached
        else { return }
        if record.bufferedBytes != 0 { account(-record.bufferedBytes, on: connection) }
        settleReadGrant(record)
        settleConnectReservation(record)
        connections.remove(connection)
        resumeReads()
    }

    // MARK: - Waiting for a stream

    /// Gives freed streams to waiting connections, oldest first.
    private mutating func serveStreamWaiters() {
        while let waiter = streamWaiters.first, let connection = allocateClientConnection(now: clock) {
            streamWaiters.removeFirst()
            actions.append(.streamGranted(waiter: waiter.id, connection))
        }
    }

    /// One warning per minute at most while connections find every stream in use: the operator learns the limit
    /// and how to raise it.
    private mutating func logTableFull(now: NIODeadline) {
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

    // MARK: - Time

    /// Ends OPENs without an answer in time, waits for a stream that ran out, idle streams, and reports an idle
    /// association.
    package mutating func handleTimeout(now: NIODeadline) {
        guard !isClosed else { return }
        clock = max(clock, now)
        while let first = openDeadlines.first, first.deadline <= now {
            openDeadlines.removeFirst()
            guard let record = connections[first.connection] else { continue }
            if record.answeredEarly {
                learnTarget(record, succeeded: false, now: now)
                settleEarlyOpen(record, .timeout)
                reset(first.connection, .cancelled, text: "no OPEN-RESULT in time")
                continue
            }
            guard record.socket == .awaitingOpenResult else { continue }
            learnTarget(record, succeeded: false, now: now)
            record.socket = .done
            reset(first.connection, .cancelled, text: "no OPEN-RESULT in time", closeSocket: false)
            actions.append(.openFailed(first.connection, .timeout))
        }
        while let first = streamWaiters.first, first.deadline <= now {
            streamWaiters.removeFirst()
            metrics?.recordRefusal(isOverBufferedLimit ? .bufferedBytesPerAssociation : .streamsPerAssociation)
            actions.append(.streamRefused(waiter: first.id, .tooManyStreams))
        }
        resumeConnects()
        if !readWaiters.isEmpty {
            expireReadGrants()
            resumeReads()
        }
        guard now >= nextSweep else { return }
        nextSweep = now + Self.sweepInterval(idleTimeout, associationIdleTimeout)
        for connection in Array(streams.values) where now - connections[connection]!.lastActivity > idleTimeout {
            reset(connection, .idleTimeout, text: "no data for \(idleTimeout.nanoseconds / 1_000_000_000) s")
        }
        if let since = idleSince, now - since >= associationIdleTimeout {
            idleSince = nil
            actions.append(.idle)
        }
    }

    /// The daemon is stopping: running connections go on, and `.drained` follows once none is left (at once when
    /// none is open). New connections are the ingress's and the listeners' business: they are closed by then.
    package mutating func handleDrain() {
        isDraining = true
        reportDrainedIfDone()
    }

    private mutating func reportDrainedIfDone() {
        guard isDraining, !drainedReported, streams.isEmpty, !isClosed else { return }
        drainedReported = true
        actions.append(.drained)
    }

    /// Something other than a stream (a UDP flow) used the association: the idle clock starts again from now.
    package mutating func restartIdleClock(now: NIODeadline) {
        clock = max(clock, now)
        if streams.isEmpty { idleSince = now }
    }

    /// The association is gone: every connection is reset, pending opens fail as "server unavailable".
    package mutating func handleAssociationLost() {
        guard !isClosed else { return }
        isClosed = true
        for waiter in streamWaiters { actions.append(.streamRefused(waiter: waiter.id, .serverUnavailable)) }
        streamWaiters.removeAll()
        openDeadlines.removeAll()
        creditWaiters.removeAll()
        for connection in connections.ids {
            let record = connections[connection]!
            record.dropPending()
            settleEarlyOpen(record, .serverUnavailable)
            if record.socket == .awaitingOpenResult {
                actions.append(.openFailed(connection, .serverUnavailable))
            } else if ownsSocket(record) {
                actions.append(.close(connection, abortively: true))
            }
            bufferedBytes -= record.bufferedBytes
            record.bufferedBytes = 0
            connections.remove(connection)
        }
        readWaiters.removeAll()
        readGrants.removeAll()
        openReadGrants = 0
        waitingConnects.removeAll()
        liveWaitingConnects = 0
        connectReservations.removeAll()
        openConnectReservations = 0
        streams.removeAll()
    }

    // MARK: - Sending

    /// Runs `message` through the connection's stream state and, when the state allows it, sends it: one call for
    /// both, so nothing is ever sent that the state did not accept. Nil (and nothing sent) when it refused.
    private mutating func transmit(_ message: StreamMessage, on record: Connection) -> StreamSendResult? {
        guard let result = try? record.state.send(message) else { return nil }
        send(message, on: record.stream)
        return result
    }

    private mutating func send(_ message: StreamMessage, on stream: StreamID) {
        if case .data(let bytes) = message {
            bytesSent += bytes.readableBytes
            metrics?.recordRelayed(bytes.readableBytes, up: role == .client)
        }
        actions.append(.send(message, on: stream))
    }
}

/// A count of bytes shared by a session and its connections' records (`StreamSession.unsentReads`), so that a record
/// can take its bytes out as it goes; read by the glue on the session's event loop.
package final class ByteTally: @unchecked Sendable {
    package fileprivate(set) var bytes = 0
}
