import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// aggclient's whole association (`ClientSession`: handshake, authentication and streams in one machine) against
/// aggserver's (`ServerSession`), in lockstep with no event loop (`AssociationPair`, the link above the client's
/// sessions). Each test reads as the steps of one scenario.
@Suite struct ClientSessionLockstepTests {
    static func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer { ByteBuffer(repeating: value, count: count) }

    @Test func anAttemptThatNeverConnectsTimesOutInItsSessionAndTheNextOneAuthenticates() throws {
        let pair = AssociationPair { $0.handshakeTimeout = .seconds(7) }
        pair.serverDown = true
        pair.startLink()
        // The attempt's session waits for its SCTP association, with the attempt's deadline.
        #expect(pair.client?.phaseName == "connecting")
        #expect(pair.client?.nextDeadline == pair.now + .seconds(7))
        pair.advance(by: .seconds(7))
        #expect(pair.clientAborts.map(\.reason) == ["handshake timed out"])
        #expect(pair.client?.isClosed == true)
        // The server answers again: the next attempt, after the first backoff step, authenticates.
        pair.serverDown = false
        pair.advance(by: .milliseconds(250))
        #expect(pair.connects.count == 2)
        #expect(pair.client?.isReady == true && pair.server?.isReady == true)
        #expect(pair.link.current == pair.connects[1].id)
    }

    @Test func helloAuthAndAuthOKTakeTheClientsSessionFromAuthenticatingToReady() throws {
        let pair = AssociationPair { $0.handshakeTimeout = .seconds(7) }
        pair.startLink()
        // The SCTP association is up: HELLO is in flight, the session authenticates by the attempt's deadline.
        #expect(pair.client?.phaseName == "authenticating")
        #expect(pair.client?.nextDeadline == pair.now + .seconds(7))
        #expect(pair.client?.hello == nil)
        // HELLO -> AUTH -> AUTH-OK: both machines are ready, the client's deadline gave way to its streams'.
        pair.exchange()
        #expect(pair.client?.isReady == true && pair.server?.isReady == true)
        #expect(pair.client?.hello?.maxStreams == 100)
        #expect(pair.client?.nextDeadline == pair.now + .seconds(30), "the streams' sweep")
        #expect(pair.link.current == pair.connects[0].id)
        #expect(pair.readies.count == 1)
        #expect(pair.clientAuthenticationFailures.isEmpty)
    }

    @Test func authenticateOpenAStreamAndRelayBothWaysWithHalfClose() throws {
        let pair = try ServerSessionLockstepTests.authenticatedPair()
        let client = try #require(pair.clientStreams)
        let server = try #require(pair.serverStreams)
        #expect(client.clientMachine?.isReady == true, "the client's streams are its session's")
        // OPEN goes through both sessions: connect, OPEN-RESULT ok.
        let (local, remote) = try pair.openConnection()
        #expect(client.opened == [local])
        // Application to target and back, through both sessions' streams in place.
        client.session.handleRead(local, Self.bytes(4000, 1), now: pair.now)
        client.run()
        pair.exchange()
        #expect(server.written[remote] == Self.bytes(4000, 1))
        server.session.handleRead(remote, Self.bytes(9000, 2), now: pair.now)
        server.run()
        pair.exchange()
        #expect(client.written[local] == Self.bytes(9000, 2))
        // The target half-closes first this time: the application's output ends, its upload still flows.
        SessionLockstepTests.endInput(remote, of: server, client, server, now: pair.now)
        #expect(client.outputEnded.contains(local))
        client.session.handleRead(local, Self.bytes(20, 3), now: pair.now)
        client.run()
        pair.exchange()
        #expect(server.written[remote]?.readableBytes == 4020)
        // The application finishes too: the stream is free on both sides, both sockets close gracefully.
        SessionLockstepTests.endInput(local, of: client, client, server, now: pair.now)
        #expect(client.closed[local] == false && server.closed[remote] == false)
        #expect(client.session.activeStreams == 0 && server.session.activeStreams == 0)
        #expect(pair.clientAborts.isEmpty && pair.serverAborts.isEmpty)
    }

    @Test func theSessionsPingsAreAnsweredByTheServerAndAServerThatStopsAnsweringIsGivenUp() throws {
        // With two server groups the session in use watches its server: a PING after a third of serverTimeout.
        let pair = AssociationPair {
            $0.groups = [1, 1]
            $0.serverTimeout = .milliseconds(1500)
        }
        pair.startLink()
        pair.exchange()
        let id = try #require(pair.link.current)
        // A minute of silence from the streams: PINGs every 500 ms, each PONG reaches the client's session, which
        // tells the link the server is alive: no failover.
        pair.advance(by: .seconds(60))
        #expect(pair.link.current == id)
        #expect(pair.link.failovers == 0)
        #expect(pair.lost.isEmpty && pair.clientAborts.isEmpty && pair.serverAborts.isEmpty)
        #expect(pair.connects.count == 1)
        // The PINGs are lost from now on: two go unanswered, and 1.5 s after the last PONG the session says the
        // server is silent; the link cuts the association and asks the next group.
        pair.clientMuted = true
        pair.advance(by: .milliseconds(1400))
        #expect(pair.lost.isEmpty)
        pair.advance(by: .milliseconds(600))
        #expect(pair.lost == [id])
        #expect(pair.clientAborts.map(\.reason) == ["server not answering"])
        #expect(pair.link.failovers == 1)
        #expect(pair.connects.count == 2)
    }

    @Test func drainingEndsWhenTheLastStreamEnds() throws {
        let pair = try ServerSessionLockstepTests.authenticatedPair()
        let client = try #require(pair.clientStreams)
        let one = try pair.openConnection()
        let two = try pair.openConnection()
        // The client's session drains (the client stops, or a more preferred server took over).
        client.withClientMachine { $0.handleDrain() }
        #expect(client.drainedReports == 0)
        #expect(pair.client?.phaseName == "draining")
        try pair.closeConnection(one.0, one.1)
        #expect(client.drainedReports == 0, "one stream is still open")
        // Bytes still flow on the last stream, both ways.
        client.session.handleRead(two.0, Self.bytes(300, 5), now: pair.now)
        client.run()
        pair.exchange()
        #expect(pair.serverStreams?.written[two.1]?.readableBytes == 300)
        try pair.closeConnection(two.0, two.1)
        #expect(client.drainedReports == 1)
        // Reported once.
        client.withClientMachine { $0.handleDrain() }
        #expect(client.drainedReports == 1)
        #expect(pair.clientAborts.isEmpty && pair.serverAborts.isEmpty)
    }

    @Test func theServersAbortClosesTheClientSessionsStreams() throws {
        let pair = try ServerSessionLockstepTests.authenticatedPair()
        let client = try #require(pair.clientStreams)
        let server = try #require(pair.serverStreams)
        let (local, remote) = try pair.openConnection()
        let waiter = pair.requestStreams()
        #expect(pair.delivered[waiter] != nil)
        // The client's stream reused before the server freed it: the server's session aborts the association.
        let stream = try #require(server.session.stream(of: remote))
        server.receive(
            SessionLockstepTests.sctp(.open(SessionLockstepTests.target, initialCredit: 1024), stream),
            now: pair.now)
        pair.runServer()
        #expect(pair.serverAborts.count == 1)
        // The ABORT reaches the client: its session closes and resets the application's connection.
        #expect(client.closed[local] == true, "reset")
        #expect(client.clientMachine?.isClosed == true)
        #expect(client.clientMachine?.nextDeadline == nil)
        #expect(pair.link.current == nil)
        #expect(pair.lost.count == 1)
    }
}

/// `ClientSession` alone: what PROTOCOL.md's "Authentication" requires of the client.
@Suite struct ClientSessionTests {
    static let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let challenge = [UInt8](repeating: 1, count: AggLimits.authFieldLength)
    static let hello = ControlMessage.Hello(challenge: challenge, maxStreams: 10, streamCredit: 1024)

    static let key = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 5 &+ 1 })
    static let otherKey = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 3 &+ 7 })

    static var streams: SessionStreamSettings {
        SessionStreamSettings(
            streamLimit: 100, streamCredit: 64 * 1024, idleTimeout: .seconds(300), openTimeout: .seconds(10),
            bufferedBytesLimit: 64 * 1024 * 1024, logger: LockstepSide.logger)
    }

    /// An OPEN on stream 1, as the server would never send it.
    static let open = SessionLockstepTests.sctp(
        .open(SessionLockstepTests.target, initialCredit: 1024), StreamID(1))

    static func actions(_ session: inout ClientSession) -> [ClientSessionAction] {
        var all: [ClientSessionAction] = []
        while let action = session.pollAction() { all.append(action) }
        return all
    }

    /// A session whose SCTP association is up, HELLO answered with AUTH.
    static func authenticating(key: PreSharedKey = ClientSessionTests.key) -> ClientSession {
        var session = ClientSession(streams: Self.streams, deadline: now + .seconds(10))
        session.handleEstablished(
            authenticator: ClientAuthenticator(
                key: key, nonce: [UInt8](repeating: 2, count: AggLimits.authFieldLength)),
            outbound: 100, inbound: 100)
        session.handleControl(.hello(hello), now: now)
        guard case .send(.auth)? = actions(&session).first else {
            Issue.record("no AUTH")
            return session
        }
        return session
    }

    /// The server's AUTH-OK for `authenticating()`'s AUTH.
    static var authOK: ControlMessage {
        var server = ServerAuthenticator(challenge: challenge, maxStreams: 10, streamCredit: 1024)
        var client = ClientAuthenticator(
            key: Self.key, nonce: [UInt8](repeating: 2, count: AggLimits.authFieldLength))
        let auth = try! client.receive(.hello(hello))!
        return try! server.receive(auth) { $0 == Self.key.name ? Self.key : nil }!
    }

    static func ready() -> ClientSession {
        var session = authenticating()
        session.handleControl(authOK, now: now)
        #expect(actions(&session) == [.authenticated(hello)])
        return session
    }

    @Test func aWrongServerProofFailsTheAuthentication() {
        var session = Self.authenticating(key: Self.otherKey)
        session.handleControl(Self.authOK, now: Self.now)
        #expect(
            Self.actions(&session) == [
                .authenticationFailed("\(AuthError.badServerProof)"), .abort(reason: "authentication failed"),
            ])
        #expect(session.isClosed && session.nextDeadline == nil)
    }

    @Test func anUndecodableControlMessageFailsTheAuthenticationButNotAReadySession() {
        var session = Self.authenticating()
        session.handleUndecodableControl(error: "truncated")
        #expect(
            Self.actions(&session) == [.authenticationFailed("truncated"), .abort(reason: "authentication failed")])
        var ready = Self.ready()
        ready.handleUndecodableControl(error: "truncated")
        #expect(Self.actions(&ready).isEmpty)
        #expect(ready.isReady)
    }

    @Test func theAttemptsDeadlineHoldsUntilReady() {
        var connecting = ClientSession(streams: Self.streams, deadline: Self.now + .seconds(10))
        connecting.handleTimeout(now: Self.now + .milliseconds(9_999))
        #expect(Self.actions(&connecting).isEmpty)
        connecting.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&connecting) == [.abort(reason: "handshake timed out")])
        var authenticating = Self.authenticating()
        authenticating.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&authenticating) == [.abort(reason: "handshake timed out")])
        var ready = Self.ready()
        ready.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&ready).isEmpty)
        #expect(ready.nextDeadline == Self.now + .seconds(30), "the streams' sweep")
    }

    @Test func aStreamMessageBeforeReadyIsDropped() {
        var session = Self.authenticating()
        session.handleStreamMessage(Self.open, now: Self.now)
        #expect(Self.actions(&session).isEmpty)
        #expect(session.phaseName == "authenticating")
    }

    @Test func theKeepalivePingsASilentServerAndGivesItUpAfterTheServerTimeout() {
        var session = Self.ready()
        #expect(session.nextDeadline == Self.now + .seconds(30), "no keepalive: the streams' sweep")
        session.startKeepalive(serverTimeout: .milliseconds(1500), now: Self.now)
        #expect(session.nextDeadline == Self.now + .milliseconds(500))
        // A third of the timeout without news: a PING, unanswered so far.
        session.handleTimeout(now: Self.now + .milliseconds(500))
        #expect(Self.actions(&session) == [.send(.ping(0)), .awaitingPong])
        // Datagrams from the server (the glue's count moved): heard, the clock starts again.
        session.handleHeard(now: Self.now + .milliseconds(700))
        #expect(Self.actions(&session) == [.heard])
        #expect(session.nextDeadline == Self.now + .milliseconds(1200))
        session.handleTimeout(now: Self.now + .milliseconds(1200))
        #expect(Self.actions(&session) == [.send(.ping(1)), .awaitingPong])
        session.handleTimeout(now: Self.now + .milliseconds(1700))
        #expect(Self.actions(&session) == [.send(.ping(2)), .awaitingPong])
        // Nothing for the whole timeout: the server is silent, reported once.
        session.handleTimeout(now: Self.now + .milliseconds(2200))
        #expect(Self.actions(&session) == [.serverSilent])
        session.handleTimeout(now: Self.now + .seconds(5))
        #expect(Self.actions(&session).isEmpty)
        // A retired association's server is not watched.
        var retired = Self.ready()
        retired.startKeepalive(serverTimeout: .milliseconds(1500), now: Self.now)
        retired.stopKeepalive()
        retired.handleTimeout(now: Self.now + .seconds(5))
        #expect(Self.actions(&retired).isEmpty)
    }

    @Test func pingsAreAnsweredWithinTheReplyBudgetAndEveryControlMessageIsHeard() {
        var session = Self.ready()
        var answered = 0
        var refused = 0
        var heard = 0
        for value in 0..<UInt64(AggLimits.controlReplyBurst + 5) {
            session.handleControl(.ping(value), now: Self.now)
            for action in Self.actions(&session) {
                if case .send(.pong(value)) = action { answered += 1 }
                if action == .pongRefused { refused += 1 }
                if action == .heard { heard += 1 }
            }
        }
        #expect(answered == AggLimits.controlReplyBurst)
        #expect(refused == 5)
        #expect(heard == AggLimits.controlReplyBurst + 5)
        // A PONG (the server's answer to the link's PING) is heard, not answered.
        session.handleControl(.pong(1), now: Self.now)
        #expect(Self.actions(&session) == [.heard])
    }
}
