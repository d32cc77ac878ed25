import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol
@testable import Proxy

/// Two stream state machines driven in lockstep: what one sends, the other receives, in order per direction.
struct StreamPair {
    var client = StreamState(role: .client, receiveCredit: 0, initialSendCredit: 1000)
    var server = StreamState(role: .server, receiveCredit: 1000)
    /// Messages sent and not yet delivered, per direction (SCTP streams are ordered).
    var toServer: [StreamMessage] = []
    var toClient: [StreamMessage] = []

    static let target = StreamTarget(host: .domain("example.com"), port: 443)

    mutating func clientSends(_ message: StreamMessage) throws -> StreamSendResult {
        let result = try client.send(message)
        toServer.append(message)
        return result
    }

    mutating func serverSends(_ message: StreamMessage) throws -> StreamSendResult {
        let result = try server.send(message)
        toClient.append(message)
        if result == .mustSendClosed {
            _ = try server.send(.closed)
            toClient.append(.closed)
        }
        return result
    }

    /// Delivers the oldest client → server message.
    mutating func deliverToServer() throws -> StreamReceiveAction {
        try server.receive(toServer.removeFirst())
    }

    mutating func deliverToClient() throws -> StreamReceiveAction {
        try client.receive(toClient.removeFirst())
    }

    mutating func open(credit: UInt32 = 500) throws {
        _ = try clientSends(.open(Self.target, initialCredit: credit))
        #expect(try deliverToServer() == .open(Self.target))
        #expect(try serverSends(.openResult(.ok, text: nil)) == .sent)
        #expect(try deliverToClient() == .opened)
    }
}

@Suite struct StreamStateTests {
    static func data(_ count: Int) -> StreamMessage { .data(ByteBuffer(repeating: 7, count: count)) }

    @Test func openThenDataBothWaysThenFinBothWaysFreesServerFirstThenClient() throws {
        var pair = StreamPair()
        try pair.open()
        #expect(pair.client.phase == .open && pair.server.phase == .open)
        _ = try pair.clientSends(Self.data(100))
        #expect(try pair.deliverToServer() == .deliver(ByteBuffer(repeating: 7, count: 100)))
        _ = try pair.serverSends(Self.data(200))
        #expect(try pair.deliverToClient() == .deliver(ByteBuffer(repeating: 7, count: 200)))

        #expect(try pair.clientSends(.fin) == .sent)
        #expect(pair.client.phase == .halfClosedLocal)
        #expect(try pair.deliverToServer() == .remoteFinished)
        #expect(pair.server.phase == .halfClosedRemote)
        #expect(try pair.serverSends(.fin) == .mustSendClosed)
        #expect(pair.server.isFree)  // The server frees first, when it sends CLOSED.
        #expect(try pair.deliverToClient() == .remoteFinished)
        #expect(pair.client.phase == .closed && !pair.client.isFree)
        #expect(try pair.deliverToClient() == .released)
        #expect(pair.client.isFree)
    }

    @Test func serverFinishingFirstSendsClosedWhenTheClientFinishes() throws {
        var pair = StreamPair()
        try pair.open()
        #expect(try pair.serverSends(.fin) == .sent)
        #expect(try pair.deliverToClient() == .remoteFinished)
        #expect(pair.client.phase == .halfClosedRemote)
        _ = try pair.clientSends(Self.data(10))  // The other direction goes on.
        #expect(try pair.deliverToServer() == .deliver(ByteBuffer(repeating: 7, count: 10)))
        _ = try pair.clientSends(.fin)
        #expect(pair.client.phase == .closed)
        #expect(try pair.deliverToServer() == .remoteFinishedMustSendClosed)
        #expect(try pair.serverSends(.closed) == .released)
        #expect(try pair.deliverToClient() == .released)
        #expect(pair.client.isFree && pair.server.isFree)
    }

    @Test func clientMaySendDataAndFinBeforeOpenResult() throws {
        var pair = StreamPair()
        _ = try pair.clientSends(.open(StreamPair.target, initialCredit: 500))
        _ = try pair.clientSends(Self.data(300))
        _ = try pair.clientSends(.fin)
        #expect(pair.client.phase == .opening(finSent: true, finReceived: false))
        #expect(try pair.deliverToServer() == .open(StreamPair.target))
        #expect(try pair.deliverToServer() == .deliver(ByteBuffer(repeating: 7, count: 300)))
        #expect(try pair.deliverToServer() == .remoteFinished)
        #expect(pair.server.phase == .opening(finSent: false, finReceived: true))
        #expect(try pair.serverSends(.openResult(.ok, text: nil)) == .sent)
        #expect(pair.server.phase == .halfClosedRemote)
        #expect(try pair.deliverToClient() == .opened)
        #expect(pair.client.phase == .halfClosedLocal)
    }

    @Test func serverMayNotSendDataBeforeOpenResult() {
        var pair = StreamPair()
        _ = try? pair.clientSends(.open(StreamPair.target, initialCredit: 500))
        _ = try? pair.deliverToServer()
        #expect(throws: StreamStateError.sendNotAllowed(.data, in: .opening(finSent: false, finReceived: false))) {
            try pair.server.send(Self.data(1))
        }
    }

    @Test func failedOpenResultFreesBothSidesAndLateClientMessagesAreIgnored() throws {
        var pair = StreamPair()
        _ = try pair.clientSends(.open(StreamPair.target, initialCredit: 500))
        _ = try pair.clientSends(Self.data(50))
        #expect(try pair.deliverToServer() == .open(StreamPair.target))
        #expect(try pair.serverSends(.openResult(.refused, text: "ECONNREFUSED")) == .released)
        #expect(pair.server.isFree)
        #expect(try pair.deliverToServer() == .ignored)  // DATA sent before the client learnt of the failure.
        #expect(try pair.deliverToClient() == .openFailed(.refused, text: "ECONNREFUSED"))
        #expect(pair.client.isFree)
    }

    @Test func serverResetFreesBothAtOnce() throws {
        var pair = StreamPair()
        try pair.open()
        _ = try pair.clientSends(Self.data(10))
        #expect(try pair.serverSends(.reset(.connectionReset, text: nil)) == .released)
        #expect(try pair.deliverToServer() == .ignored)
        #expect(try pair.deliverToClient() == .resetByPeer(.connectionReset, text: nil, mustAnswer: false))
        #expect(pair.client.isFree && pair.server.isFree)
    }

    @Test func clientResetWaitsForTheServersAnswer() throws {
        var pair = StreamPair()
        try pair.open()
        _ = try pair.serverSends(Self.data(10))
        #expect(try pair.clientSends(.reset(.cancelled, text: nil)) == .sent)
        #expect(pair.client.phase == .closed && !pair.client.isFree)
        #expect(try pair.deliverToClient() == .ignored)  // Data the server sent before it saw the RESET.
        #expect(try pair.deliverToServer() == .resetByPeer(.cancelled, text: nil, mustAnswer: true))
        #expect(pair.server.isFree)
        pair.toClient.append(.reset(.cancelled, text: nil))  // The answer; the stream is already free.
        #expect(try pair.deliverToClient() == .released)
        #expect(pair.client.isFree)
    }

    @Test func clientResetWhileOpeningIsAnsweredByAFailedOpenResultOrReset() throws {
        // The server's failed OPEN-RESULT crossed the client's RESET: that is the terminal, the RESET is ignored.
        var pair = StreamPair()
        _ = try pair.clientSends(.open(StreamPair.target, initialCredit: 500))
        _ = try pair.deliverToServer()
        _ = try pair.clientSends(.reset(.cancelled, text: nil))
        _ = try pair.serverSends(.openResult(.timeout, text: nil))
        #expect(try pair.deliverToServer() == .ignored)
        #expect(try pair.deliverToClient() == .released)
        #expect(pair.client.isFree && pair.server.isFree)
    }

    @Test func resetCrossingClosedIsHarmless() throws {
        var pair = StreamPair()
        try pair.open()
        _ = try pair.serverSends(.fin)
        _ = try pair.clientSends(.fin)
        #expect(try pair.deliverToServer() == .remoteFinishedMustSendClosed)
        #expect(try pair.serverSends(.closed) == .released)
        #expect(pair.server.isFree)
        #expect(try pair.deliverToClient() == .remoteFinished)
        #expect(try pair.deliverToClient() == .released)
        #expect(pair.client.isFree)
        #expect(throws: StreamStateError.sendNotAllowed(.reset, in: .idle)) {
            try pair.client.send(.reset(.cancelled, text: nil))
        }
    }

    @Test func staleWindowUpdateAfterClientFinIsIgnored() throws {
        var pair = StreamPair()
        try pair.open()
        _ = try pair.clientSends(Self.data(500))
        _ = try pair.clientSends(.fin)
        _ = try pair.deliverToServer()
        // The server's socket drained before the FIN arrived: it owes the client credit.
        let consumed = pair.server.consumed(500)
        let update = try #require(consumed)
        _ = try pair.serverSends(update)
        #expect(try pair.deliverToClient() == .ignored)
    }

    /// Reuse: a late message of an old connection can never be taken for the new one, whatever the interleaving.
    @Test func streamReuseNeverMixesConnections() throws {
        var pair = StreamPair()
        try pair.open()
        // Old connection: client data and FIN in flight, server finishes and resets while they travel.
        _ = try pair.clientSends(Self.data(100))
        _ = try pair.clientSends(.fin)
        _ = try pair.serverSends(Self.data(100))
        _ = try pair.serverSends(.reset(.idleTimeout, text: nil))
        #expect(pair.server.isFree)
        // The client reads what the server sent, up to the terminal, and frees.
        _ = try pair.deliverToClient()
        #expect(try pair.deliverToClient() == .resetByPeer(.idleTimeout, text: nil, mustAnswer: false))
        #expect(pair.client.isFree)
        // New connection on the same id while old client messages are still on their way.
        let newTarget = StreamTarget(host: .ip(SCTPIPAddress(v4: 198, 51, 100, 7)), port: 22)
        _ = try pair.clientSends(.open(newTarget, initialCredit: 500))
        // Old DATA and FIN arrive first (ordered stream) and find the stream idle: ignored, not taken for new.
        #expect(try pair.deliverToServer() == .ignored)
        #expect(try pair.deliverToServer() == .ignored)
        #expect(try pair.deliverToServer() == .open(newTarget))
        #expect(pair.server.receiveWindow.buffered == 0)
        #expect(pair.server.phase == .opening(finSent: false, finReceived: false))
    }

    @Test func openOnABusyStreamIsAnAssociationError() throws {
        var pair = StreamPair()
        try pair.open()
        #expect(throws: StreamStateError.openOnBusyStream) {
            try pair.server.receive(.open(StreamPair.target, initialCredit: 1))
        }
    }

    @Test func clientRefusesMessagesOnAFreeStream() {
        var client = StreamState(role: .client, receiveCredit: 0, initialSendCredit: 10)
        #expect(throws: StreamStateError.receiveNotAllowed(.data, in: .idle)) {
            try client.receive(Self.data(1))
        }
        #expect(throws: StreamStateError.receiveNotAllowed(.closed, in: .idle)) { try client.receive(.closed) }
    }

    @Test func messagesInTheWrongDirectionAreViolations() throws {
        var pair = StreamPair()
        try pair.open()
        #expect(throws: StreamStateError.receiveNotAllowed(.openResult, in: .open)) {
            try pair.server.receive(.openResult(.ok, text: nil))
        }
        #expect(throws: StreamStateError.receiveNotAllowed(.closed, in: .open)) { try pair.server.receive(.closed) }
        #expect(throws: StreamStateError.receiveNotAllowed(.open, in: .open)) {
            try pair.client.receive(.open(StreamPair.target, initialCredit: 1))
        }
        #expect(throws: StreamStateError.receiveNotAllowed(.closed, in: .open)) { try pair.client.receive(.closed) }
        #expect(throws: StreamStateError.sendNotAllowed(.closed, in: .open)) { try pair.client.send(.closed) }
        #expect(throws: StreamStateError.sendNotAllowed(.open, in: .open)) {
            try pair.server.send(.open(StreamPair.target, initialCredit: 1))
        }
        #expect(StreamStateError.receiveNotAllowed(.fin, in: .idle).resetReason == .protocolError)
    }

    @Test func finTwiceIsAViolation() throws {
        var pair = StreamPair()
        try pair.open()
        _ = try pair.clientSends(.fin)
        #expect(throws: StreamStateError.sendNotAllowed(.fin, in: .halfClosedLocal)) { try pair.client.send(.fin) }
        #expect(throws: StreamStateError.sendNotAllowed(.data, in: .halfClosedLocal)) {
            try pair.client.send(Self.data(1))
        }
        _ = try pair.deliverToServer()
        #expect(throws: StreamStateError.receiveNotAllowed(.fin, in: .halfClosedRemote)) {
            try pair.server.receive(.fin)
        }
        #expect(throws: StreamStateError.receiveNotAllowed(.data, in: .halfClosedRemote)) {
            try pair.server.receive(Self.data(1))
        }
    }

    // MARK: - Flow control

    @Test func dataBeyondCreditIsRefusedOnSendAndOnReceive() throws {
        var pair = StreamPair()
        try pair.open(credit: 100)
        #expect(pair.server.sendWindow.available == 100)
        #expect(pair.client.sendWindow.available == 1000)
        #expect(throws: StreamStateError.flowControl(.exceedsCredit(bytes: 101, available: 100))) {
            try pair.server.send(Self.data(101))
        }
        // A misbehaving server that ignores its credit is caught by the client.
        #expect(throws: StreamStateError.flowControl(.exceedsCredit(bytes: 101, available: 100))) {
            try pair.client.receive(Self.data(101))
        }
        #expect(StreamStateError.flowControl(.overflow(1)).resetReason == .flowControlError)
    }

    @Test func creditReturnsAsTheSocketDrainsAndStopsAfterFin() throws {
        var pair = StreamPair()
        try pair.open(credit: 400)
        _ = try pair.serverSends(Self.data(400))
        _ = try pair.deliverToClient()
        #expect(pair.server.sendWindow.available == 0)
        let early = pair.client.consumed(99)
        #expect(early == nil)  // Below a quarter of 400.
        let consumed = pair.client.consumed(1)
        let update = try #require(consumed)
        #expect(update == .windowUpdate(credit: 100))
        _ = try pair.clientSends(update)
        #expect(try pair.deliverToServer() == .credit(100))
        #expect(pair.server.sendWindow.available == 100)
        _ = try pair.serverSends(.fin)
        _ = try pair.deliverToClient()
        let late = pair.client.consumed(300)
        #expect(late == nil)  // The server will send nothing more.
    }

    @Test func dataLargerThanTheMessageLimitIsRefused() throws {
        var pair = StreamPair()
        try pair.open(credit: AggLimits.maxCredit)
        #expect(throws: StreamStateError.dataTooLarge(AggLimits.maxDataPayload + 1)) {
            try pair.server.send(Self.data(AggLimits.maxDataPayload + 1))
        }
    }

    @Test func windowUpdateOverflowIsAViolation() throws {
        var pair = StreamPair()
        try pair.open(credit: AggLimits.maxCredit)
        #expect(throws: StreamStateError.flowControl(.overflow(Int(AggLimits.maxCredit) + 1))) {
            try pair.server.receive(.windowUpdate(credit: 1))
        }
    }
}

@Suite struct FlowWindowTests {
    @Test func sendWindowConsumesAndGrants() throws {
        var window = FlowWindow(credit: 10)
        #expect(window.allows(10) && !window.allows(11))
        try window.consume(10)
        #expect(throws: FlowControlError.exceedsCredit(bytes: 1, available: 0)) { try window.consume(1) }
        try window.grant(5)
        #expect(window.available == 5)
        #expect(throws: FlowControlError.overflow(Int(AggLimits.maxCredit) + 5)) {
            try window.grant(AggLimits.maxCredit)
        }
        #expect(FlowWindow(credit: .max).available == Int(AggLimits.maxCredit))
    }

    /// Property: for any sequence of receives and drains, available + buffered + unannounced == capacity, and once
    /// everything drained the peer has credit again (no deadlock).
    @Test func receiveWindowKeepsItsInvariant() throws {
        var rng = SplitMix(seed: 7)
        for capacity in [1, 3, 100, 4096, 262_144] {
            var window = ReceiveWindow(capacity: UInt32(capacity))
            for _ in 0..<1000 {
                if rng.next() % 2 == 0, window.available > 0 {
                    try window.receive(Int(rng.next() % UInt64(window.available)) + 1)
                } else {
                    _ = window.consume(Int(rng.next() % UInt64(capacity + 1)))
                }
                #expect(window.available + window.buffered + window.unannounced == capacity)
            }
            _ = window.consume(window.buffered)
            #expect(window.unannounced < window.updateThreshold)
            #expect(window.available > 0)  // The peer can always send again once everything drained.
        }
    }
}

@Suite struct StreamTableTests {
    @Test func clientAllocatesTheLowestFreeIdFromOne() {
        var table = StreamTable.client(outboundStreams: 10, inboundStreams: 5, maxStreams: 1024)
        #expect(table.limit == 5)
        var first: [UInt16?] = []
        for _ in 0..<4 { first.append(table.allocate()?.rawValue) }
        #expect(first == [1, 2, 3, 4])
        let r1 = table.allocate()
        #expect(r1 == nil)
        let r2 = table.release(StreamID(2))
        #expect(r2)
        let r3 = table.release(StreamID(2))
        #expect(!r3)
        let r4 = table.allocate()
        #expect(r4 == StreamID(2))
        #expect(table.count == 4)
    }

    @Test func helloLimitCapsTheClient() {
        var table = StreamTable.client(outboundStreams: 65535, inboundStreams: 65535, maxStreams: 2)
        let r5 = table.allocate()
        #expect(r5 == StreamID(1))
        let r6 = table.allocate()
        #expect(r6 == StreamID(2))
        let r7 = table.allocate()
        #expect(r7 == nil)
    }

    @Test func theClientsOwnLimitCapsTooAndEveryIdButZeroIsUsable() {
        var own = StreamTable.client(outboundStreams: 65535, inboundStreams: 65535, maxStreams: 65534, ownLimit: 2)
        #expect(own.streamLimit == 2)
        #expect(own.allocate() == StreamID(1) && own.allocate() == StreamID(2))
        #expect(own.isFull && own.allocate() == nil)

        var all = StreamTable.client(outboundStreams: 65535, inboundStreams: 65535, maxStreams: 65534, ownLimit: 65534)
        #expect(all.streamLimit == 65534)
        var last: StreamID?
        for _ in 0..<65534 { last = all.allocate() }
        #expect(last == StreamID(65534))
        #expect(all.isFull && all.allocate() == nil)
        all.release(StreamID(40000))
        #expect(all.allocate() == StreamID(40000), "a freed id is found again after a full table")
    }

    @Test func allocationScalesAcrossWords() {
        var table = StreamTable(limit: 65536)
        for expected in 1...1000 {
            let id = table.allocate()
            #expect(id == StreamID(UInt16(expected)))
        }
        table.release(StreamID(700))
        table.release(StreamID(65))
        let r8 = table.allocate()
        #expect(r8 == StreamID(65))
        let r9 = table.allocate()
        #expect(r9 == StreamID(700))
        let r10 = table.allocate()
        #expect(r10 == StreamID(1001))
    }

    @Test func serverAdmitsUpToItsLimitAndNeverStreamZero() {
        var table = StreamTable(limit: 2)
        let r11 = table.admit(StreamID(0))
        #expect(!r11)
        let r12 = table.admit(StreamID(9))
        #expect(r12)
        let r13 = table.admit(StreamID(9))
        #expect(!r13)
        let r14 = table.admit(StreamID(3))
        #expect(r14)
        let tooMany = table.admit(StreamID(4))
        #expect(!tooMany)  // "too many streams"
        table.release(StreamID(9))
        let r15 = table.admit(StreamID(4))
        #expect(r15)
        #expect(table.isInUse(StreamID(4)) && !table.isInUse(StreamID(9)))
    }

    /// An idle association holds no bitmap: it grows to the word of the highest id used (issue 18's memory per idle
    /// association), and ids beyond it read as free.
    @Test func theBitmapGrowsWithTheHighestIdInUse() {
        var client = StreamTable.client(outboundStreams: 65535, inboundStreams: 65535, maxStreams: 65534)
        #expect(client.wordCount == 0)
        #expect(!client.isInUse(StreamID(1)) && !client.isInUse(StreamID(65535)))
        for _ in 0..<100 { _ = client.allocate() }
        #expect(client.wordCount == 2, "ids 1 ... 100 fit in two words")
        #expect(client.isInUse(StreamID(100)) && !client.isInUse(StreamID(101)) && !client.isInUse(StreamID(5000)))

        var server = StreamTable(limit: 16)
        #expect(server.wordCount == 0)
        let admittedLow = server.admit(StreamID(3))
        #expect(admittedLow && server.wordCount == 1)
        let admittedHigh = server.admit(StreamID(65535))
        #expect(admittedHigh, "a client may choose any id")
        #expect(server.wordCount == 1024)
        #expect(server.isInUse(StreamID(65535)) && !server.isInUse(StreamID(65534)))
        let released = server.release(StreamID(65535))
        #expect(released && !server.isInUse(StreamID(65535)))
    }
}
