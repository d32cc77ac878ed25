import NIOCore
import SCTPEngine
import Testing

@testable import AggObservability
@testable import AggProtocol
@testable import Proxy

/// `EarlyReply`: when the client's session answers a new connection's application, driven in lockstep with a
/// server session. An early answer (`open` returns true) hands the socket to the relay at once, so the glue calls
/// `handleAttached` itself; the OPEN-RESULT then only decides whether the target is vouched for, and a failure
/// resets the socket.
@Suite struct EarlyReplyTests {
    static let target = SessionLockstepTests.target
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func client(_ policy: EarlyReply, metrics: ProxyMetrics) -> LockstepSide {
        let side = LockstepSide.client(now: start)
        side.session.earlyReply = policy
        side.session.metrics = metrics
        return side
    }

    /// A new connection's stream, opened to `target` at `now`: whether it was answered early. The glue's part of an
    /// early answer (the relay joins the socket) is done here.
    func open(
        _ client: LockstepSide, to target: StreamTarget = target, initialData: ByteBuffer? = nil,
        attach: Bool = true, now: NIODeadline
    ) throws -> (ConnectionID, Bool) {
        guard case .granted(let local) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: now)
        else {
            Issue.record("no stream granted")
            throw CancellationError()
        }
        let early = client.session.open(local, to: target, initialData: initialData, now: now)
        if early, attach { client.session.handleAttached(local) }
        client.run()
        return (local, early)
    }

    /// The server connects `remote`'s target (the latest OPEN when nil) and both sides exchange what follows.
    func connectTarget(_ client: LockstepSide, _ server: LockstepSide, now: NIODeadline) throws -> ConnectionID {
        SessionLockstepTests.exchange(client, server, now: now)
        let remote = try #require(server.connects.last?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        SessionLockstepTests.exchange(client, server, now: now)
        return remote
    }

    @Test func aTargetThatAcceptedIsAnsweredEarlyAndTheApplicationsBytesFollowTheOpen() throws {
        let metrics = ProxyMetrics()
        let client = client(.known, metrics: metrics)
        let server = LockstepSide.server(now: start)

        // Unknown yet: the application waits for the OPEN-RESULT, as with `never`.
        let (first, firstEarly) = try open(client, now: start)
        #expect(!firstEarly)
        _ = try connectTarget(client, server, now: start)
        #expect(client.opened == [first])

        // Known now: answered at once; what the application sends goes right behind the OPEN, within the credit,
        // before the server has even connected.
        let (second, secondEarly) = try open(client, now: start + .seconds(1))
        #expect(secondEarly)
        client.session.handleRead(second, SessionLockstepTests.bytes(3000, 7), now: start + .seconds(1))
        client.run()
        #expect(client.outbox.map(\.0.kind) == [.open, .data])
        SessionLockstepTests.exchange(client, server, now: start + .seconds(1))
        let remote = try #require(server.connects.last?.0)
        #expect(server.written[remote] == nil)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        #expect(server.written[remote] == SessionLockstepTests.bytes(3000, 7))
        SessionLockstepTests.exchange(client, server, now: start + .seconds(1))
        // The OPEN-RESULT asks nothing more of the glue: the relay is in place already.
        #expect(client.opened == [first])
        #expect(client.openFailures.isEmpty)

        // The target's bytes reach the application's socket.
        server.session.handleRead(remote, SessionLockstepTests.bytes(500, 8), now: start + .seconds(1))
        server.run()
        SessionLockstepTests.exchange(client, server, now: start + .seconds(1))
        #expect(client.written[second] == SessionLockstepTests.bytes(500, 8))
        // The early answer's outcome is counted by the session, once, when its OPEN-RESULT came; the first one's
        // is the glue's (from `.opened`), so the session counts none for it.
        #expect(metrics.values.connections == ["success": 1])
    }

    @Test func aKnownTargetThatFailsResetsTheAnsweredSocketAndIsForgotten() throws {
        let metrics = ProxyMetrics()
        let client = client(.known, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (first, _) = try open(client, now: start)
        _ = try connectTarget(client, server, now: start)
        #expect(client.opened == [first])

        let (second, early) = try open(client, initialData: SessionLockstepTests.bytes(100, 1), now: start)
        #expect(early)
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        server.session.handleTargetFailed(remote, EgressError(.refused, "connection refused"))
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        // Told it was connected, the application learns otherwise from a reset; the stream is free again.
        #expect(client.closed[second] == true)
        #expect(client.openFailures.isEmpty)
        #expect(client.session.table.count == 1 && server.session.table.count == 1)
        #expect(metrics.values.connections == ["refused": 1])

        // The failure took the target off the known ones: the next connection waits for the server's answer.
        let (_, thirdEarly) = try open(client, now: start)
        #expect(!thirdEarly)
    }

    @Test func aTargetIsKnownForFiveMinutesAfterItsLastSuccess() throws {
        let metrics = ProxyMetrics()
        let client = client(.known, metrics: metrics)
        let server = LockstepSide.server(now: start)
        _ = try open(client, now: start)
        _ = try connectTarget(client, server, now: start)
        // Another target is not vouched for by this one.
        let other = StreamTarget(host: "example.com", port: 8443)
        let (_, otherEarly) = try open(client, to: other, now: start)
        #expect(!otherEarly)
        let later = start + KnownTargets.lifetime - .seconds(1)
        let (_, stillKnown) = try open(client, now: later)
        #expect(stillKnown)
        let (_, expired) = try open(client, now: start + KnownTargets.lifetime)
        #expect(!expired)
    }

    @Test func neverAnswersBeforeTheOpenResult() throws {
        let metrics = ProxyMetrics()
        let client = client(.never, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (first, firstEarly) = try open(client, now: start)
        _ = try connectTarget(client, server, now: start)
        let (second, secondEarly) = try open(client, now: start)
        _ = try connectTarget(client, server, now: start)
        #expect(!firstEarly && !secondEarly)
        #expect(client.opened == [first, second])
        #expect(metrics.values.connections.isEmpty)  // The glue counts both, from `.opened`.
    }

    @Test func alwaysAnswersAtOnceAndNoOpenResultInTimeResetsTheSocket() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, early) = try open(client, now: start)
        #expect(early)
        SessionLockstepTests.exchange(client, server, now: start)  // The server connects forever.
        client.session.handleTimeout(now: start + .seconds(10))
        client.run()
        #expect(client.closed[local] == true)
        #expect(client.openFailures.isEmpty)
        #expect(client.messages(kind: .reset).count == 1)
        #expect(metrics.values.connections == ["timeout": 1])
        SessionLockstepTests.exchange(client, server, now: start + .seconds(10))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
    }

    @Test func anEarlyAnswerEndedByTheApplicationOrTheAssociationIsCountedOnce() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        // The application closes before the OPEN-RESULT: RESET to the server, counted as a general failure.
        let (gone, _) = try open(client, now: start)
        client.session.handleSocketClosed(gone)
        client.run()
        #expect(client.messages(kind: .reset).count == 1)
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(metrics.values.connections == ["general_failure": 1])

        // The association is lost with one pending: its socket is reset, counted as "server unavailable".
        let (pending, _) = try open(client, now: start)
        client.session.handleAssociationLost()
        client.run()
        #expect(client.closed[pending] == true)
        #expect(client.openFailures.isEmpty)
        #expect(metrics.values.connections == ["general_failure": 1, "server_unavailable": 1])
    }

    @Test func theKnownTargetsTableIsBounded() {
        func key(_ host: String, _ port: Int) -> KnownTargets.Key {
            KnownTargets.Key(target: StreamTarget(host: host, port: UInt16(port)), requester: nil)
        }
        var known = KnownTargets()
        let now = start
        for port in 0..<KnownTargets.capacity { known.add(key("h", port), now: now) }
        #expect(known.count == KnownTargets.capacity)
        // Full and none expired: it starts again with the new one.
        known.add(key("new", 1), now: now + .seconds(1))
        #expect(known.count == 1)
        #expect(known.contains(key("new", 1), now: now + .seconds(1)))
        #expect(!known.contains(key("h", 1), now: now + .seconds(1)))

        // Full with some expired: only those go.
        var mixed = KnownTargets()
        for port in 0..<KnownTargets.capacity {
            mixed.add(key("h", port), now: port < 10 ? now : now + .seconds(100))
        }
        mixed.add(key("new", 1), now: now + KnownTargets.lifetime + .seconds(1))
        #expect(mixed.count == KnownTargets.capacity - 10 + 1)
    }

    /// A target is known to the host that reached it only: how fast another LAN host's request is answered tells
    /// it nothing about where this one went.
    @Test func aTargetIsKnownOnlyToTheHostThatReachedIt() throws {
        let metrics = ProxyMetrics()
        let client = client(.known, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let alice = SCTPIPAddress("192.168.1.10")!
        let bob = SCTPIPAddress("192.168.1.11")!
        func open(from requester: SCTPIPAddress) throws -> Bool {
            guard case .granted(let local) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start)
            else { throw CancellationError() }
            let early = client.session.open(
                local, to: Self.target, initialData: nil, requester: requester, now: start)
            if early { client.session.handleAttached(local) }
            client.run()
            return early
        }
        #expect(try !open(from: alice))
        _ = try connectTarget(client, server, now: start)
        #expect(try open(from: alice))
        #expect(try !open(from: bob))
    }

    /// "Too many streams" says nothing about the target: it stays known.
    @Test func aRefusalForWantOfStreamsDoesNotForgetTheTarget() throws {
        let metrics = ProxyMetrics()
        let client = client(.known, metrics: metrics)
        let server = LockstepSide.server(now: start)
        _ = try open(client, now: start)
        _ = try connectTarget(client, server, now: start)
        let (second, early) = try open(client, now: start)
        #expect(early)
        // The server refuses the second OPEN as if it were at its stream limit.
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        server.session.handleTargetFailed(remote, EgressError(.tooManyStreams, "full"))
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(client.closed[second] == true)
        #expect(metrics.values.connections == ["too_many_streams": 1])
        let (_, stillEarly) = try open(client, now: start)
        #expect(stillEarly)
    }

    /// Before its OPEN-RESULT a connection sends at most `dataBeforeOpenResult`, whatever its credit: a target that
    /// never answers parks little on the server. The rest follows the OPEN-RESULT.
    @Test func atMostSixtyFourKiBLeaveBeforeTheOpenResult() throws {
        let metrics = ProxyMetrics()
        let client = LockstepSide.client(sendCredit: 1024 * 1024, now: start)
        client.session.earlyReply = .always
        client.session.metrics = metrics
        let server = LockstepSide.server(credit: 1024 * 1024, now: start)
        let (local, early) = try open(client, now: start)
        #expect(early)
        client.session.handleRead(local, SessionLockstepTests.bytes(300_000, 5), now: start)
        client.run()
        let sentBefore = client.messages(kind: .data).reduce(0) { total, message in
            guard case .data(let bytes) = message else { return total }
            return total + bytes.readableBytes
        }
        #expect(sentBefore == StreamSession.dataBeforeOpenResult)
        let remote = try connectTarget(client, server, now: start)
        #expect(server.written[remote]?.readableBytes == 300_000)
    }
}
