import NIOCore
import SCTPEngine
import Testing

@testable import AggObservability
@testable import AggProtocol
@testable import Proxy

/// A server session fed messages as a hostile key holder would send them: every stream opened at once, each filled
/// to its credit while its target never connects (the DATA waits in the session). The association's limits hold
/// whatever the peer does, and every refusal is counted.
@Suite struct StreamSessionLimitTests {
    static let credit = 64 * 1024
    static let cap = 256 * 1024
    static let target = StreamTarget(host: "127.0.0.1", port: 9)
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func server(streams: Int, metrics: ProxyMetrics) -> LockstepSide {
        LockstepSide.server(
            streams: streams, credit: UInt32(Self.credit), now: now, bufferedBytesLimit: Self.cap, metrics: metrics)
    }

    static func message(_ message: StreamMessage, on stream: Int) -> SCTPMessage {
        SCTPMessage(stream: StreamID(UInt16(stream)), ppid: message.ppid, isUnordered: false, payload: message.encode())
    }

    /// OPENs on `streams`, none of which the session has seen.
    func open(_ streams: ClosedRange<Int>, on side: LockstepSide) {
        for stream in streams {
            side.session.handleMessage(Self.message(.open(Self.target, initialCredit: 0), on: stream), now: now)
        }
        side.run()
    }

    /// Streams 2 to 5 each filled to their 64 KiB credit (the association at its cap), then one more chunk on 1.
    func fillToTheCapThenSendOnStreamOne(_ chunk: ByteBuffer, on side: LockstepSide) {
        for stream in 2...5 {
            for _ in 0..<4 { side.session.handleMessage(Self.message(.data(chunk), on: stream), now: now) }
        }
        side.run()
        #expect(side.session.bufferedBytes == Self.cap)
        side.session.handleMessage(Self.message(.data(chunk), on: 1), now: now)
        side.run()
    }

    /// 16 streams opened before any byte arrives each bring 64 KiB of credit, four times the 256 KiB cap; each is
    /// then filled to its credit, round by round. The association never holds more than its cap: once it is full,
    /// each DATA resets the stream holding the most, and at least 12 streams go (1 MiB arrived, each reset stream
    /// takes at most its 64 KiB with it), each counted.
    @Test func dataBeyondTheBufferedBytesCapResetsAStream() {
        let metrics = ProxyMetrics()
        let side = server(streams: 64, metrics: metrics)
        for stream in 1...16 {
            side.session.handleMessage(Self.message(.open(Self.target, initialCredit: 0), on: stream), now: now)
        }
        side.run()
        #expect(side.connects.count == 16)
        let chunk = ByteBuffer(repeating: 0x5A, count: 16 * 1024)
        for _ in 0..<(Self.credit / chunk.readableBytes) {
            for stream in 1...16 {
                side.session.handleMessage(Self.message(.data(chunk), on: stream), now: now)
                side.run()
                #expect(side.session.bufferedBytes <= Self.cap)
            }
        }
        #expect(side.session.bufferedBytes == Self.cap)
        let resets = metrics.refusals[.bufferedBytesPerAssociation] ?? 0
        #expect(resets >= 12)
        #expect(side.session.activeStreams == 16 - resets)
        #expect(side.messages(kind: .reset).count == resets)
    }

    /// At the cap, DATA for a stream whose socket takes everything at once resets a stream that holds bytes its
    /// socket did not take, not the one that drains.
    @Test func theStreamHoldingTheMostIsResetNotTheOneThatDrains() throws {
        let metrics = ProxyMetrics()
        let side = server(streams: 64, metrics: metrics)
        open(1...5, on: side)
        let healthy = side.connects[0].0
        let connected = side.session.handleTargetConnected(healthy)
        #expect(connected)
        side.run()
        let chunk = ByteBuffer(repeating: 0x33, count: 16 * 1024)
        fillToTheCapThenSendOnStreamOne(chunk, on: side)
        #expect(metrics.refusals[.bufferedBytesPerAssociation] == 1)
        #expect(side.session.contains(healthy))
        #expect(side.written[healthy] == chunk)
        #expect(side.session.bufferedBytes == Self.cap - Self.credit)
        #expect(side.session.activeStreams == 4)
    }

    /// The glue writes a turn's DATA unflushed and flushes before DATA for which `wouldExceedBufferedLimit`: a stream
    /// whose socket takes everything then holds nothing when the cap picks a stream to reset, even when the turn
    /// gave it more than any stalled stream holds. Here the draining stream gathers its whole credit unflushed, four
    /// stalled streams bring the association to its cap, and DATA on a fifth would pass it: the flush comes first
    /// and nothing is reset; from then on only stalled streams are.
    @Test func unflushedWritesOfADrainingStreamGoOutBeforeTheCapPicksAStreamToReset() throws {
        let metrics = ProxyMetrics()
        let side = server(streams: 64, metrics: metrics)
        open(1...6, on: side)
        let draining = side.connects[0].0
        let connected = side.session.handleTargetConnected(draining)
        #expect(connected)
        side.run()
        side.holdWrites = true  // Written within the turn, not flushed yet.
        let chunk = ByteBuffer(repeating: 0x66, count: 16 * 1024)
        func receive(on stream: Int) {
            if side.session.wouldExceedBufferedLimit(receiving: chunk.readableBytes) { side.completeHeldWrites() }
            side.session.handleMessage(Self.message(.data(chunk), on: stream), now: now)
            side.run()
        }
        for _ in 0..<4 { receive(on: 1) }
        for stream in 2...5 {
            for _ in 0..<3 { receive(on: stream) }
        }
        #expect(side.session.bufferedBytes == Self.cap)
        #expect(side.session.bufferedBytes(of: draining) == Self.credit)  // More than any stalled stream's 48 KiB.
        #expect(side.session.wouldExceedBufferedLimit(receiving: chunk.readableBytes))
        receive(on: 6)
        #expect(metrics.refusals[.bufferedBytesPerAssociation] == nil)
        #expect(side.session.bufferedBytes(of: draining) == 0)
        #expect(side.session.bufferedBytes == Self.cap - Self.credit + chunk.readableBytes)
        // The stalled streams fill the association again; past the cap, one of them goes.
        for stream in 2...5 { receive(on: stream) }
        #expect(metrics.refusals[.bufferedBytesPerAssociation] == 1)
        #expect(side.session.contains(draining))
        #expect(side.session.bufferedBytes <= Self.cap)
        #expect(side.written[draining]?.readableBytes == Self.credit)
    }

    /// The same when the stalled streams' bytes are already in their sockets' write queues: resetting one closes
    /// its socket, which drops those writes, so its bytes count out at once and the arriving stream keeps going.
    /// (When the count waited for the failed writes to be reported, the arriving stream was reset as well.)
    @Test func resettingAStreamCountsItsUnwrittenBytesOutAtOnce() throws {
        let metrics = ProxyMetrics()
        let side = server(streams: 64, metrics: metrics)
        open(1...5, on: side)
        side.holdWrites = true
        for (connection, _) in side.connects {
            let connected = side.session.handleTargetConnected(connection)
            #expect(connected)
        }
        side.run()
        let chunk = ByteBuffer(repeating: 0x44, count: 16 * 1024)
        fillToTheCapThenSendOnStreamOne(chunk, on: side)
        #expect(metrics.refusals[.bufferedBytesPerAssociation] == 1)
        #expect(side.closed.count == 1)
        #expect(side.session.contains(side.connects[0].0))
        #expect(side.session.bufferedBytes == Self.cap - Self.credit + chunk.readableBytes)
        // The dropped writes' failures, reported later, are not counted out a second time.
        side.completeHeldWrites()
        #expect(side.session.bufferedBytes == 0)
    }

    /// OPENs beyond the streams-per-association limit are refused with OPEN-RESULT "too many streams" and counted
    /// both as refused connections and as refusals of that limit.
    @Test func opensBeyondTheStreamLimitAreRefusedAndCounted() {
        let metrics = ProxyMetrics()
        let side = server(streams: 8, metrics: metrics)
        for stream in 1...13 {
            side.session.handleMessage(Self.message(.open(Self.target, initialCredit: 0), on: stream), now: now)
        }
        side.run()
        #expect(side.connects.count == 8)
        #expect(side.session.activeStreams == 8)
        #expect(side.messages(kind: .openResult).count == 5)
        #expect(metrics.refusals[.streamsPerAssociation] == 5)
        #expect(metrics.values.connections[ConnectionOutcome.tooManyStreams.rawValue] == 5)
    }

    /// What the association read and has not sent, as the glue would answer it (`SendRoom.unsent`).
    final class Unsent {
        var bytes = 0
    }

    /// A server side whose session asks `unsent` what the association read and has not sent, `bytes` to begin with.
    func server(
        unsent: Unsent, bytes: Int = 0, bufferedBytesLimit: Int = cap, metrics: ProxyMetrics = ProxyMetrics()
    ) -> LockstepSide {
        let side = LockstepSide.server(
            streams: 64, credit: UInt32(Self.credit), now: now, bufferedBytesLimit: bufferedBytesLimit,
            metrics: metrics)
        unsent.bytes = bytes
        side.session.unsentBytes = { unsent.bytes }
        return side
    }

    /// OPENs on `streams` whose client gives 64 KiB of credit, each target connected at once.
    func openConnected(_ streams: ClosedRange<Int>, on side: LockstepSide) -> [ConnectionID] {
        for stream in streams {
            side.session.handleMessage(
                Self.message(.open(Self.target, initialCredit: UInt32(Self.credit)), on: stream), now: now)
        }
        side.run()
        let connections = side.connects.map(\.0)
        for connection in connections { _ = side.session.handleTargetConnected(connection) }
        side.run()
        return connections
    }

    /// At a target's FIN, NIO reads everything its socket holds whether or not the session allowed a read (its
    /// window: up to 64 KiB held back from the start, up to 6 MiB after fast reads). Such a read that would take
    /// what the association read and has not sent past its limit (four times the buffered-bytes cap: 1 MiB here)
    /// resets its stream, drops its bytes and is counted; one that fits goes out, and so does an allowed read at
    /// the same point (the session's own read bound keeps those under twice the send buffer).
    @Test func aReadNotAllowedThatWouldPassTheUnsentLimitResetsItsStream() throws {
        let metrics = ProxyMetrics()
        let unsent = Unsent()
        let side = server(unsent: unsent, metrics: metrics)
        let connections = openConnected(1...3, on: side)
        try #require(connections.count == 3)
        unsent.bytes = 4 * Self.cap - 56 * 1024
        let window = ByteBuffer(repeating: 0x61, count: 64 * 1024)

        side.session.handleRead(connections[0], window, allowed: false, now: now)
        side.run()
        #expect(side.closed[connections[0]] == true)
        #expect(side.messages(kind: .reset).count == 1)
        #expect(side.messages(kind: .data).isEmpty)
        #expect(metrics.refusals[.bufferedBytesPerAssociation] == 1)

        side.session.handleRead(connections[1], ByteBuffer(repeating: 0x62, count: 32 * 1024), allowed: false, now: now)
        side.session.handleRead(connections[2], window, allowed: true, now: now)
        side.run()
        let sent = side.messages(kind: .data).reduce(0) {
            guard case .data(let bytes) = $1 else { return $0 }
            return $0 + bytes.readableBytes
        }
        #expect(sent == 96 * 1024)
        #expect(side.closed[connections[1]] == nil && side.closed[connections[2]] == nil)
        #expect(metrics.refusals[.bufferedBytesPerAssociation] == 1)
    }

    /// While the association holds half its buffered-bytes cap read and not sent (an eighth of its unsent limit),
    /// the server's new connections wait to connect (a burst of targets answering with their FIN brings its bytes
    /// whatever the read bound), in the order their OPENs came; as it drains, at most once per 10 ms, as many go as
    /// the room under that takes 64 KiB each, less 64 KiB for each connect let go whose target has sent nothing yet
    /// (its bytes show a round trip later; for 3 s at most). With room and none waiting, connects go at once and
    /// reserve nothing. A waiting connection the client resets meanwhile never connects.
    @Test func connectsWaitWhileHalfTheUnsentLimitIsHeldAndGoInTurnAsItDrains() throws {
        let limit = 1024 * 1024
        let unsent = Unsent()
        let side = server(unsent: unsent, bytes: limit / 2, bufferedBytesLimit: limit)
        let reservation = StreamSession.connectReservation
        open(1...4, on: side)
        #expect(side.connects.isEmpty)
        let deadline = try #require(side.session.nextDeadline)
        #expect(deadline > now && deadline <= now + .milliseconds(20))

        // Still at half: nothing goes, and the session looks again 10 ms later.
        side.session.handleTimeout(now: deadline)
        side.run()
        #expect(side.connects.isEmpty)
        let next = try #require(side.session.nextDeadline)
        #expect(next > deadline && next <= deadline + .milliseconds(10))

        // Room for two connects' 64 KiB: streams 1 and 2 connect, 3 and 4 wait; an OPEN on 5 waits behind them.
        unsent.bytes = limit / 2 - 2 * reservation
        side.session.handleTimeout(now: next)
        side.run()
        #expect(side.connects.count == 2)
        open(5...5, on: side)
        // 10 ms later nothing came from those two targets: their 64 KiB each still counts, nothing more goes.
        side.session.handleTimeout(now: try #require(side.session.nextDeadline))
        side.run()
        #expect(side.connects.count == 2)
        // Stream 1's target answers (its bytes now counted in what was read and not sent): its reservation is free,
        // and one more connect goes, stream 3's.
        let first = side.connects[0].0
        let connected = side.session.handleTargetConnected(first)
        #expect(connected)
        side.run()
        side.session.handleRead(first, ByteBuffer(repeating: 1, count: 1_000), now: next)
        side.run()
        side.session.handleTimeout(now: try #require(side.session.nextDeadline))
        side.run()
        #expect(side.connects.count == 3)
        // The client gives up on stream 4.
        side.session.handleMessage(Self.message(.reset(.cancelled, text: nil), on: 4), now: next)
        side.run()

        // Some room, but streams 2 and 3's targets are silent and hold it until their reservations end, 3 s
        // after they went: then stream 5 connects.
        unsent.bytes = limit / 2 - 2 * reservation + reservation / 2
        side.session.handleTimeout(now: try #require(side.session.nextDeadline))
        side.run()
        #expect(side.connects.count == 3)
        side.session.handleTimeout(now: next + .milliseconds(3_100))
        side.run()
        var streams = side.connects.compactMap { side.session.stream(of: $0.0)?.rawValue }
        #expect(streams == [1, 2, 3, 5])
        #expect(side.session.waitingConnectCount == (0, 0))
        #expect(side.messages(kind: .openResult).count == 1)  // Stream 1's.

        // With room and none waiting, OPENs connect at once and reserve nothing: eight more, where eight
        // reservations would not fit.
        unsent.bytes = limit / 4 - 1
        open(6...13, on: side)
        streams = side.connects.compactMap { side.session.stream(of: $0.0)?.rawValue }
        #expect(streams == [1, 2, 3, 5] + Array(6...13))
    }

    /// A client that keeps the association past the point where connects wait and resets each OPEN as it waits leaves
    /// nothing behind: behind one connection that waits, 10,000 OPEN and RESET pairs on another stream keep no more
    /// than a few dozen entries listed, and none of them ever connects.
    @Test func opensResetWhileTheyWaitLeaveNothingBehind() throws {
        let unsent = Unsent()
        let side = server(unsent: unsent, bytes: Self.cap)
        open(2...2, on: side)
        var time = now
        for _ in 0..<10_000 {
            side.session.handleMessage(Self.message(.open(Self.target, initialCredit: 0), on: 1), now: time)
            side.session.handleMessage(Self.message(.reset(.cancelled, text: nil), on: 1), now: time)
            time = time + .milliseconds(1)
            side.session.handleTimeout(now: time)
            side.run()
            #expect(side.session.waitingConnectCount.listed <= 2 * 1 + 64)
        }
        #expect(side.session.waitingConnectCount.live == 1)
        #expect(side.session.activeStreams == 1)
        unsent.bytes = 0
        side.session.handleTimeout(now: time + .milliseconds(20))
        side.run()
        #expect(side.connects.map { side.session.stream(of: $0.0)?.rawValue } == [2])
        #expect(side.session.waitingConnectCount == (0, 0))
    }

    /// The association lost while connects wait: none goes, and no wake-up is left for them.
    @Test func waitingConnectsGoWithTheAssociation() throws {
        let unsent = Unsent()
        let side = server(unsent: unsent, bytes: Self.cap)
        open(1...3, on: side)
        side.session.handleAssociationLost()
        side.run()
        unsent.bytes = 0
        side.session.handleTimeout(now: now + .seconds(6))
        side.run()
        #expect(side.connects.isEmpty)
        #expect(side.session.waitingConnectCount == (0, 0))
        #expect(side.session.nextDeadline == nil)
    }
}
