import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// The rules of one connection's socket and two directions inside `StreamSession` (its `SocketState`,
/// `InputState` and `OutputState`), each seen from the actions the glue gets, with a client and a server session
/// in lockstep.
@Suite struct ConnectionStateTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    /// Input: reading → ended → FIN sent, once. A second end of input sends nothing more.
    @Test func theSocketsInputEndingTwiceSendsOneFIN() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, _) = try SessionLockstepTests.openConnection(client, server, now: start)
        client.session.handleInputEnded(local)
        client.run()
        client.session.handleInputEnded(local)
        client.run()
        #expect(client.messages(kind: .fin).count == 1)
        // Bytes read after the end of input are not sent.
        client.session.handleRead(local, SessionLockstepTests.bytes(10, 1), now: start)
        client.run()
        #expect(client.messages(kind: .data).isEmpty)
    }

    /// Input ended while bytes wait for credit: FIN waits behind them and goes once the last byte went out.
    @Test func finWaitsBehindTheBytesReadBeforeTheInputEnded() throws {
        let client = LockstepSide.client(sendCredit: 1024, now: start)
        let server = LockstepSide.server(credit: 1024, now: start)
        let (local, remote) = try SessionLockstepTests.openConnection(client, server, now: start)
        client.session.handleRead(local, SessionLockstepTests.bytes(3000, 2), now: start)
        client.session.handleInputEnded(local)
        client.run()
        #expect(client.messages(kind: .data).count == 1, "1024 bytes of credit")
        #expect(client.messages(kind: .fin).isEmpty, "FIN waits for the other 1976 bytes")
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(server.written[remote]?.readableBytes == 3000)
        #expect(server.outputEnded.contains(remote))
    }

    /// Output: the peer's FIN ends the socket's output only once every write in flight completed.
    @Test func thePeersFINEndsTheOutputAfterTheLastWrite() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try SessionLockstepTests.openConnection(client, server, now: start)
        client.holdWrites = true
        server.session.handleRead(remote, SessionLockstepTests.bytes(500, 3), now: start)
        server.session.handleInputEnded(remote)
        server.run()
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(!client.outputEnded.contains(local), "a write is still in flight")
        client.completeHeldWrites()
        #expect(client.outputEnded.contains(local))
    }

    /// Socket: once it closed it is neither written nor read. A read it asked for while the association's send
    /// buffer was full is dropped with it, not performed when the buffer drains.
    @Test func aSocketThatClosedIsNotReadWhenTheAssociationDrains() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (local, remote) = try SessionLockstepTests.openConnection(client, server, now: start)
        // The server finishes its side: the client's output ends.
        SessionLockstepTests.endInput(remote, of: server, client, server, now: start)
        #expect(client.outputEnded.contains(local))
        // The association's send buffer is full when the application asks to read.
        client.fillAssociation()
        client.session.handleReadRequested(local, now: start)
        client.run()
        #expect(client.reads[local] == nil)
        // The application closes its socket: that ends its input, and FIN goes out.
        client.session.handleSocketClosed(local)
        client.run()
        #expect(client.messages(kind: .fin).count == 1)
        // The buffer drains: nothing reads the closed socket.
        client.drainAssociation()
        client.run()
        #expect(client.reads[local] == nil)
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(client.session.activeStreams == 0 && server.session.activeStreams == 0)
    }

    /// Socket: a client connection still waiting for OPEN-RESULT belongs to the ingress; a reset answers the
    /// application (`.openFailed`) and closes nothing.
    @Test func aConnectionWaitingForOpenResultIsAnsweredNotClosed() throws {
        let client = LockstepSide.client(now: start)
        guard case .granted(let local) = client.session.requestStream(waitingUpTo: .zero, queueLimit: 0, now: start)
        else { throw CancellationError() }
        client.session.open(local, to: SessionLockstepTests.target, initialData: nil, now: start)
        client.run()
        client.session.handleSocketError(local, "gone")
        client.run()
        #expect(client.openFailures[local] == .generalFailure)
        #expect(client.closed.isEmpty)
    }

    /// A short read into a large buffer goes out in a buffer of its own, so the send queue, which counts bytes,
    /// does not pin the large one; a read that fills most of its buffer goes out as it is, without a copy.
    @Test func aShortReadIntoALargeBufferIsNotSentAsASliceOfIt() throws {
        let client = LockstepSide.client(now: start)
        let server = LockstepSide.server(now: start)
        let (_, remote) = try SessionLockstepTests.openConnection(client, server, now: start)
        var large = ByteBufferAllocator().buffer(capacity: 256 * 1_024)
        large.writeRepeatingByte(7, count: 100)
        server.session.handleRead(remote, large, now: start)
        var full = ByteBufferAllocator().buffer(capacity: 16 * 1_024)
        full.writeRepeatingByte(8, count: 10_000)
        server.session.handleRead(remote, full, now: start)
        server.run()
        let payloads = server.messages(kind: .data).compactMap { message -> ByteBuffer? in
            guard case .data(let bytes) = message else { return nil }
            return bytes
        }
        #expect(payloads.map(\.readableBytes) == [100, 10_000])
        #expect(payloads.first.map { $0.storageCapacity <= 2 * 100 } == true, "the 256 KiB buffer is pinned")
        #expect(payloads.last?.storageCapacity == 16 * 1_024, "a full read is copied")
    }

    /// Bytes read and waiting for credit are counted for the whole session (`unsentReads`, what the glue sizes the
    /// next reads by, with the association's send queue): down as credit sends them, and to zero when a
    /// connection goes with bytes left.
    @Test func bytesWaitingForCreditAreCountedUntilTheyGoOrTheConnectionDoes() throws {
        let client = LockstepSide.client(sendCredit: 1024, now: start)
        let server = LockstepSide.server(credit: 1024, now: start)
        let (first, _) = try SessionLockstepTests.openConnection(client, server, now: start)
        let (second, _) = try SessionLockstepTests.openConnection(client, server, now: start)
        client.session.handleRead(first, SessionLockstepTests.bytes(3000, 1), now: start)
        client.session.handleRead(second, SessionLockstepTests.bytes(5000, 2), now: start)
        client.run()
        #expect(client.session.unsentReads.bytes == 1976 + 3976, "1024 bytes of credit each")
        // The server's sockets take the bytes: its WINDOW-UPDATEs send more.
        SessionLockstepTests.exchange(client, server, now: start)
        #expect(client.session.unsentReads.bytes < 1976 + 3976)
        // The application closes the second connection abortively with bytes still waiting.
        client.session.handleSocketError(second, "connection reset by peer")
        client.run()
        SessionLockstepTests.exchange(client, server, now: start)
        client.session.handleInputEnded(first)
        for _ in 0..<4 { SessionLockstepTests.exchange(client, server, now: start) }
        #expect(client.session.unsentReads.bytes == 0)
    }
}
