import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// aggclient's association lifecycle (`ClientLink`, one `ClientSession` per attempt, its streams inside) and
/// aggserver's session (`ServerSession`, its streams inside) wired to each other with no event loop, and a
/// `GracefulStop` for draining. The pair performs the machines' actions as the glue would: an attempt's SCTP
/// association comes up at once unless the server is down, stream-0 messages wait in flight until `exchange`, an
/// ABORT from either side closes the other's, and `advance` moves the clock from one deadline to the next.
final class AssociationPair {
    static let key = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 5 &+ 1 })
    static let otherKey = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 3 &+ 7 })

    var link: ClientLink
    private(set) var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let start: NIODeadline
    /// The key the client proves.
    var clientKey = AssociationPair.key
    /// The server's key table.
    var serverKeys = [AssociationPair.key.name: AssociationPair.key]
    /// While true, attempts get no SCTP association (the server is unreachable).
    var serverDown = false
    /// While true, the client's stream-0 messages are lost (a client that never answers HELLO).
    var clientMuted = false

    /// The attempt the server side belongs to, and the server's session for it with a model of its sockets.
    private(set) var attempt: ClientLinkID?
    private(set) var serverSide: LockstepSide?
    private var toServer: [ControlMessage] = []
    private var toClient: [ControlMessage] = []

    /// The server's machine for the attempt.
    var server: ServerSession? { serverSide?.machine }
    /// The latest attempt the link made, and the client's session for it with a model of its sockets.
    private(set) var clientAttempt: ClientLinkID?
    private(set) var clientSide: LockstepSide?
    /// The client's machine for the latest attempt.
    var client: ClientSession? { clientSide?.clientMachine }

    /// Each side's streams, once its machine said ready (the sessions').
    private(set) var clientStreams: LockstepSide?
    private(set) var serverStreams: LockstepSide?

    private(set) var connects: [(id: ClientLinkID, at: NIODeadline)] = []
    private(set) var readies: [(id: ClientLinkID, hello: ControlMessage.Hello)] = []
    private(set) var clientAborts: [(id: ClientLinkID, reason: String)] = []
    private(set) var clientAuthenticationFailures: [String] = []
    private(set) var lost: [ClientLinkID] = []
    private(set) var delivered: [Int: ClientLinkID] = [:]
    private(set) var gaveUp: Set<Int> = []
    private(set) var settled = 0
    private(set) var serverAuthenticated: [String] = []
    private(set) var serverAuthenticationFailures: [String] = []
    private(set) var serverAborts: [String] = []
    private(set) var shutDowns: [ClientLinkID] = []

    /// The client's graceful stop, when the test started one.
    var stopping = GracefulStop<ClientLinkID>()
    private(set) var stopActions: [GracefulStopAction<ClientLinkID>] = []

    init(configure: (inout ClientLink.Configuration) -> Void = { _ in }) {
        var configuration = ClientLink.Configuration()
        configure(&configuration)
        link = ClientLink(configuration: configuration)
        start = now
    }

    /// Seconds since the pair started.
    func elapsed(_ at: NIODeadline) -> Double { Double((at - start).nanoseconds) / 1e9 }

    // MARK: - Steps

    func startLink() {
        link.start(now: now)
        runClient()
    }

    /// A connection asks the link for a stream; returns its waiter id.
    func requestStreams() -> Int {
        let waiter = link.requestStreams(now: now)
        runClient()
        return waiter
    }

    /// Graceful stop of the client: the link tries nothing new.
    func drainLink() {
        link.drain()
        runClient()
    }

    func stopLink() {
        link.stop()
        runClient()
    }

    /// Delivers the stream-0 messages in flight, both ways, until none is left; then the streams' messages.
    func exchange() {
        while !toServer.isEmpty || !toClient.isEmpty {
            let up = toServer
            toServer = []
            for message in up {
                serverSide?.withMachine { $0.handleControl(message, now: now) { [serverKeys] in serverKeys[$0] } }
                runServer()
            }
            let down = toClient
            toClient = []
            for message in down {
                guard attempt != nil else { break }
                clientSide?.withClientMachine { $0.handleControl(message, now: now) }
                runClientSession()
            }
        }
        if let clientStreams, let serverStreams {
            SessionLockstepTests.exchange(clientStreams, serverStreams, now: now)
        }
    }

    /// Moves the clock from deadline to deadline (the link's, the client's session's, the server's, the stop's) up
    /// to `duration` from now, exchanging what each step sends. Fails on more than 10,000 steps (a livelock).
    func advance(by duration: TimeAmount) {
        let end = now + duration
        var steps = 0
        while true {
            steps += 1
            guard steps < 10_000 else {
                Issue.record("livelock")
                return
            }
            let next = [link.nextDeadline, client?.nextDeadline, server?.nextDeadline, stopping.nextDeadline]
                .compactMap { $0 }.min()
            guard let next, next <= end else { break }
            now = max(now, next)
            link.handleTimeout(now: now)
            runClient()
            clientSide?.withClientMachine { $0.handleTimeout(now: now) }
            runClientSession()
            serverSide?.withMachine { $0.handleTimeout(now: now) }
            runServer()
            stopping.handleTimeout(now: now)
            runStop()
            exchange()
        }
        now = end
    }

    /// The association in use ends from outside both machines (a path failure, the network): both sides see it
    /// closed.
    func loseAssociation() {
        guard let id = attempt else { return }
        closeServerSide()
        closeClientSide(id)
        link.handleClosed(id, now: now)
        stopping.handleClosed(id, now: now)
        runClient()
        runStop()
    }

    /// Opens one connection end to end on the association's streams: the client's request, the server's connect,
    /// OPEN-RESULT ok.
    func openConnection() throws -> (ConnectionID, ConnectionID) {
        try SessionLockstepTests.openConnection(try #require(clientStreams), try #require(serverStreams), now: now)
    }

    /// Both ends of a connection finish (FIN both ways): the stream is free on both sides.
    func closeConnection(_ local: ConnectionID, _ remote: ConnectionID) throws {
        let client = try #require(clientStreams)
        let server = try #require(serverStreams)
        SessionLockstepTests.endInput(local, of: client, client, server, now: now)
        SessionLockstepTests.endInput(remote, of: server, client, server, now: now)
        runStop()
    }

    // MARK: - Performing the actions

    private func runClient() {
        while let action = link.pollAction() {
            switch action {
            case .connect(let id, _, _, let deadline):
                connects.append((id, now))
                if let previous = clientAttempt { closeClientSide(previous) }
                clientAttempt = id
                clientSide = LockstepSide(
                    clientMachine: ClientSession(streams: AssociationPair.clientStreams, deadline: deadline))
                guard !serverDown else { break }
                establish(id)
            case .abort(let id, let reason):
                clientAborts.append((id, reason))
                closeClientSide(id)
                if id == attempt { closeServerSide() }
            case .ready(let id, let keepalive):
                guard id == clientAttempt, let side = clientSide, let hello = side.clientMachine?.hello else { break }
                readies.append((id, hello))
                clientStreams = side
                if let keepalive { side.withClientMachine { $0.startKeepalive(serverTimeout: keepalive, now: now) } }
            case .retire:
                break
            case .lost(let id, _):
                lost.append(id)
                closeClientSide(id)
            case .deliver(let waiter, let id):
                delivered[waiter] = id
            case .giveUp(let waiter):
                gaveUp.insert(waiter)
            case .changed:
                break
            case .settled:
                settled += 1
            }
        }
    }

    /// Performs what the client's session asked (its streams' actions are the side's, taken as they come): its
    /// verdicts go to the link.
    private func runClientSession() {
        guard let side = clientSide, let id = clientAttempt else { return }
        side.run()
        for action in side.takeClientMachineActions() {
            switch action {
            case .send(let message):
                if id == attempt, !clientMuted { toServer.append(message) }
            case .authenticated:
                link.handleAuthenticated(id, now: now)
                runClient()
            case .authenticationFailed(let error):
                clientAuthenticationFailures.append(error)
            case .heard:
                link.handleHeard(id, now: now)
                runClient()
            case .awaitingPong:
                link.handleAwaitingPong(id)
            case .serverSilent:
                link.handleServerSilent(id, now: now)
                runClient()
            case .pongRefused, .drained, .stream:
                break
            case .abort(let reason):
                clientAborts.append((id, reason))
                // The ABORT reaches the server: its side of the attempt is gone; the link hears of it as closed.
                if id == attempt { closeServerSide() }
                link.handleClosed(id, now: now)
                runClient()
                return
            }
        }
    }

    /// The client's session of attempt `id`, if it is the latest, closes (the link aborted it, or it was lost).
    private func closeClientSide(_ id: ClientLinkID) {
        guard id == clientAttempt, let side = clientSide, side.clientMachine?.isClosed == false else { return }
        side.withClientMachine { $0.handleClosed() }
        _ = side.takeClientMachineActions()
    }

    /// The client's streams: what `LockstepSide.client` builds (the stream limit and credit come from HELLO).
    static var clientStreams: SessionStreamSettings {
        SessionStreamSettings(
            streamLimit: Int(UInt16.max), streamCredit: 64 * 1024, idleTimeout: .seconds(300),
            openTimeout: .seconds(10), bufferedBytesLimit: 64 * 1024 * 1024, logger: LockstepSide.logger)
    }

    /// The attempt's SCTP association is up on both sides: the server's machine starts (HELLO goes out), and the
    /// client's session waits for it.
    private func establish(_ id: ClientLinkID) {
        if attempt != nil { closeServerSide() }
        attempt = id
        serverSide = LockstepSide(
            machine: ServerSession(
                challenge: [UInt8](repeating: 0x5A, count: AggLimits.authFieldLength),
                streams: AssociationPair.serverStreams, datagramKeyName: nil, authenticationTimeout: .seconds(10),
                now: now))
        let nonce = [UInt8](repeating: UInt8(truncatingIfNeeded: id.rawValue), count: AggLimits.authFieldLength)
        clientSide?.withClientMachine {
            $0.handleEstablished(
                authenticator: ClientAuthenticator(key: clientKey, nonce: nonce), outbound: 1024, inbound: 1024)
        }
        runClientSession()
        runServer()
    }

    /// The server's streams: what `LockstepSide.server` builds.
    static var serverStreams: SessionStreamSettings {
        SessionStreamSettings(
            streamLimit: 100, streamCredit: 64 * 1024, idleTimeout: .seconds(300),
            associationIdleTimeout: .seconds(600), bufferedBytesLimit: 64 * 1024 * 1024, logger: LockstepSide.logger)
    }

    /// Performs what the server's session asked (its streams' actions are the side's, taken as they come).
    func runServer() {
        guard let side = serverSide else { return }
        side.run()
        for action in side.takeMachineActions() {
            switch action {
            case .send(let message):
                toClient.append(message)
            case .authenticated(let name):
                serverAuthenticated.append(name)
                serverStreams = side
            case .authenticationFailed(let error):
                serverAuthenticationFailures.append(error)
            case .pongRefused, .drained, .stream:
                break
            case .abort(let reason):
                serverAborts.append(reason)
                // The ABORT reaches the client: its attempt or association closed.
                if let id = attempt {
                    closeServerSide()
                    closeClientSide(id)
                    link.handleClosed(id, now: now)
                    stopping.handleClosed(id, now: now)
                    runClient()
                    runStop()
                }
                return
            }
        }
    }

    /// The server side of the attempt is gone: its session and streams.
    private func closeServerSide() {
        serverSide?.withMachine { $0.handleClosed() }
        _ = serverSide?.takeMachineActions()
        toServer = []
        toClient = []
        attempt = nil
    }

    func runStop() {
        while let action = stopping.pollAction() {
            stopActions.append(action)
            if case .shutDown(let id) = action { shutDowns.append(id) }
        }
    }
}

/// The two association lifecycles in lockstep: each test reads as the steps of one scenario.
@Suite struct AssociationLockstepTests {
    @Test func helloAuthAndAuthOKMakeBothSidesReadyAndDeliverTheWaitingConnection() throws {
        let pair = AssociationPair()
        pair.startLink()
        // A connection asks for a stream before there is an association: it waits.
        let waiter = pair.requestStreams()
        let id = try #require(pair.connects.first?.id)
        // The SCTP association is up: the server's HELLO and its authentication deadline are there.
        #expect(pair.server?.nextDeadline == pair.now + .seconds(10))
        #expect(pair.client?.phaseName == "authenticating")
        // HELLO -> AUTH -> AUTH-OK.
        pair.exchange()
        #expect(pair.serverAuthenticated == ["laptop"])
        #expect(pair.server?.keyName == "laptop")
        #expect(
            pair.server?.nextDeadline == pair.now + .seconds(30),
            "the authentication deadline is gone once authenticated: the streams' sweep is next")
        #expect(pair.readies.map(\.id) == [id])
        #expect(pair.readies.first?.hello.maxStreams == 100)
        #expect(pair.link.current == id)
        #expect(pair.settled == 1)
        #expect(pair.delivered[waiter] == id)
        // The streams work end to end.
        let (local, remote) = try pair.openConnection()
        try pair.closeConnection(local, remote)
        #expect(pair.clientStreams?.session.activeStreams == 0)
        #expect(pair.clientAborts.isEmpty && pair.serverAborts.isEmpty)
    }

    @Test func aWrongKeyIsRefusedByTheServerAndRetriedOnTheBackoffSchedule() throws {
        let pair = AssociationPair { $0.maxReconnectDelay = .seconds(2) }
        pair.clientKey = AssociationPair.otherKey
        pair.startLink()
        pair.exchange()
        #expect(pair.serverAuthenticationFailures == ["wrong MAC for key \"laptop\""])
        #expect(pair.serverAborts == ["authentication: wrong MAC for key \"laptop\""])
        #expect(pair.link.current == nil)
        #expect(pair.settled == 1, "the first attempt failed: settled")
        pair.advance(by: .seconds(8))
        // Each attempt fails the same way; the delay doubles from 250 ms up to the 2 s cap.
        let times = pair.connects.map { pair.elapsed($0.at) }
        let gaps = zip(times.dropFirst(), times).map { (($0 - $1) * 1000).rounded() }
        #expect(Array(gaps.prefix(6)) == [250, 500, 1000, 2000, 2000, 2000])
        #expect(pair.readies.isEmpty)
        #expect(pair.serverAuthenticated.isEmpty)
        // The right key: the next attempt authenticates and the schedule starts again from the shortest delay.
        pair.clientKey = AssociationPair.key
        pair.advance(by: .seconds(2))
        #expect(pair.readies.count == 1)
        pair.loseAssociation()
        let beforeReconnect = pair.connects.count
        pair.advance(by: .milliseconds(250))
        #expect(pair.connects.count == beforeReconnect + 1)
    }

    @Test func aKeyTheServerDoesNotKnowIsRefused() {
        let pair = AssociationPair()
        pair.serverKeys = [:]
        pair.startLink()
        pair.exchange()
        #expect(pair.serverAuthenticationFailures == ["unknown key name \"laptop\""])
        #expect(pair.serverAborts == ["authentication: unknown key name \"laptop\""])
        #expect(pair.readies.isEmpty)
        #expect(pair.link.nextDeadline == pair.now + .milliseconds(250))
    }

    @Test func aClientThatNeverAnswersHELLOIsAbortedAtTheAuthenticationDeadline() throws {
        let pair = AssociationPair { $0.handshakeTimeout = .seconds(20) }
        pair.clientMuted = true
        pair.startLink()
        pair.exchange()
        #expect(pair.serverAborts.isEmpty)
        pair.advance(by: .milliseconds(9_999))
        #expect(pair.serverAborts.isEmpty)
        pair.advance(by: .milliseconds(1))
        #expect(pair.serverAborts == ["not authenticated in time"])
        #expect(pair.serverAuthenticationFailures.isEmpty, "a timeout is not a failed proof")
        // The client sees its attempt closed and tries again after the first backoff step.
        #expect(pair.connects.count == 1)
        pair.advance(by: .milliseconds(250))
        #expect(pair.connects.count == 2)
        #expect(pair.elapsed(pair.connects[1].at) == 10.25)
    }

    @Test func aSilentServerTimesTheHandshakeOutAndTheClientBacksOff() throws {
        let pair = AssociationPair()
        pair.serverDown = true
        pair.startLink()
        pair.advance(by: .seconds(10))
        #expect(pair.clientAborts.map(\.reason) == ["handshake timed out"])
        pair.advance(by: .seconds(21))
        let times = pair.connects.map { pair.elapsed($0.at) }
        // Attempt, 10 s handshake timeout, then 250 ms, 500 ms, ... between a failure and the next attempt.
        #expect(times == [0, 10.25, 20.75])
    }

    @Test func aLostAssociationFailsItsStreamsOnBothSidesAndReconnectsWithBackoff() throws {
        let pair = AssociationPair()
        pair.startLink()
        pair.exchange()
        let first = try #require(pair.link.current)
        let (local, remote) = try pair.openConnection()
        let clientStreams = try #require(pair.clientStreams)
        let serverStreams = try #require(pair.serverStreams)
        serverStreams.session.handleRead(remote, ByteBuffer(repeating: 7, count: 1000), now: pair.now)
        serverStreams.run()
        pair.exchange()
        #expect(clientStreams.written[local]?.readableBytes == 1000)
        pair.loseAssociation()
        // The client's link reports it lost; the connection is reset on both sides, nothing is left buffered.
        #expect(pair.lost == [first])
        #expect(clientStreams.closed[local] == true)
        #expect(serverStreams.closed[remote] == true)
        #expect(clientStreams.clientMachine?.isClosed == true, "the client's streams went with its session")
        #expect(serverStreams.machine?.isClosed == true, "the server's streams went with its session")
        #expect(pair.link.current == nil)
        // A new connection waits rather than fail at once, and is delivered by the next association.
        let waiter = pair.requestStreams()
        #expect(pair.delivered[waiter] == nil && !pair.gaveUp.contains(waiter))
        pair.advance(by: .milliseconds(249))
        #expect(pair.connects.count == 1)
        pair.advance(by: .milliseconds(1))
        #expect(pair.connects.count == 2)
        let second = try #require(pair.link.current)
        #expect(second != first)
        #expect(pair.delivered[waiter] == second)
        // The new association's streams are fresh.
        #expect(pair.clientStreams !== clientStreams)
        let (newLocal, newRemote) = try pair.openConnection()
        try pair.closeConnection(newLocal, newRemote)
    }

    @Test func drainingWaitsForTheLastStreamThenShutsTheAssociationDownAndFinishes() throws {
        let pair = AssociationPair()
        pair.startLink()
        pair.exchange()
        let id = try #require(pair.link.current)
        let one = try pair.openConnection()
        let two = try pair.openConnection()
        let client = try #require(pair.clientStreams)
        // The client stops gracefully: no new attempt, the association's streams drain.
        pair.drainLink()
        pair.stopping.begin(
            associations: [id], withStreams: [id], streamsDeadline: pair.now + .seconds(30),
            closeTimeout: .seconds(2), now: pair.now)
        client.withClientMachine { $0.handleDrain() }
        #expect(client.drainedReports == 0)
        pair.runStop()
        #expect(pair.stopActions.isEmpty)
        // The first stream ends: still one open, nothing shuts down.
        try pair.closeConnection(one.0, one.1)
        #expect(client.drainedReports == 0)
        #expect(pair.stopActions.isEmpty)
        // The last one ends: the session reports drained, and the association is shut down at once.
        try pair.closeConnection(two.0, two.1)
        #expect(client.drainedReports == 1)
        pair.stopping.handleStreamsDrained(id, now: pair.now)
        pair.runStop()
        #expect(pair.stopActions == [.shutDown(id)])
        #expect(pair.stopping.nextDeadline == pair.now + .seconds(2))
        // The SHUTDOWN completes: the stop is complete, and the draining link does not reconnect.
        pair.loseAssociation()
        #expect(pair.stopActions == [.shutDown(id), .finish])
        #expect(pair.stopping.isFinished)
        pair.advance(by: .seconds(60))
        #expect(pair.connects.count == 1)
        #expect(pair.link.isStopped)
    }

    @Test func aStreamThatNeverEndsIsCutAtTheDeadlineAndAnAssociationThatNeverClosesAtTheCloseTimeout() throws {
        let pair = AssociationPair()
        pair.startLink()
        pair.exchange()
        let id = try #require(pair.link.current)
        _ = try pair.openConnection()
        pair.drainLink()
        pair.stopping.begin(
            associations: [id], withStreams: [id], streamsDeadline: pair.now + .seconds(5),
            closeTimeout: .seconds(1), now: pair.now)
        pair.advance(by: .milliseconds(4_999))
        #expect(pair.stopActions.isEmpty)
        pair.advance(by: .milliseconds(1))
        #expect(pair.stopActions == [.streamsDeadlinePassed(remaining: 1), .shutDown(id)])
        pair.advance(by: .milliseconds(999))
        #expect(!pair.stopping.isFinished)
        pair.advance(by: .milliseconds(1))
        #expect(pair.stopActions.last == .finish)
        #expect(pair.stopping.nextDeadline == nil)
    }

    @Test func stoppingMidHandshakeAbortsTheAttemptFailsWaitersAndTriesNothingMore() throws {
        let pair = AssociationPair()
        pair.startLink()
        let waiter = pair.requestStreams()
        let id = try #require(pair.connects.first?.id)
        // HELLO is in flight when the client stops.
        #expect(pair.client?.phaseName == "authenticating" && pair.clientAttempt == id)
        pair.stopLink()
        #expect(pair.clientAborts.map(\.reason) == ["client stopping"])
        #expect(pair.gaveUp.contains(waiter))
        #expect(pair.server?.isClosed == true, "the server side saw the ABORT")
        #expect(pair.server?.nextDeadline == nil)
        #expect(pair.link.nextDeadline == nil)
        pair.exchange()
        pair.advance(by: .seconds(60))
        #expect(pair.connects.count == 1)
        #expect(pair.readies.isEmpty && pair.serverAuthenticated.isEmpty)
    }

    static func actions(_ stop: inout GracefulStop<Int>) -> [GracefulStopAction<Int>] {
        var all: [GracefulStopAction<Int>] = []
        while let action = stop.pollAction() { all.append(action) }
        return all
    }

    @Test func aServerStopShutsAuthenticatingAssociationsDownAtOnceAndWaitsOnlyForStreams() throws {
        var stop = GracefulStop<Int>()
        // Association 1 has streams, association 2 still authenticates (no streams to wait for).
        stop.begin(
            associations: [1, 2], withStreams: [1], streamsDeadline: .uptimeNanoseconds(30_000_000_000),
            closeTimeout: .seconds(2), now: .uptimeNanoseconds(0))
        #expect(Self.actions(&stop).isEmpty)
        #expect(stop.isStopping)
        // Association 2 is aborted meanwhile (not authenticated in time): it no longer needs shutting down.
        stop.handleClosed(2, now: .uptimeNanoseconds(1_000))
        stop.handleStreamsDrained(1, now: .uptimeNanoseconds(2_000))
        #expect(Self.actions(&stop) == [.shutDown(1)])
        stop.handleClosed(1, now: .uptimeNanoseconds(3_000))
        #expect(Self.actions(&stop) == [.finish])
        // Without associations the stop is complete at once.
        var empty = GracefulStop<Int>()
        empty.begin(
            associations: [], withStreams: [], streamsDeadline: .uptimeNanoseconds(30_000_000_000),
            closeTimeout: .seconds(2), now: .uptimeNanoseconds(0))
        #expect(Self.actions(&empty) == [.finish])
        #expect(empty.nextDeadline == nil)
        // Authenticating associations (no streams) are shut down at once, in the order given.
        var handshaking = GracefulStop<Int>()
        handshaking.begin(
            associations: [3, 1, 2], withStreams: [], streamsDeadline: .uptimeNanoseconds(30_000_000_000),
            closeTimeout: .seconds(2), now: .uptimeNanoseconds(0))
        #expect(Self.actions(&handshaking) == [.shutDown(3), .shutDown(1), .shutDown(2)])
        #expect(handshaking.nextDeadline == .uptimeNanoseconds(2_000_000_000))
    }
}

/// `ServerSession` alone: what PROTOCOL.md's "Authentication" requires of the server.
@Suite struct ServerSessionTests {
    static let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let key = AssociationPair.key

    static var streams: SessionStreamSettings {
        SessionStreamSettings(
            streamLimit: 10, streamCredit: 1024, idleTimeout: .seconds(300), associationIdleTimeout: .seconds(600),
            bufferedBytesLimit: 64 * 1024 * 1024, logger: LockstepSide.logger)
    }

    static func association(datagramKeyName: String? = nil) -> ServerSession {
        var association = ServerSession(
            challenge: [UInt8](repeating: 1, count: AggLimits.authFieldLength), streams: streams,
            datagramKeyName: datagramKeyName, authenticationTimeout: .seconds(10), now: now)
        guard case .send(.hello(let hello)) = association.pollAction() else {
            Issue.record("no HELLO")
            return association
        }
        #expect(hello.maxStreams == 10 && hello.streamCredit == 1024)
        return association
    }

    /// The client's AUTH for HELLO `association`'s challenge with `key`.
    static func auth(_ key: PreSharedKey) -> ControlMessage {
        var client = ClientAuthenticator(key: key, nonce: [UInt8](repeating: 2, count: AggLimits.authFieldLength))
        let hello = ControlMessage.Hello(
            challenge: [UInt8](repeating: 1, count: AggLimits.authFieldLength), maxStreams: 10, streamCredit: 1024)
        return try! client.receive(.hello(hello))!
    }

    /// An OPEN on stream 1, as the client sends it.
    static let open = SessionLockstepTests.sctp(
        .open(SessionLockstepTests.target, initialCredit: 1024), StreamID(1))

    static func actions(_ association: inout ServerSession) -> [ServerSessionAction] {
        var all: [ServerSessionAction] = []
        while let action = association.pollAction() { all.append(action) }
        return all
    }

    @Test func aStreamMessageBeforeAuthOKClosesTheAssociation() {
        var association = Self.association()
        association.handleStreamMessage(Self.open, now: Self.now)
        #expect(Self.actions(&association) == [.abort(reason: "stream message before AUTH-OK")])
        #expect(association.isClosed)
        // Nothing after the end is taken.
        association.handleControl(Self.auth(Self.key), now: Self.now) { _ in Self.key }
        #expect(Self.actions(&association).isEmpty)
    }

    @Test func aUDPMessageBeforeAuthOKClosesTheAssociationAndIsAllowedAfter() {
        var association = Self.association()
        let allowed = association.handleUDPMessage(now: Self.now)
        #expect(!allowed)
        #expect(Self.actions(&association) == [.abort(reason: "UDP message before AUTH-OK")])
        var ready = Self.association()
        ready.handleControl(Self.auth(Self.key), now: Self.now) { _ in Self.key }
        _ = Self.actions(&ready)
        let udpAllowed = ready.handleUDPMessage(now: Self.now)
        #expect(udpAllowed)
        #expect(Self.actions(&ready).isEmpty)
        // A stream message is the streams' now: the OPEN asks for a connection to its target.
        ready.handleStreamMessage(Self.open, now: Self.now)
        let opened = Self.actions(&ready)
        #expect(opened.count == 1)
        guard case .stream(.connect(_, SessionLockstepTests.target))? = opened.first else {
            Issue.record("expected a connect, got \(opened)")
            return
        }
    }

    @Test func anEncryptedAssociationMayOnlyProveTheKeyThatOpenedItsDatagrams() {
        var association = Self.association(datagramKeyName: "router")
        association.handleControl(Self.auth(Self.key), now: Self.now) { _ in Self.key }
        #expect(
            Self.actions(&association) == [
                .authenticationFailed("unknown key name \"laptop\""),
                .abort(reason: "authentication: unknown key name \"laptop\""),
            ])
    }

    @Test func anUndecodableControlMessageCountsAsAFailedAuthentication() {
        var association = Self.association()
        association.handleUndecodableControl(error: "truncated")
        #expect(
            Self.actions(&association) == [
                .authenticationFailed("truncated"), .abort(reason: "authentication: truncated"),
            ])
    }

    @Test func pingsBeyondTheReplyBudgetAreNotAnswered() {
        var association = Self.association()
        association.handleControl(Self.auth(Self.key), now: Self.now) { _ in Self.key }
        let first = Self.actions(&association)
        #expect(first.count == 2 && first.last == .authenticated(keyName: "laptop"))
        var answered = 0
        var refused = 0
        for value in 0..<UInt64(AggLimits.controlReplyBurst + 5) {
            association.handleControl(.ping(value), now: Self.now) { _ in nil }
            for action in Self.actions(&association) {
                if case .send(.pong) = action { answered += 1 }
                if action == .pongRefused { refused += 1 }
            }
        }
        #expect(answered == AggLimits.controlReplyBurst)
        #expect(refused == 5)
        // A second AUTH once authenticated is out of order: the association ends.
        association.handleControl(Self.auth(Self.key), now: Self.now) { _ in Self.key }
        #expect(
            Self.actions(&association).last == .abort(reason: "authentication: unexpected AUTH during authentication"))
    }

    @Test func theAuthenticationDeadlineIsTheOnlyTimerUntilReadyThenTheStreamsAre() {
        var association = Self.association()
        #expect(association.nextDeadline == Self.now + .seconds(10))
        association.handleTimeout(now: Self.now + .milliseconds(9_999))
        #expect(Self.actions(&association).isEmpty)
        association.handleControl(Self.auth(Self.key), now: Self.now) { _ in Self.key }
        _ = Self.actions(&association)
        #expect(association.nextDeadline == Self.now + .seconds(30), "the streams' sweep, not the deadline")
        association.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&association).isEmpty)
        #expect(association.isReady)
    }
}
