import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// aggserver's whole association (`ServerSession`: lifecycle and streams in one machine) against aggclient's
/// machines (`ClientLink`, its `ClientSession`), in lockstep with no event loop (`AssociationPair`). Each test reads
/// as the steps of one scenario.
@Suite struct ServerSessionLockstepTests {
    static func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer { ByteBuffer(repeating: value, count: count) }

    /// A pair whose client authenticated: both sides are ready.
    static func authenticatedPair() throws -> AssociationPair {
        let pair = AssociationPair()
        pair.startLink()
        pair.exchange()
        #expect(pair.serverAuthenticated == ["laptop"])
        #expect(pair.server?.isReady == true)
        _ = try #require(pair.link.current)
        return pair
    }

    @Test func authenticateThenRelayBytesBothWaysWithHalfClose() throws {
        let pair = try Self.authenticatedPair()
        let client = try #require(pair.clientStreams)
        let server = try #require(pair.serverStreams)
        // OPEN goes through the server's session to its streams: connect, OPEN-RESULT ok.
        let (local, remote) = try pair.openConnection()
        #expect(server.connects.map(\.1) == [SessionLockstepTests.target])
        // Client to target.
        client.session.handleRead(local, Self.bytes(3000, 1), now: pair.now)
        client.run()
        pair.exchange()
        #expect(server.written[remote] == Self.bytes(3000, 1))
        // Target to client, through the session's streams in place.
        server.session.handleRead(remote, Self.bytes(7000, 2), now: pair.now)
        server.run()
        pair.exchange()
        #expect(client.written[local] == Self.bytes(7000, 2))
        // The application half-closes: the target's output ends, its reply still flows.
        SessionLockstepTests.endInput(local, of: client, client, server, now: pair.now)
        #expect(server.outputEnded.contains(remote))
        server.session.handleRead(remote, Self.bytes(10, 3), now: pair.now)
        server.run()
        pair.exchange()
        #expect(client.written[local]?.readableBytes == 7010)
        // The target finishes too: the stream is free on both sides, both sockets close gracefully.
        SessionLockstepTests.endInput(remote, of: server, client, server, now: pair.now)
        #expect(server.closed[remote] == false && client.closed[local] == false)
        #expect(client.session.activeStreams == 0 && server.session.activeStreams == 0)
        #expect(pair.serverAborts.isEmpty && pair.clientAborts.isEmpty)
        #expect(pair.server?.isReady == true)
    }

    @Test func aStreamMessageBeforeAuthOKAbortsTheAssociation() throws {
        let pair = AssociationPair()
        pair.startLink()
        // HELLO is in flight; the client sends an OPEN before authenticating.
        let side = try #require(pair.serverSide)
        side.receive(
            SessionLockstepTests.sctp(.open(SessionLockstepTests.target, initialCredit: 1024), StreamID(1)),
            now: pair.now)
        pair.runServer()
        #expect(pair.serverAborts == ["stream message before AUTH-OK"])
        #expect(pair.server?.isClosed == true)
        #expect(side.connects.isEmpty, "nothing was connected")
        #expect(pair.serverAuthenticationFailures.isEmpty)
        // The client sees its attempt closed: nothing is ready.
        pair.exchange()
        #expect(pair.readies.isEmpty && pair.serverAuthenticated.isEmpty)
        #expect(pair.link.current == nil)
    }

    @Test func theAuthenticationDeadlineAbortsTheAssociation() throws {
        let pair = AssociationPair { $0.handshakeTimeout = .seconds(20) }
        pair.clientMuted = true
        pair.startLink()
        pair.exchange()
        let side = try #require(pair.serverSide)
        #expect(pair.server?.nextDeadline == pair.now + .seconds(10))
        pair.advance(by: .milliseconds(9_999))
        #expect(pair.serverAborts.isEmpty)
        pair.advance(by: .milliseconds(1))
        #expect(pair.serverAborts == ["not authenticated in time"])
        #expect(side.machine?.isClosed == true)
        #expect(side.machine?.nextDeadline == nil)
    }

    @Test func drainingFinishesWhenTheLastStreamEnds() throws {
        let pair = try Self.authenticatedPair()
        let client = try #require(pair.clientStreams)
        let server = try #require(pair.serverStreams)
        let one = try pair.openConnection()
        let two = try pair.openConnection()
        // The server stops gracefully: its session drains.
        server.withMachine { $0.handleDrain() }
        #expect(server.drainedReports == 0)
        #expect(pair.server?.isReady == true, "running streams go on")
        try pair.closeConnection(one.0, one.1)
        #expect(server.drainedReports == 0, "one stream is still open")
        // Bytes still flow on the last stream.
        server.session.handleRead(two.1, Self.bytes(500, 4), now: pair.now)
        server.run()
        pair.exchange()
        #expect(client.written[two.0]?.readableBytes == 500)
        try pair.closeConnection(two.0, two.1)
        #expect(server.drainedReports == 1)
        #expect(server.takeMachineActions().filter { $0 == .drained }.count == 1)
        // Reported once.
        server.withMachine { $0.handleDrain() }
        #expect(server.drainedReports == 1)
        #expect(pair.serverAborts.isEmpty)
    }

    @Test func drainingWithNoStreamOpenIsDoneAtOnce() throws {
        let pair = try Self.authenticatedPair()
        let server = try #require(pair.serverStreams)
        server.withMachine { $0.handleDrain() }
        #expect(server.drainedReports == 1)
    }

    /// The streams' fatal error (the client reusing a stream the server has not freed) ends the whole session:
    /// the target's socket is reset, then the association is aborted.
    @Test func aStreamReusedBeforeItIsFreeAbortsTheSessionAfterResettingItsSockets() throws {
        let pair = try Self.authenticatedPair()
        let server = try #require(pair.serverStreams)
        let (_, remote) = try pair.openConnection()
        let stream = try #require(server.session.stream(of: remote))
        server.receive(
            SessionLockstepTests.sctp(.open(SessionLockstepTests.target, initialCredit: 1024), stream),
            now: pair.now)
        #expect(server.closed[remote] == true)
        #expect(server.machine?.isClosed == true)
        pair.runServer()
        #expect(pair.serverAborts.count == 1)
        #expect(pair.link.current == nil, "the client saw the ABORT")
    }
}
