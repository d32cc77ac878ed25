import NIOCore
import Testing

@testable import AggObservability
@testable import AggProtocol
@testable import Proxy

/// Review of early replies (a0cd20d): the paths of an early-answered connection that `EarlyReplyTests` does not
/// drive, in lockstep with a server session.
@Suite struct EarlyReplyReviewTests {
    static let target = SessionLockstepTests.target
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// `EarlyReplyTests`' helpers, at this suite's start.
    func client(_ policy: EarlyReply, metrics: ProxyMetrics) -> LockstepSide {
        EarlyReplyTests().client(policy, metrics: metrics)
    }

    func open(
        _ client: LockstepSide, initialData: ByteBuffer? = nil, attach: Bool = true
    ) throws -> (ConnectionID, Bool) {
        try EarlyReplyTests().open(client, initialData: initialData, attach: attach, now: start)
    }

    func bytes(_ count: Int, _ value: UInt8) -> ByteBuffer { SessionLockstepTests.bytes(count, value) }

    @Test func finBeforeAnOkOpenResultDeliversEverythingAndEndsGracefully() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, early) = try open(client)
        #expect(early)
        client.session.handleRead(local, bytes(100, 1), now: start)
        client.session.handleInputEnded(local)
        client.run()
        #expect(client.outbox.map(\.0.kind) == [.open, .data, .fin])
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        #expect(server.written[remote] == bytes(100, 1))
        #expect(server.outputEnded.contains(remote))
        SessionLockstepTests.exchange(client, server, now: start)
        server.session.handleRead(remote, bytes(50, 2), now: start)
        server.run()
        SessionLockstepTests.endInput(remote, of: server, client, server, now: start)
        #expect(client.written[local] == bytes(50, 2))
        #expect(client.closed[local] == false)
        #expect(!client.session.contains(local) && !server.session.contains(remote))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(metrics.values.connections == ["success": 1])
    }

    @Test func finBeforeAFailedOpenResultResetsTheSocketOnce() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, _) = try open(client, initialData: bytes(10, 1))
        client.session.handleInputEnded(local)
        client.run()
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        server.session.handleTargetFailed(remote, EgressError(.hostUnreachable, "no route"))
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(client.closed[local] == true)
        #expect(client.openFailures.isEmpty)
        #expect(!client.session.contains(local) && !server.session.contains(remote))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(metrics.values.connections == ["host_unreachable": 1])
    }

    @Test func bytesBeyondTheInitialCreditWaitForTheServersWindowUpdate() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, _) = try open(client)
        client.session.handleRead(local, bytes(100_000, 3), now: start)
        client.run()
        let sent = client.messages(kind: .data).reduce(0) {
            guard case .data(let b) = $1 else { return $0 }
            return $0 + b.readableBytes
        }
        #expect(sent == 64 * 1024)  // The HELLO credit, before any OPEN-RESULT.
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(server.written[remote] == bytes(100_000, 3))
        #expect(metrics.values.connections == ["success": 1])
    }

    @Test func aServerResetBeforeTheOpenResultClosesTheSocketCountedOnce() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, _) = try open(client, initialData: bytes(10, 1))
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        server.session.reset(remote, .internalError, text: "test")
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(client.closed[local] == true)
        #expect(client.openFailures.isEmpty)
        #expect(!client.session.contains(local))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(metrics.values.connections == ["general_failure": 1])
        // The OPEN-RESULT timeout that follows finds nothing to do.
        client.session.handleTimeout(now: start + .seconds(10))
        client.run()
        #expect(metrics.values.connections == ["general_failure": 1])
    }

    @Test func anEarlyAnswerWhoseRelayCouldNotJoinIsTheGluesToCount() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, early) = try open(client, attach: false)
        #expect(early)
        client.session.handleAttachFailed(local, .internalError, text: "cannot install the relay")
        client.run()
        #expect(client.closed[local] == nil)  // The socket stays the ingress's, which answers it.
        SessionLockstepTests.exchange(client, server, now: start)
        if let remote = server.connects.last?.0 { _ = server.session.handleTargetConnected(remote) }
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(!client.session.contains(local))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
        #expect(metrics.values.connections.isEmpty)
        client.session.handleTimeout(now: start + .seconds(10))
        client.run()
        #expect(metrics.values.connections.isEmpty)
    }

    @Test func aLateOkAfterTheTimeoutIsNotCountedAgainAndFreesTheStream() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, _) = try open(client)
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        client.session.handleTimeout(now: start + .seconds(10))
        client.run()
        #expect(client.closed[local] == true)
        // The server connects as the client's RESET crosses its OPEN-RESULT ok.
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        SessionLockstepTests.exchange(client, server, now: start + .seconds(10))
        #expect(metrics.values.connections == ["timeout": 1])
        #expect(!client.session.contains(local) && !server.session.contains(remote))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
    }

    @Test func theApplicationClosingBeforeAnOkOpenResultIsCountedOnce() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, _) = try open(client)
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        // The OPEN-RESULT ok is on its way when the application resets its connection.
        client.session.handleSocketClosed(local)
        client.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(metrics.values.connections == ["general_failure": 1])
        #expect(!client.session.contains(local) && !server.session.contains(remote))
        #expect(client.session.table.count == 0 && server.session.table.count == 0)
    }

    @Test func theOpenDeadlineAfterAnEarlyOkLeavesTheConnectionAlone() throws {
        let metrics = ProxyMetrics()
        let client = client(.always, metrics: metrics)
        let server = LockstepSide.server(now: start)
        let (local, _) = try open(client)
        SessionLockstepTests.exchange(client, server, now: start)
        let remote = try #require(server.connects.last?.0)
        let connected = server.session.handleTargetConnected(remote)
        #expect(connected)
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        client.session.handleTimeout(now: start + .seconds(10))
        client.run()
        #expect(client.closed[local] == nil)
        #expect(client.messages(kind: .reset).isEmpty)
        #expect(metrics.values.connections == ["success": 1])
    }
}
