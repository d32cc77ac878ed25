import AggObservability
import Logging
import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol
@testable import Proxy

/// One side of a lockstep test: a `StreamSession` and a model of its sockets. The test moves every `.send` of
/// one side to the other as an ordered SCTP message, completes (or holds) socket writes, and reads the rest of
/// the actions as what the glue would have done.
///
/// A server side may instead be a whole `ServerSession` (`LockstepSide(machine:)`), a client side a whole
/// `ClientSession` (`LockstepSide(clientMachine:)`): its streams are the session's once it is ready, stream
/// messages go through it, and `run` takes its actions, the streams' among them.
final class LockstepSide {
    /// The streams, when the side keeps them itself.
    private var own: StreamSession?
    /// Server: the association's state machine, which holds the streams once the client authenticated.
    private(set) var machine: ServerSession?
    /// What `machine` asked besides the streams' actions, in order, not yet taken by the test (`takeMachineActions`).
    var machineActions: [ServerSessionAction] = []
    /// Client: the attempt's state machine, which holds the streams once the server authenticated.
    private(set) var clientMachine: ClientSession?
    /// What `clientMachine` asked besides the streams' actions, in order, not yet taken by the test
    /// (`takeClientMachineActions`).
    var clientMachineActions: [ClientSessionAction] = []

    /// The streams, in place (on a side with a machine, the machine's: it must be ready).
    var session: StreamSession {
        get { own ?? machine?.withStreams { $0 } ?? clientMachine!.withStreams { $0 }! }
        set {
            if own != nil {
                own = newValue
            } else if machine != nil {
                machine!.withStreams { $0 = newValue }
            } else {
                clientMachine!.withStreams { $0 = newValue }
            }
        }
    }
    /// Messages this side sent, not yet delivered to the peer.
    var outbox: [(StreamMessage, StreamID)] = []
    /// Bytes each connection's socket took (writes completed).
    var written: [ConnectionID: ByteBuffer] = [:]
    /// Writes the socket has not taken yet (held when `holdWrites`).
    var heldWrites: [(ConnectionID, Int)] = []
    var holdWrites = false
    var reads: [ConnectionID: Int] = [:]
    /// The connections read, in the order the session asked.
    var readOrder: [ConnectionID] = []
    var outputEnded: Set<ConnectionID> = []
    var closed: [ConnectionID: Bool] = [:]  // abortively?
    var opened: [ConnectionID] = []
    var openFailures: [ConnectionID: ProxyFailure] = [:]
    var connects: [(ConnectionID, StreamTarget)] = []
    var granted: [UInt64: ConnectionID] = [:]
    var refused: [UInt64: ProxyFailure] = [:]
    var aborted: [String] = []
    var idleReports = 0
    var drainedReports = 0
    /// What the side's engine answers to `StreamSession.associationWritable` (`fillAssociation`,
    /// `drainAssociation`).
    private(set) var associationIsWritable = true

    /// The association's send buffer fills: the engine says it is not writable from now on.
    func fillAssociation() {
        associationIsWritable = false
        session.associationWritable = { [unowned self] in self.associationIsWritable }
    }

    /// The association's send buffer drains: writable again, and the session hears it (`handleWritable`).
    func drainAssociation() {
        associationIsWritable = true
        session.handleWritable()
    }

    init(_ session: StreamSession) {
        own = session
    }

    init(machine: ServerSession) {
        self.machine = machine
    }

    init(clientMachine: ClientSession) {
        self.clientMachine = clientMachine
    }

    /// Changes the client side's `ClientSession` (an input), then takes what it asks.
    func withClientMachine(_ body: (inout ClientSession) -> Void) {
        body(&clientMachine!)
        run()
    }

    /// The actions `clientMachine` asked since the last call, besides the streams'.
    func takeClientMachineActions() -> [ClientSessionAction] {
        defer { clientMachineActions = [] }
        return clientMachineActions
    }

    /// Changes the server side's `ServerSession` (an input), then takes what it asks.
    func withMachine(_ body: (inout ServerSession) -> Void) {
        body(&machine!)
        run()
    }

    /// The actions `machine` asked since the last call, besides the streams'.
    func takeMachineActions() -> [ServerSessionAction] {
        defer { machineActions = [] }
        return machineActions
    }

    /// A message from the peer on `stream`: through the side's session machine, else to the streams.
    func receive(_ message: SCTPMessage, now: NIODeadline) {
        if machine != nil {
            machine!.handleStreamMessage(message, now: now)
        } else if clientMachine != nil {
            clientMachine!.handleStreamMessage(message, now: now)
        } else {
            own!.handleMessage(message, now: now)
        }
        run()
    }

    static let logger = Logger(label: "lockstep", factory: { _ in SwiftLogNoOpLogHandler() })

    static func client(
        streams: Int = 100, credit: UInt32 = 64 * 1024, sendCredit: UInt32 = 64 * 1024, now: NIODeadline,
        bufferedBytesLimit: Int = 64 * 1024 * 1024
    ) -> LockstepSide {
        LockstepSide(
            StreamSession(
                role: .client,
                table: .client(outboundStreams: 1024, inboundStreams: 1024, maxStreams: UInt16(streams)),
                receiveCredit: credit, sendCredit: sendCredit, idleTimeout: .seconds(300),
                associationIdleTimeout: .seconds(600), openTimeout: .seconds(10),
                bufferedBytesLimit: bufferedBytesLimit, logger: logger, now: now))
    }

    static func server(
        streams: Int = 100, credit: UInt32 = 64 * 1024, now: NIODeadline, bufferedBytesLimit: Int = 64 * 1024 * 1024,
        metrics: ProxyMetrics? = nil
    ) -> LockstepSide {
        var session = StreamSession(
            role: .server, table: StreamTable(limit: streams), receiveCredit: credit, sendCredit: 0,
            idleTimeout: .seconds(300), associationIdleTimeout: .seconds(600),
            bufferedBytesLimit: bufferedBytesLimit, logger: logger, now: now)
        session.metrics = metrics
        return LockstepSide(session)
    }

    /// Takes every action the session has; completes writes at once unless `holdWrites`. On a side with a
    /// machine, every action of its `ServerSession` or `ClientSession`: `.drained` and `.abort` are also counted as
    /// the streams' would be.
    func run() {
        if clientMachine != nil {
            while let action = clientMachine!.pollAction() {
                switch action {
                case .stream(let action):
                    perform(action)
                    continue
                case .drained: drainedReports += 1
                case .abort(let reason): aborted.append(reason)
                default: break
                }
                clientMachineActions.append(action)
            }
            return
        }
        guard machine != nil else {
            while let action = own!.pollAction() { perform(action) }
            return
        }
        while let action = machine!.pollAction() {
            switch action {
            case .stream(let action):
                perform(action)
                continue
            case .drained: drainedReports += 1
            case .abort(let reason): aborted.append(reason)
            default: break
            }
            machineActions.append(action)
        }
    }

    private func perform(_ action: StreamSessionAction) {
        switch action {
        case .send(let message, let stream): outbox.append((message, stream))
        case .write(let bytes, let connection):
            if holdWrites {
                heldWrites.append((connection, bytes.readableBytes))
                var all = written[connection] ?? ByteBuffer()
                all.writeImmutableBuffer(bytes)
                written[connection] = all
            } else {
                var all = written[connection] ?? ByteBuffer()
                all.writeImmutableBuffer(bytes)
                written[connection] = all
                session.handleWriteCompleted(connection, bytes: bytes.readableBytes, succeeded: true)
            }
        case .read(let connection):
            reads[connection, default: 0] += 1
            readOrder.append(connection)
        case .endOutput(let connection): outputEnded.insert(connection)
        case .close(let connection, let abortively): closed[connection] = abortively
        case .opened(let connection):
            opened.append(connection)
            session.handleAttached(connection)
        case .openFailed(let connection, let failure): openFailures[connection] = failure
        case .connect(let connection, let target): connects.append((connection, target))
        case .streamGranted(let waiter, let connection): granted[waiter] = connection
        case .streamRefused(let waiter, let failure): refused[waiter] = failure
        case .abortAssociation(let reason): aborted.append(reason)
        case .idle: idleReports += 1
        case .drained: drainedReports += 1
        }
    }

    /// The socket takes every write it held.
    func completeHeldWrites() {
        let held = heldWrites
        heldWrites = []
        for (connection, count) in held { session.handleWriteCompleted(connection, bytes: count, succeeded: true) }
        run()
    }

    func messages(kind: AggMessageKind) -> [StreamMessage] { outbox.map(\.0).filter { $0.kind == kind } }
}

/// Two `StreamSession`s, a client and a server, wired message by message in order with no event loop, the way
/// LockstepTests drives two associations. Each test reads as the steps of one scenario.
@Suite struct SessionLockstepTests {
    static let target = StreamTarget(host: "example.com", port: 443)
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// Delivers both outboxes until neither side sends anything more.
    static func exchange(_ client: LockstepSide, _ server: LockstepSide, now: NIODeadline) {
        while !client.outbox.isEmpty || !server.outbox.isEmpty {
            let up = client.outbox
            client.outbox = []
            for (message, stream) in up { server.receive(Self.sctp(message, stream), now: now) }
            let down = server.outbox
            server.outbox = []
            for (message, stream) in down { client.receive(Self.sctp(message, stream), now: now) }
        }
    }

    /// `side`'s socket ends its input on `connection` (FIN), and the two sides exchange what follows.
    static func endInput(
        _ connection: ConnectionID, of side: LockstepSide, _ client: LockstepSide, _ server: LockstepSide,
        now: NIODeadline
    ) {
        side.session.handleInputEnded(connection)
        side.run()
        exchange(client, server, now: now)
    }

    static func sctp(_ message: StreamMessage, _ stream: StreamID) -> SCTPMessage {
        SCTPMessage(stream: stream, ppid: message.ppid, isUnordered: false, payload: message.encode())
    }

    static func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer { ByteBuffer(repeating: value, count: count) }

    /// Opens one connection end to end: the client's request, the server's connect, OPEN-RESULT ok.
    func openConnection(
        _ client: LockstepSide, _ server: LockstepSide, initialData: ByteBuffer? = nil
    ) throws
        -> (ConnectionID, ConnectionID)
    {
        try Self.openConnection(client, server, initialData: initialData, now: start)
    }

    /// Opens one connection end to end at `now` (see `openConnection`); also for the association lockstep tests.
    static func openConnection(
        _ client: LockstepSide, _ server: LockstepSide, initialData: ByteBuffer? = nil, now: NIODeadline
    ) throws
        -> (ConnectionID, ConnectionID)
    {
        guard case .granted(let local) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: now)
        else {
            Issue.record("no stream granted")
            throw CancellationError()
        }
        client.session.open(local, to: Self.target, initialData: initialData, now: now)
        client.run()
        Self.exchange(client, server, now: now)
        let remote = try #require(server.connects.last?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        Self.exchange(client, server, now: now)
        #expect(client.opened.contains(local))
        return (local, remote)
    }

    @Test func dataBothWaysThenHalfClosesFreeTheStreamOnBothSides() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server, initialData: Self.bytes(100, 1))
        #expect(server.connects.first?.1 == Self.target)
        // The initial data went right behind OPEN and reached the target once it connected.
        #expect(server.written[remote] == Self.bytes(100, 1))

        server.session.handleRead(remote, Self.bytes(5000, 2), now: start)
        server.run()
        Self.exchange(client, server, now: start)
        #expect(client.written[local] == Self.bytes(5000, 2))

        // The application half-closes: FIN reaches the target, whose output ends; the target's reply still flows.
        Self.endInput(local, of: client, client, server, now: start)
        #expect(server.outputEnded.contains(remote))
        server.session.handleRead(remote, Self.bytes(10, 3), now: start)
        server.run()
        Self.exchange(client, server, now: start)
        #expect(client.written[local]?.readableBytes == 5010)

        // The target finishes too: CLOSED frees the stream on both sides and both sockets close gracefully.
        Self.endInput(remote, of: server, client, server, now: start)
        #expect(server.closed[remote] == false)
        #expect(client.closed[local] == false)
        #expect(client.session.activeStreams == 0)
        #expect(server.session.activeStreams == 0)
        #expect(!client.session.contains(local))
        #expect(!server.session.contains(remote))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(client.aborted.isEmpty && server.aborted.isEmpty)
    }

    @Test func aRefusedConnectAnswersTheApplicationAndFreesTheStream() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        guard case .granted(let local) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start)
        else { throw CancellationError() }
        client.session.open(local, to: Self.target, initialData: nil, now: start)
        client.run()
        Self.exchange(client, server, now: start)
        let remote = try #require(server.connects.first?.0)
        server.session.handleTargetFailed(remote, EgressError(.refused, "connection refused"))
        server.run()
        Self.exchange(client, server, now: start)
        #expect(client.openFailures[local] == .refused)
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(client.closed.isEmpty)  // The ingress owns the socket and answers it.
        // The stream id is free for the next connection.
        guard case .granted = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start) else {
            Issue.record("stream not free")
            return
        }
    }

    @Test func theApplicationResettingMidTransferResetsTheTarget() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server)
        server.session.handleRead(remote, Self.bytes(1000, 4), now: start)
        server.run()
        client.session.handleSocketError(local, "connection reset by peer")
        client.run()
        #expect(client.closed[local] == true)
        Self.exchange(client, server, now: start)
        #expect(server.closed[remote] == true)
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(client.session.bufferedBytes == 0 && server.session.bufferedBytes == 0)
    }

    /// A reader that stops reading stalls only its own stream: the server sends up to the credit, then holds the
    /// target's reads; once the application's socket takes the bytes, WINDOW-UPDATE lets the rest through.
    @Test func creditStopsTheSenderUntilTheReceiversSocketTakesTheBytes() throws {
        let credit: UInt32 = 16 * 1024
        let client = LockstepSide.client(credit: credit, now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server)
        client.holdWrites = true
        server.session.handleRead(remote, Self.bytes(40 * 1024, 5), now: start)
        server.run()
        Self.exchange(client, server, now: start)
        #expect(client.written[local]?.readableBytes == Int(credit))
        #expect(client.session.bufferedBytes == Int(credit))
        // The target's socket is not read while bytes wait for credit.
        server.session.handleReadRequested(remote, now: start)
        server.run()
        #expect(server.reads[remote] == nil)

        client.completeHeldWrites()
        Self.exchange(client, server, now: start)
        #expect(client.written[local]?.readableBytes == 32 * 1024)
        client.completeHeldWrites()
        Self.exchange(client, server, now: start)
        client.completeHeldWrites()
        Self.exchange(client, server, now: start)
        #expect(client.written[local]?.readableBytes == 40 * 1024)
        // Everything went out: the held read is released.
        #expect(server.reads[remote] == 1)
    }

    /// While the association's send buffer is full no socket is read; when it drains, exactly the connections that
    /// asked to read are read, including one whose read also waited for credit that came while the buffer was full.
    @Test func aFullAssociationHoldsReadsAndDrainingResumesTheWaitingOnes() throws {
        let credit: UInt32 = 16 * 1024
        let client = LockstepSide.client(credit: credit, now: start)
        let server = LockstepSide.server(now: start)
        let (_, a) = try openConnection(client, server)
        let (_, b) = try openConnection(client, server)
        let (_, idle) = try openConnection(client, server)
        let (slowLocal, slow) = try openConnection(client, server)
        client.holdWrites = true
        server.session.handleRead(slow, Self.bytes(20 * 1024, 6), now: start)  // 4 KiB wait for credit
        server.run()
        Self.exchange(client, server, now: start)

        server.fillAssociation()
        for connection in [a, b, slow] { server.session.handleReadRequested(connection, now: start) }
        server.run()
        #expect(server.reads.isEmpty)
        // The slow stream's credit comes while the buffer is still full: its bytes go, its read still waits.
        client.completeHeldWrites()
        Self.exchange(client, server, now: start)
        #expect(client.written[slowLocal]?.readableBytes == 20 * 1024)
        #expect(server.reads[slow] == nil)

        server.drainAssociation()
        server.run()
        #expect(server.reads == [a: 1, b: 1, slow: 1])
        #expect(server.reads[idle] == nil)

        // Full again: a second wait is resumed by the next drain, once.
        server.fillAssociation()
        server.session.handleReadRequested(a, now: start)
        server.run()
        server.drainAssociation()
        server.drainAssociation()
        server.run()
        #expect(server.reads == [a: 2, b: 1, slow: 1])

        // The slow stream's read waits for credit while the buffer drains, then the buffer fills again before the
        // credit comes: the drain after that still resumes it.
        server.session.handleRead(slow, Self.bytes(20 * 1024, 7), now: start)
        server.run()
        Self.exchange(client, server, now: start)
        server.session.handleReadRequested(slow, now: start)
        server.fillAssociation()
        server.drainAssociation()
        server.run()
        #expect(server.reads[slow] == 1)
        server.fillAssociation()
        client.completeHeldWrites()
        Self.exchange(client, server, now: start)
        #expect(client.written[slowLocal]?.readableBytes == 40 * 1024)
        #expect(server.reads[slow] == 1)
        server.drainAssociation()
        server.run()
        #expect(server.reads[slow] == 2)
    }

    /// When the queue drains, only as many waiting connections read as the association's room takes whole reads
    /// (16 KiB set aside for each read allowed and not yet come), in the order they asked; the rest read as those
    /// reads come or expire. Resuming every waiter at once let the first take the room and the rest 2 KiB each: a
    /// 10 KB response came in five reads and five messages.
    @Test func aDrainLetsAsManyConnectionsReadAsTheRoomTakesAndTheRestInTurn() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        var connections: [ConnectionID] = []
        for _ in 0..<8 { connections.append(try openConnection(client, server).1) }
        let reservation = StreamSession.readReservation
        final class Room: @unchecked Sendable { var bytes = 0 }
        let room = Room()
        room.bytes = 3 * reservation
        server.session.readRoom = { room.bytes }
        server.fillAssociation()
        for connection in connections { server.session.handleReadRequested(connection, now: start) }
        server.run()
        #expect(server.reads.isEmpty)

        server.drainAssociation()
        server.run()
        #expect(server.reads == Dictionary(uniqueKeysWithValues: connections[0..<3].map { ($0, 1) }))
        // The timer is due when the reads allowed stop holding their room.
        #expect(server.session.nextDeadline == start + StreamSession.readGrantLifetime)

        // The first read comes: its room goes to the next waiter.
        server.session.handleRead(connections[0], Self.bytes(1_000, 1), now: start + .milliseconds(1))
        server.run()
        #expect(server.reads[connections[3]] == 1)
        #expect(server.reads[connections[4]] == nil)
        // A connection asking again while others wait for room goes behind them, even with room for it.
        room.bytes = 4 * reservation
        server.session.handleReadRequested(connections[0], now: start + .milliseconds(1))
        server.run()
        #expect(server.reads[connections[0]] == 1)
        room.bytes = 3 * reservation

        // The reads allowed at the start never came (sockets with nothing to read): they stop holding room.
        server.session.handleTimeout(now: start + StreamSession.readGrantLifetime)
        server.run()
        #expect(server.reads[connections[4]] == 1 && server.reads[connections[5]] == 1)
        #expect(server.reads[connections[6]] == nil)

        // Room for all: everyone left reads, in the order they asked, the one that asked again last.
        room.bytes = .max / 2
        server.session.handleRead(connections[3], Self.bytes(1_000, 2), now: start + .milliseconds(12))
        server.run()
        #expect(server.readOrder == Array(connections) + [connections[0]])
        #expect(server.session.nextDeadline.map { $0 > start + .seconds(1) } == true, "no reads wait: no timer")
    }

    /// With less room than one whole read (bytes waiting for credit can hold it while the queue is writable),
    /// reads are not held back: they are cut to 2 KiB anyway, and one at a time each would wait for the last.
    @Test func withLessRoomThanOneReadReadsAreNotHeldBack() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        var connections: [ConnectionID] = []
        for _ in 0..<4 { connections.append(try openConnection(client, server).1) }
        server.session.readRoom = { StreamSession.readReservation - 1 }
        for connection in connections { server.session.handleReadRequested(connection, now: start) }
        server.run()
        #expect(server.readOrder == connections)
    }

    /// Past the association's high watermark a connection whose stream the association still takes (a light one,
    /// which the engine's scheduler sends before the bulk streams) keeps reading; the bulk one waits for the drain.
    /// An echo's reply is not held in its socket behind a download that filled the queue.
    @Test func aLightStreamKeepsReadingWhileTheBulkOneWaitsForTheDrain() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (_, bulk) = try openConnection(client, server)
        let (echoLocal, echo) = try openConnection(client, server)
        let light = try #require(server.session.stream(of: echo))
        server.session.streamTakesMore = { $0 == light }
        server.fillAssociation()
        server.session.handleReadRequested(bulk, now: start)
        server.session.handleReadRequested(echo, now: start)
        server.run()
        #expect(server.reads == [echo: 1])
        // The echo's bytes go and it reads again at once; the bulk stream still waits.
        server.session.handleRead(echo, Self.bytes(64, 1), now: start)
        server.session.handleReadRequested(echo, now: start)
        server.run()
        Self.exchange(client, server, now: start)
        #expect(client.written[echoLocal]?.readableBytes == 64)
        #expect(server.reads == [echo: 2])
        // The queue drains: the bulk stream's read is resumed.
        server.drainAssociation()
        server.run()
        #expect(server.reads == [echo: 2, bulk: 1])
    }

    @Test func noOpenResultInTimeFailsTheConnectionAsATimeout() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        guard case .granted(let local) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start)
        else { throw CancellationError() }
        client.session.open(local, to: Self.target, initialData: nil, now: start)
        client.run()
        Self.exchange(client, server, now: start)  // The server connects forever.
        #expect(client.session.nextDeadline! <= start + .seconds(10))
        client.session.handleTimeout(now: start + .seconds(9))
        client.run()
        #expect(client.openFailures.isEmpty)
        client.session.handleTimeout(now: start + .seconds(10))
        client.run()
        #expect(client.openFailures[local] == .timeout)
        // RESET told the server; its answer frees the stream on the client.
        #expect(client.messages(kind: .reset).count == 1)
        Self.exchange(client, server, now: start + .seconds(10))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        // The connect that completes afterwards finds the connection gone.
        let remote = try #require(server.connects.first?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(!connected)
    }

    /// With every stream in use a new connection waits; it gets the stream another frees, or is refused when its
    /// wait ends.
    @Test func connectionsWaitForAFreeStreamAndGiveUpAtTheirDeadline() throws {
        let client = LockstepSide.client(streams: 1, now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server)
        let first = client.session.requestStream(waitingUpTo: .seconds(5), queueLimit: 2, now: start)
        let second = client.session.requestStream(waitingUpTo: .seconds(5), queueLimit: 2, now: start + .seconds(1))
        let third = client.session.requestStream(waitingUpTo: .seconds(5), queueLimit: 2, now: start + .seconds(1))
        guard case .waiting(let firstWaiter) = first, case .waiting(let secondWaiter) = second else {
            Issue.record("expected waits, got \(first) \(second)")
            return
        }
        #expect(third == .refused(.tooManyStreams))
        // The open connection ends both ways: its stream goes to the oldest waiter.
        Self.endInput(local, of: client, client, server, now: start + .seconds(2))
        Self.endInput(remote, of: server, client, server, now: start + .seconds(2))
        #expect(client.granted[firstWaiter] != nil)
        #expect(client.granted[secondWaiter] == nil)
        client.session.handleTimeout(now: start + .seconds(6))
        client.run()
        #expect(client.refused[secondWaiter] == .tooManyStreams)
    }

    @Test func losingTheAssociationFailsPendingOpensAndResetsSockets() throws {
        let client = LockstepSide.client(streams: 2, now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server)
        guard case .granted(let pending) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start)
        else { throw CancellationError() }
        client.session.open(pending, to: Self.target, initialData: nil, now: start)
        client.run()
        guard
            case .waiting(let waiter) = client.session.requestStream(
                waitingUpTo: .seconds(5), queueLimit: 1, now: start)
        else { throw CancellationError() }
        client.session.handleAssociationLost()
        client.run()
        server.session.handleAssociationLost()
        server.run()
        #expect(client.closed[local] == true)
        #expect(client.openFailures[pending] == .serverUnavailable)
        #expect(client.refused[waiter] == .serverUnavailable)
        #expect(server.closed[remote] == true)
        #expect(client.session.nextDeadline == nil)
        #expect(
            client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start) == .refused(.serverUnavailable))
    }

    @Test func idleStreamsAreResetAndAnIdleAssociationIsReportedOnce() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server)
        // 301 s without DATA: the server's sweep resets the stream.
        server.session.handleTimeout(now: start + .seconds(301))
        server.run()
        #expect(server.closed[remote] == true)
        Self.exchange(client, server, now: start + .seconds(301))
        #expect(client.closed[local] == true)
        #expect(server.session.activeStreams == 0)
        var now = start + .seconds(301)
        while now < start + .seconds(1000) {
            now = now + .seconds(30)
            server.session.handleTimeout(now: now)
            server.run()
        }
        #expect(server.idleReports == 1)
    }

    /// Draining is an event: `.drained` comes once, when the last stream is free, and at once when none is open.
    @Test func drainingReportsOnceWhenTheLastStreamIsFree() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try openConnection(client, server)
        server.session.handleDrain()
        server.run()
        #expect(server.drainedReports == 0)
        Self.endInput(local, of: client, client, server, now: start)
        #expect(server.drainedReports == 0, "one direction is still open")
        Self.endInput(remote, of: server, client, server, now: start)
        #expect(server.drainedReports == 1)
        client.session.handleDrain()
        client.run()
        #expect(client.drainedReports == 1, "nothing open: drained at once")
        client.session.handleDrain()
        client.run()
        #expect(client.drainedReports == 1)
    }

    /// The client reusing a stream the server has not freed breaks stream boundaries: the association goes.
    @Test func openOnABusyStreamAbortsTheAssociation() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (_, remote) = try openConnection(client, server)
        let stream = try #require(server.session.stream(of: remote))
        server.session.handleMessage(Self.sctp(.open(Self.target, initialCredit: 1024), stream), now: start)
        server.run()
        #expect(server.aborted.count == 1)
    }
}
