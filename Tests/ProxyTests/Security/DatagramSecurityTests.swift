import Crypto
import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

@Suite struct DatagramSecurityTests {
    typealias Pair = SecurityPair

    // MARK: - Round trip and keys

    @Test func firstPacketWaitsForTheHandshakeThenBothDirectionsRoundTrip() throws {
        let pair = Pair()
        let released = pair.handshake(first: Pair.packet(1))
        #expect(released.count == 1)
        let first = try #require(pair.serverOpen(released[0], clock: pair.clock))
        #expect(first.payload == Pair.packet(1))
        #expect(first.source == Pair.clientPath1)

        let up = try #require(pair.clientSeal(Pair.packet(2)))
        #expect(up.payload != Pair.packet(2))
        #expect(up.payload.readableBytes == 100 + DataLayout.packed.overhead)
        #expect(up.payload.getInteger(at: up.payload.readerIndex, as: UInt8.self) == 0x65)
        let opened = try #require(pair.serverOpen(up, clock: pair.clock))
        #expect(opened.payload == Pair.packet(2))
        // The tag proved the packet: the engine need not check its CRC32c.
        #expect(opened.integrityVerified && first.integrityVerified)

        let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(3))))
        let openedDown = try #require(pair.clientOpen(down, clock: pair.clock))
        #expect(openedDown.payload == Pair.packet(3))
        #expect(openedDown.integrityVerified)
        #expect(pair.server.sessions.count == 1)
        #expect(pair.server.statistics.dropped == 0 && pair.client.statistics.dropped == 0)
    }

    @Test func eachDirectionHasItsOwnKey() throws {
        let key = SymmetricKey(data: Pair.key.key)
        let keys = SecureDatagram.sessionKeys(
            key: key, sharedSecret: Array(repeating: 9, count: 32), clientRandom: Array(repeating: 1, count: 32),
            serverRandom: Array(repeating: 2, count: 32), sessionID: 7)
        let up = keys.clientToServer.withUnsafeBytes { Array($0) }
        let down = keys.serverToClient.withUnsafeBytes { Array($0) }
        #expect(up != down)
        #expect(up != Pair.key.key && down != Pair.key.key)

        // A datagram the client sealed, reflected back at the client under its own session id, does not open.
        let pair = Pair()
        pair.handshake()
        let up1 = try #require(pair.clientSeal(Pair.packet(4)))
        #expect(pair.clientOpen(Pair.downward(up1.payload), clock: pair.clock) == nil)
        #expect(pair.client.statistics.droppedBadTag == 1)
    }

    @Test func keyIDIsTruncatedHMACOfTheKey() {
        let code = HMAC<SHA256>.authenticationCode(
            for: Array("agg key id".utf8), using: SymmetricKey(data: Pair.key.key))
        let expected = Array(code).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        #expect(SecureDatagram.keyID(for: Pair.key.key) == expected)
        #expect(SecureDatagram.keyID(for: Pair.otherKey.key) != expected)
    }

    // MARK: - Tampering and replay

    @Test func aTamperedByteAnywhereIsDroppedAndCounted() throws {
        let pair = Pair()
        pair.handshake()
        let sealed = try #require(pair.clientSeal(Pair.packet(5)))
        let length = sealed.payload.readableBytes
        for index in 0..<length {
            let forged = Pair.upward(sealed.payload.flipping(index))
            #expect(pair.serverOpen(forged, clock: pair.clock) == nil, "byte \(index)")
            #expect(pair.serverPoll() == nil)
        }
        #expect(pair.server.statistics.dropped == length)
        #expect(pair.server.statistics.opened == 0)
        // Forgeries moved nothing: the genuine datagram still opens, once.
        #expect(pair.serverOpen(sealed, clock: pair.clock)?.payload == Pair.packet(5))
        #expect(pair.serverOpen(sealed, clock: pair.clock) == nil)
        #expect(pair.server.statistics.droppedReplay == 1)
    }

    @Test func truncatedDatagramsAreDropped() throws {
        let pair = Pair()
        pair.handshake()
        let sealed = try #require(pair.clientSeal(Pair.packet(6)))
        for length in [0, 1, 9, 17, SecureDatagram.overhead, sealed.payload.readableBytes - 1] {
            let short = sealed.payload.getSlice(at: sealed.payload.readerIndex, length: length)!
            #expect(pair.serverOpen(Pair.upward(short), clock: pair.clock) == nil)
        }
        #expect(pair.server.statistics.dropped == 6)
        #expect(pair.serverPoll() == nil)
    }

    /// Compact datagrams cut short, garbage of the compact type (with an unknown id, and with the session's own
    /// id), and a full-layout datagram naming the compact session's id are dropped and counted on both sides; the
    /// genuine datagram still opens afterwards.
    @Test func truncatedOrGarbageCompactDatagramsAreDroppedAndCounted() throws {
        let pair = Pair()
        for released in pair.handshake() { #expect(pair.serverOpen(released, clock: pair.clock) != nil) }
        let up = try #require(pair.clientSeal(Pair.packet(6)))
        let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(7))))
        let id = try #require(pair.client.current?.cipher.sessionID)
        #expect(id <= UInt32.max)
        let idBytes = Array(up.payload.readableBytesView[(up.payload.readerIndex + 1)...].prefix(4))
        func forgeries(of sealed: SCTPDatagram) -> [ByteBuffer] {
            // Copies: opening writes over what it opens (or zeros it), and the genuine datagram opens last.
            var list = [0, 1, 5, 9, 25, sealed.payload.readableBytes - 1].map {
                ByteBuffer(bytes: sealed.payload.readableBytesView.prefix($0))
            }
            list.append(ByteBuffer(bytes: [0x64, 0xEE, 0xEE, 0xEE, 0xEE] + (0..<60).map { UInt8($0) }))
            list.append(ByteBuffer(bytes: [0x64] + idBytes + (0..<60).map { UInt8($0 &* 3) }))
            list.append(ByteBuffer(bytes: [0x44, 0, 0, 0, 0] + idBytes + (0..<60).map { UInt8($0) }))
            return list
        }
        for forged in forgeries(of: up) { #expect(pair.serverOpen(Pair.upward(forged), clock: pair.clock) == nil) }
        for forged in forgeries(of: down) {
            #expect(pair.clientOpen(Pair.downward(forged), clock: pair.clock) == nil)
        }
        for statistics in [pair.server.statistics, pair.client.statistics] {
            #expect(statistics.dropped == 9)
            #expect(statistics.droppedUnknownSession == 2)
            #expect(statistics.droppedBadTag == 2)
        }
        // The empty datagram has no type: the server counts it as refused plaintext.
        #expect(pair.server.statistics.droppedMalformed == 4 && pair.server.statistics.droppedPlaintext == 1)
        #expect(pair.client.statistics.droppedMalformed == 5)
        #expect(pair.serverPoll() == nil && pair.clientPoll() == nil)
        #expect(pair.serverOpen(up, clock: pair.clock)?.payload == Pair.packet(6))
        #expect(pair.clientOpen(down, clock: pair.clock)?.payload == Pair.packet(7))
    }

    @Test func replayedDataIsDroppedOnBothSides() throws {
        let pair = Pair()
        pair.handshake()
        let up = try #require(pair.clientSeal(Pair.packet(7)))
        #expect(pair.serverOpen(up, clock: pair.clock) != nil)
        #expect(pair.serverOpen(up, clock: pair.clock) == nil)
        // Replayed from another address too: the window is per session, not per path.
        #expect(pair.serverOpen(Pair.upward(up.payload, from: Pair.clientPath2), clock: pair.clock) == nil)
        #expect(pair.server.statistics.droppedReplay == 2)

        let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(8))))
        #expect(pair.clientOpen(down, clock: pair.clock) != nil)
        #expect(pair.clientOpen(down, clock: pair.clock) == nil)
        #expect(pair.client.statistics.droppedReplay == 1)
    }

    @Test func reorderingWithinTheWindowIsAccepted() throws {
        let pair = Pair()
        pair.handshake()
        var sealed: [SCTPDatagram] = []
        for index in 0..<300 { sealed.append(try #require(pair.clientSeal(Pair.packet(UInt8(index % 256))))) }
        for datagram in sealed.reversed() { #expect(pair.serverOpen(datagram, clock: pair.clock) != nil) }
        #expect(pair.server.statistics.opened == 300)
        #expect(pair.server.statistics.dropped == 0)
    }

    @Test func countersOlderThanTheWindowAreDropped() throws {
        let size = Int(ReplayWindow.size)
        let pair = Pair()
        let released = pair.handshake()  // Counter 0, held back.
        var sealed: [SCTPDatagram] = released
        for _ in 1..<(size + 52) { sealed.append(try #require(pair.clientSeal(Pair.packet(9)))) }
        #expect(pair.serverOpen(sealed[size + 51], clock: pair.clock) != nil)
        #expect(pair.serverOpen(sealed[0], clock: pair.clock) == nil)  // size + 51 behind: outside.
        #expect(pair.serverOpen(sealed[51], clock: pair.clock) == nil)  // size behind.
        #expect(pair.serverOpen(sealed[52], clock: pair.clock) != nil)  // size - 1 behind.
        #expect(pair.server.statistics.droppedReplay == 2)
    }

    @Test func replayWindowSlidesAndForgetsOldBits() {
        let size = ReplayWindow.size
        var window = ReplayWindow()
        window.accept(5)
        #expect(!window.mayAccept(5))
        #expect(window.mayAccept(4))
        window.accept(5 + 2 * size)  // A jump past the whole window clears it.
        #expect(!window.mayAccept(5))
        #expect(window.mayAccept(5 + 2 * size - (size - 1)))
        window.accept(5 + 2 * size - (size - 1))
        #expect(!window.mayAccept(5 + 2 * size - (size - 1)))
        window.accept(5 + 2 * size + 10)  // The bits on the way were cleared.
        #expect(window.mayAccept(5 + 2 * size + 5))
        #expect(!window.mayAccept(5 + 2 * size))
    }

    /// The window against a plain set of every counter seen, over random arrival orders with jumps of every size
    /// (the advance clears a word at a time; a bit left set would drop a valid packet, a bit cleared too many
    /// would accept a replay).
    @Test func replayWindowAgreesWithAReferenceModel() {
        var random = SCTPRandom(seed: 5)
        for _ in 0..<20 {
            var window = ReplayWindow()
            var seen = Set<UInt64>()
            var highest: UInt64 = 0
            for _ in 0..<20_000 {
                let jump = [1, 3, 63, 64, 65, 200, 1000, Int(ReplayWindow.size) - 1, Int(ReplayWindow.size) + 7]
                    .randomElement(using: &random)!
                let counter: UInt64
                if random.next() % 3 == 0 {
                    counter = highest + UInt64(jump)
                } else {
                    counter = highest >= UInt64(jump) ? highest - UInt64(jump) : 0
                }
                let expected =
                    counter > highest || highest - counter < ReplayWindow.size ? !seen.contains(counter) : false
                let modelAccepts = seen.isEmpty || expected
                #expect(window.mayAccept(counter) == modelAccepts, "counter \(counter), highest \(highest)")
                if modelAccepts {
                    window.accept(counter)
                    seen.insert(counter)
                    highest = max(highest, counter)
                }
            }
        }
    }

    /// Two paths at full rate, one 10 ms and the other 300 ms away, datagrams sent alternately on the two: each
    /// path delivers in order, the slow one 290 ms behind. At 1 Gbit/s of 1,472-byte datagrams (85,000 a second)
    /// the slow path's datagrams arrive about 25,000 counters behind; none may be taken for a replay.
    @Test func twoPathsTenAndThreeHundredMillisecondsApartAtFullRateLoseNothingToTheReplayWindow() throws {
        let pair = Pair()
        pair.handshake()
        let rate = 85_000  // datagrams a second
        let count = 60_000
        var arrivals: [(time: Int, datagram: SCTPDatagram)] = []
        for index in 0..<count {
            let sent = index * 1_000_000 / rate  // microseconds
            let delay = index % 2 == 0 ? 10_000 : 300_000
            arrivals.append((sent + delay, try #require(pair.clientSeal(Pair.packet(1, size: 40)))))
        }
        arrivals.sort { $0.time < $1.time }
        var opened = 0
        for arrival in arrivals where pair.serverOpen(arrival.datagram, clock: pair.clock) != nil { opened += 1 }
        #expect(pair.server.statistics.droppedReplay == 0)
        #expect(opened == count)
    }

    // MARK: - Keys are kept apart

    @Test func anOpenedDatagramCarriesItsKeysOwnerIntoTheEngine() throws {
        let pair = Pair(serverKeys: [Pair.otherKey, Pair.key])
        let released = pair.handshake()
        let opened = try #require(pair.serverOpen(released[0], clock: pair.clock))
        #expect(opened.owner == pair.server.owner(ofKeyNamed: Pair.key.name))
        #expect(opened.owner != .unauthenticated)
        #expect(opened.owner != pair.server.owner(ofKeyNamed: Pair.otherKey.name))
    }

    @Test func anotherKeyAuthenticatingFromAClientsAddressDoesNotTakeItsDownstream() throws {
        // The victim's key and the intruder's key on one server; both clients run their handshake.
        let victim = Pair(serverKeys: [Pair.key, Pair.otherKey])
        for released in victim.handshake() { _ = try #require(victim.serverOpen(released, clock: victim.clock)) }
        var intruder = ClientDatagramSecurity(key: Pair.otherKey, random: SCTPRandom(seed: 77))
        let queued = intruder.seal(Pair.upward(Pair.packet(9), from: Pair.clientPath2), clock: victim.clock)
        #expect(queued == nil)
        #expect(victim.serverOpen(intruder.pollTransmit()!, clock: victim.clock) == nil)
        let handshake = intruder.open(victim.serverPoll()!, clock: victim.clock)
        #expect(handshake == nil)
        // The intruder's datagrams now claim the victim's address (a spoofed source, or a NAT mapping reused).
        for _ in 0..<3 {
            let sealed = intruder.seal(Pair.upward(Pair.packet(10)), clock: victim.clock)
            let spoofed = try #require(sealed)
            let opened = try #require(victim.serverOpen(Pair.upward(spoofed.payload), clock: victim.clock))
            #expect(opened.owner == victim.server.owner(ofKeyNamed: Pair.otherKey.name))
        }
        #expect(victim.server.statistics.addressClashes == 1)
        // The victim's association still seals toward that address with the victim's session: the victim opens it,
        // the intruder cannot.
        let down = try #require(victim.serverSeal(Pair.downward(Pair.packet(11))))
        #expect(victim.clientOpen(down, clock: victim.clock)?.payload == Pair.packet(11))
        let intruderOpensVictims = intruder.open(down, clock: victim.clock)
        #expect(intruderOpensVictims == nil)
        // The intruder's own association seals toward it with the intruder's session.
        let intruderDown = try #require(victim.serverSeal(Pair.downward(Pair.packet(12)), key: Pair.otherKey))
        let intruderOpens = intruder.open(intruderDown, clock: victim.clock)
        #expect(intruderOpens?.payload == Pair.packet(12))
        #expect(victim.clientOpen(intruderDown, clock: victim.clock) == nil)
    }

    @Test func anAuthenticatedOwnerNeverFallsBackToPlaintext() throws {
        var configuration = ServerDatagramSecurity.Configuration()
        configuration.allowPlaintext = true
        let pair = Pair(server: configuration)
        pair.handshake()
        // An encrypted association's packet toward an address no session of its key has authenticated from.
        let stray = Pair.downward(Pair.packet(1), to: Pair.clientPath2)
        #expect(pair.serverSeal(stray) == nil)
        #expect(pair.server.statistics.sealFailures == 1)
    }

    @Test func revokingAKeyNamesItsOwnerAndEndsItsSessions() throws {
        let pair = Pair(serverKeys: [Pair.key, Pair.otherKey])
        pair.handshake()
        let owner = try #require(pair.server.owner(ofKeyNamed: Pair.key.name))
        let kept = try #require(pair.server.owner(ofKeyNamed: Pair.otherKey.name))
        #expect(pair.server.revokedOwners(by: [Pair.key, Pair.otherKey]).isEmpty)
        // New material under the same name is a new key: the old owner is revoked.
        let rekeyed = PreSharedKey(name: Pair.key.name, key: (0..<32).map { UInt8($0) })
        #expect(pair.server.revokedOwners(by: [rekeyed, Pair.otherKey]) == [owner])
        #expect(pair.server.revokedOwners(by: [Pair.otherKey]) == [owner])
        #expect(pair.server.replaceKeys([Pair.otherKey]) == [owner])
        #expect(pair.server.sessions.isEmpty && pair.server.routes.isEmpty)
        #expect(pair.server.owner(ofKeyNamed: Pair.otherKey.name) == kept)
    }

    // MARK: - The server is not a state-allocation target

    @Test func unknownKeyIDAllocatesNothingAndGetsNoReply() throws {
        let pair = Pair(clientKey: Pair.otherKey)
        #expect(pair.clientSeal(Pair.packet(1)) == nil)
        let hello = try #require(pair.clientPoll())
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        #expect(pair.serverPoll() == nil)
        #expect(pair.server.sessions.isEmpty && pair.server.routes.isEmpty)
        #expect(pair.server.statistics.droppedUnknownKey == 1)
    }

    @Test func forgedHelloWithAKnownKeyIDAllocatesNothing() throws {
        let pair = Pair()
        _ = pair.clientSeal(Pair.packet(1))
        let hello = try #require(pair.clientPoll())
        // Any byte after the key id changed (random, timestamp, previous session, tag): the tag fails.
        for index in 10..<SecureDatagram.helloLength {
            #expect(pair.serverOpen(Pair.upward(hello.payload.flipping(index)), clock: pair.clock) == nil)
        }
        #expect(pair.serverPoll() == nil)
        #expect(pair.server.sessions.isEmpty)
        #expect(pair.server.statistics.droppedBadTag == SecureDatagram.helloLength - 10)
    }

    @Test func dataForAnUnknownSessionIsDroppedWithoutReply() throws {
        let pair = Pair()
        pair.handshake()
        let sealed = try #require(pair.clientSeal(Pair.packet(1)))
        let other = Pair(seed: 99)
        other.handshake()
        // A datagram of another server's session, and random bytes shaped as data.
        #expect(other.serverOpen(sealed, clock: other.clock) == nil)
        var junk = ByteBuffer(bytes: [SecureDatagram.Kind.data.rawValue])
        junk.writeBytes((0..<80).map { UInt8($0) })
        #expect(pair.serverOpen(Pair.upward(junk), clock: pair.clock) == nil)
        #expect(other.serverPoll() == nil && pair.serverPoll() == nil)
        #expect(other.server.sessions.count == 1 && pair.server.sessions.count == 1)
        #expect(other.server.statistics.droppedUnknownSession == 1)
        #expect(pair.server.statistics.droppedUnknownSession == 1)
    }

    @Test func aRepeatedHelloGetsTheSameAnswerUntilConfirmedThenIsDropped() throws {
        let pair = Pair()
        _ = pair.clientSeal(Pair.packet(1))
        let hello = try #require(pair.clientPoll())
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        let ack = try #require(pair.serverPoll())
        #expect(ack.payload.readableBytes <= hello.payload.readableBytes)  // No amplification.
        // The HELLO-ACK was lost; the client (or an attacker replaying it) sends the HELLO again.
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        #expect(pair.serverPoll()?.payload == ack.payload)
        #expect(pair.server.sessions.count == 1)
        // Once the client has used the session, a replayed HELLO is dropped and allocates nothing.
        #expect(pair.clientOpen(ack, clock: pair.clock) == nil)
        for datagram in pair.drainClient() { #expect(pair.serverOpen(datagram, clock: pair.clock) != nil) }
        #expect(pair.serverOpen(hello, clock: pair.clock) == nil)
        #expect(pair.serverPoll() == nil)
        #expect(pair.server.sessions.count == 1)
        #expect(pair.server.statistics.droppedReplay == 1)
    }

    @Test func repeatedHelloAnswersAreCapped() throws {
        let pair = Pair()
        _ = pair.clientSeal(Pair.packet(1))
        let hello = try #require(pair.clientPoll())
        var answers = 0
        for _ in 0..<20 {
            _ = pair.serverOpen(hello, clock: pair.clock)
            if pair.serverPoll() != nil { answers += 1 }
        }
        #expect(answers == 1 + ServerDatagramSecurity.Configuration().helloAckRepeats)
        #expect(pair.server.sessions.count == 1)
    }

    @Test func helloOutsideTheTimestampWindowIsDropped() throws {
        for skew: Int64 in [-61, 61, -3600] {
            let pair = Pair()
            _ = pair.clientSeal(Pair.packet(1))
            let hello = try #require(pair.clientPoll())
            var late = pair.clock
            late.unixSeconds -= skew
            #expect(pair.serverOpen(hello, clock: late) == nil)
            #expect(pair.serverPoll() == nil)
            #expect(pair.server.sessions.isEmpty)
            #expect(pair.server.statistics.droppedStaleHello == 1)
        }
        let pair = Pair()
        _ = pair.clientSeal(Pair.packet(1))
        let hello = try #require(pair.clientPoll())
        var skewed = pair.clock
        skewed.unixSeconds += 60
        #expect(pair.serverOpen(hello, clock: skewed) == nil)
        #expect(pair.serverPoll() != nil)
    }

    @Test func sessionsPerKeyAndInAllAreCapped() throws {
        var configuration = ServerDatagramSecurity.Configuration()
        configuration.sessionsPerKey = 3
        configuration.maxSessions = 4
        var server = ServerDatagramSecurity(
            keys: [Pair.key, Pair.otherKey], configuration: configuration, random: SCTPRandom(seed: 5))
        let clock = SecurityClock(monotonic: SCTPTime(nanoseconds: 1), unixSeconds: 1_800_000_000)
        func hello(_ key: PreSharedKey, seed: UInt64) -> SCTPDatagram {
            var client = ClientDatagramSecurity(key: key, random: SCTPRandom(seed: seed))
            _ = client.seal(Pair.upward(Pair.packet(1)), clock: clock)
            return client.pollTransmit()!
        }
        for seed in 1...5 { _ = server.open(hello(Pair.key, seed: UInt64(seed)), clock: clock) }
        #expect(server.sessions.count == 3)  // The oldest of the key's sessions made room.
        _ = server.open(hello(Pair.otherKey, seed: 10), clock: clock)
        _ = server.open(hello(Pair.otherKey, seed: 11), clock: clock)
        #expect(server.sessions.count == 4)
        #expect(server.statistics.droppedTableFull == 1)
    }

    // MARK: - Paths and addresses

    @Test func oneSessionServesEveryPathAndNATRebinding() throws {
        let pair = Pair()
        pair.handshake()
        let viaPath2 = try #require(pair.clientSeal(Pair.packet(1), from: Pair.clientPath2))
        let opened = try #require(pair.serverOpen(viaPath2, clock: pair.clock))
        #expect(opened.source == Pair.clientPath2)
        let rebound = SCTPSocketAddress(ip: Pair.clientPath1.ip, port: 40999)
        let afterRebinding = try #require(pair.clientSeal(Pair.packet(2), from: rebound))
        #expect(pair.serverOpen(afterRebinding, clock: pair.clock)?.source == rebound)
        for destination in [Pair.clientPath2, rebound] {
            let down = try #require(pair.serverSeal(Pair.downward(Pair.packet(3), to: destination)))
            #expect(pair.clientOpen(down, clock: pair.clock)?.payload == Pair.packet(3))
        }
        #expect(pair.server.sessions.count == 1)
        // A destination no authenticated datagram came from gets nothing.
        let stranger = SCTPSocketAddress(ip: SCTPIPAddress(v4: 10, 9, 8, 7), port: 1)
        #expect(pair.serverSeal(Pair.downward(Pair.packet(4), to: stranger)) == nil)
        #expect(pair.server.statistics.sealFailures == 1)
    }

    // MARK: - Handshake retransmission and the queue

    @Test func helloIsRetransmittedWithBackoffAndTheQueueIsBounded() throws {
        var configuration = ClientDatagramSecurity.Configuration()
        configuration.queueLimit = 3
        let pair = Pair(client: configuration)
        for index in 0..<5 { #expect(pair.clientSeal(Pair.packet(UInt8(index))) == nil) }
        #expect(pair.drainClient().count == 1)  // One HELLO however many packets wait.
        #expect(pair.client.queuedCount == 3)
        #expect(pair.client.statistics.sealFailures == 2)
        var gaps: [Int64] = []
        var last = pair.clock.monotonic
        var retransmitted: [SCTPDatagram] = []
        for _ in 0..<6 {
            let deadline = try #require(pair.client.nextDeadline())
            gaps.append((deadline - last).milliseconds)
            last = deadline
            pair.clock.monotonic = deadline
            pair.clientTimeout(clock: pair.clock)
            retransmitted += pair.drainClient()
        }
        #expect(gaps == [250, 500, 1000, 1000, 1000, 1000])
        #expect(retransmitted.count == 6)
        // The server answers a retransmission; the queue drains in order.
        _ = pair.serverOpen(try #require(retransmitted.last), clock: pair.clock)
        _ = pair.clientOpen(try #require(pair.serverPoll()), clock: pair.clock)
        let released = pair.drainClient()
        #expect(
            try released.map { try #require(pair.serverOpen($0, clock: pair.clock)).payload }
                == (0..<3).map { Pair.packet(UInt8($0)) })
    }

    // MARK: - Rekeying

    @Test func rekeyKeepsOldKeyPacketsInFlightDuringTheGracePeriod() throws {
        var configuration = ClientDatagramSecurity.Configuration()
        configuration.rekeyAfterPackets = 10
        let pair = Pair(client: configuration)
        for datagram in pair.handshake() { _ = pair.serverOpen(datagram, clock: pair.clock) }
        let oldID = try #require(pair.client.current?.cipher.sessionID)
        var inFlight: [SCTPDatagram] = []
        for _ in 1..<12 { inFlight.append(try #require(pair.clientSeal(Pair.packet(1)))) }
        let outbox = pair.drainClient()
        #expect(outbox.count == 1)  // The 10th datagram started a HELLO; sealing went on with the old key.
        let downOld = try #require(pair.serverSeal(Pair.downward(Pair.packet(2))))
        #expect(pair.serverOpen(outbox[0], clock: pair.clock) == nil)
        #expect(pair.clientOpen(try #require(pair.serverPoll()), clock: pair.clock) == nil)
        let newID = try #require(pair.client.current?.cipher.sessionID)
        #expect(newID != oldID)
        // Until the client uses the new session, the server still seals with the old one.
        let stillOld = try #require(pair.serverSeal(Pair.downward(Pair.packet(3))))
        #expect(SessionCipher.sessionID(of: stillOld.payload) == oldID)
        let fresh = try #require(pair.clientSeal(Pair.packet(4)))
        #expect(SessionCipher.sessionID(of: fresh.payload) == newID)
        #expect(pair.serverOpen(fresh, clock: pair.clock)?.payload == Pair.packet(4))
        let downNew = try #require(pair.serverSeal(Pair.downward(Pair.packet(5))))
        #expect(SessionCipher.sessionID(of: downNew.payload) == newID)
        // Old-key datagrams still in flight both ways are accepted during the grace period.
        for datagram in inFlight.dropLast() { #expect(pair.serverOpen(datagram, clock: pair.clock) != nil) }
        #expect(pair.clientOpen(downOld, clock: pair.clock)?.payload == Pair.packet(2))
        #expect(pair.clientOpen(stillOld, clock: pair.clock)?.payload == Pair.packet(3))
        #expect(pair.clientOpen(downNew, clock: pair.clock)?.payload == Pair.packet(5))
        // After it, the old session is gone on both sides.
        let late = try #require(pair.serverSeal(Pair.downward(Pair.packet(6))))
        let lateUp = try #require(inFlight.last)
        pair.advance(.seconds(61))
        pair.clientTimeout(clock: pair.clock)
        pair.serverTimeout(clock: pair.clock)
        #expect(pair.server.sessions.count == 1)
        #expect(pair.serverOpen(lateUp, clock: pair.clock) == nil)
        #expect(pair.server.statistics.droppedUnknownSession == 1)
        #expect(pair.client.previous == nil)
        #expect(pair.clientOpen(late, clock: pair.clock) != nil)  // Sealed with the new session.
    }

    @Test func noNonceRepeatsAcrossRekeys() throws {
        var configuration = ClientDatagramSecurity.Configuration()
        configuration.rekeyAfterPackets = 60
        let pair = Pair(client: configuration)
        var seen = Set<[UInt64]>()
        var sessions = Set<UInt64>()
        var sealed = pair.handshake()
        for round in 0..<400 {
            if let datagram = pair.clientSeal(Pair.packet(UInt8(round % 256))) { sealed.append(datagram) }
            for message in pair.drainClient() {
                if SecureDatagram.Kind(rawValue: message.payload.getInteger(at: 0)!) == .hello {
                    _ = pair.serverOpen(message, clock: pair.clock)
                    _ = pair.clientOpen(pair.serverPoll()!, clock: pair.clock)
                } else {
                    sealed.append(message)
                }
            }
        }
        for datagram in sealed {
            let id = try #require(SessionCipher.sessionID(of: datagram.payload))
            let counter = try #require(SessionCipher.counter(of: datagram.payload))
            #expect(seen.insert([id, counter]).inserted)
            sessions.insert(id)
            #expect(pair.serverOpen(datagram, clock: pair.clock) != nil)
        }
        #expect(sealed.count == 401)
        #expect(sessions.count >= 6)
    }

    @Test func timeTriggersARekey() throws {
        let pair = Pair()
        pair.handshake()
        let first = try #require(pair.client.current?.cipher.sessionID)
        #expect(pair.client.nextDeadline() == pair.clock.monotonic + .seconds(7200))
        pair.advance(.seconds(7200))
        pair.clientTimeout(clock: pair.clock)
        let hello = try #require(pair.drainClient().first)
        _ = pair.serverOpen(hello, clock: pair.clock)
        _ = pair.clientOpen(try #require(pair.serverPoll()), clock: pair.clock)
        #expect(pair.client.current?.cipher.sessionID != first)
        #expect(pair.client.previous?.session.cipher.sessionID == first)
    }

    @Test func aNewAssociationStartsAFreshHandshake() throws {
        let pair = Pair()
        pair.handshake()
        let first = try #require(pair.client.current?.cipher.sessionID)
        pair.clientRestart(now: pair.clock.monotonic)
        #expect(pair.clientSeal(Pair.packet(1)) == nil)
        #expect(pair.client.isHandshaking)
        let hello = try #require(pair.drainClient().first)
        _ = pair.serverOpen(hello, clock: pair.clock)
        _ = pair.clientOpen(try #require(pair.serverPoll()), clock: pair.clock)
        #expect(pair.client.current?.cipher.sessionID != first)
        #expect(pair.drainClient().count == 1)
    }

    /// The server remembers the route it sealed by last; a new session taking that route over (the client's new
    /// association, from the same address) must seal the very next datagram, not the old session.
    @Test func aRouteTakenOverByANewSessionSealsWithTheNewSessionAtOnce() throws {
        let pair = Pair()
        for released in pair.handshake() { _ = try #require(pair.serverOpen(released, clock: pair.clock)) }
        let old = try #require(pair.client.current?.cipher.sessionID)
        let before = try #require(pair.serverSeal(Pair.downward(Pair.packet(1))))
        #expect(SessionCipher.sessionID(of: before.payload) == old)
        pair.clientRestart(now: pair.clock.monotonic)
        for released in pair.handshake(first: Pair.packet(2)) {
            _ = try #require(pair.serverOpen(released, clock: pair.clock))
        }
        let new = try #require(pair.client.current?.cipher.sessionID)
        #expect(new != old)
        let after = try #require(pair.serverSeal(Pair.downward(Pair.packet(3))))
        #expect(SessionCipher.sessionID(of: after.payload) == new)
        #expect(pair.clientOpen(after, clock: pair.clock)?.payload == Pair.packet(3))
    }

    // MARK: - Keys and plaintext

    @Test func removingAKeyEndsItsSessions() throws {
        let pair = Pair(serverKeys: [Pair.key, Pair.otherKey])
        pair.handshake()
        let before = try #require(pair.clientSeal(Pair.packet(1)))
        pair.serverReplaceKeys([Pair.key, Pair.otherKey])  // Unchanged keys keep their sessions.
        #expect(pair.serverOpen(before, clock: pair.clock) != nil)
        pair.serverReplaceKeys([Pair.otherKey])
        #expect(pair.server.sessions.isEmpty && pair.server.routes.isEmpty)
        let after = try #require(pair.clientSeal(Pair.packet(2)))
        #expect(pair.serverOpen(after, clock: pair.clock) == nil)
        #expect(pair.server.statistics.droppedUnknownSession == 1)
        pair.clientRestart(now: pair.clock.monotonic)
        _ = pair.clientSeal(Pair.packet(3))
        _ = pair.serverOpen(try #require(pair.drainClient().first), clock: pair.clock)
        #expect(pair.serverPoll() == nil)
        #expect(pair.server.statistics.droppedUnknownKey == 1)
    }

    @Test func plaintextIsRefusedUnlessAllowed() throws {
        // A plaintext SCTP packet: common header (ports 5000 -> 9899) and a CRC32c.
        var sctp = ByteBuffer()
        sctp.writeInteger(UInt16(5000))
        sctp.writeInteger(UInt16(9899))
        sctp.writeInteger(UInt32(0))
        sctp.writeInteger(UInt32(0))
        sctp.writeBytes([1, 0, 0, 4])
        sctp.setInteger(CRC32c.packetChecksum(sctp).byteSwapped, at: 8)
        let datagram = Pair.upward(sctp)

        let strict = Pair()
        #expect(strict.serverOpen(datagram, clock: strict.clock) == nil)
        #expect(strict.server.statistics.droppedPlaintext == 1)
        #expect(strict.serverSeal(Pair.downward(sctp, owner: .unauthenticated)) == nil)
        #expect(strict.serverPoll() == nil)

        var configuration = ServerDatagramSecurity.Configuration()
        configuration.allowPlaintext = true
        let lenient = Pair(server: configuration)
        #expect(lenient.serverOpen(datagram, clock: lenient.clock)?.payload == sctp)
        #expect(lenient.serverSeal(Pair.downward(sctp, owner: .unauthenticated))?.payload == sctp)
        #expect(lenient.server.statistics.plaintextAccepted == 1)
        // Encrypted clients still work on a server that allows plaintext.
        for released in lenient.handshake() {
            #expect(lenient.serverOpen(released, clock: lenient.clock)?.payload == Pair.packet(0))
        }
        let down = try #require(lenient.serverSeal(Pair.downward(Pair.packet(1))))
        #expect(down.payload != Pair.packet(1))
        #expect(lenient.clientOpen(down, clock: lenient.clock)?.payload == Pair.packet(1))
        // A session's datagram whose tag fails is dropped, not tried as plaintext: it was opened in place, and
        // what the engine would get is zeros.
        var forged = try #require(lenient.clientSeal(Pair.packet(2)))
        let last = forged.payload.writerIndex - 1
        forged.payload.setInteger(forged.payload.getInteger(at: last, as: UInt8.self)! ^ 1, at: last)
        #expect(lenient.serverOpen(forged, clock: lenient.clock) == nil)
        #expect(lenient.server.statistics.droppedBadTag == 1)
        #expect(lenient.server.statistics.plaintextAccepted == 1)
    }

    // MARK: - Size

    /// The engines' packet size leaves room for version 3's 33 bytes whichever version the peer speaks (it is set
    /// before the handshake): a version-3 session's largest datagram is exactly the old size, a version-4
    /// session's 8 bytes under it, a version-5 one's 16.
    @Test(arguments: [(UInt8(3), 0), (4, 8), (5, 16)])
    func overheadKeepsSealedDatagramsWithinTheOldSize(version: UInt8, spare: Int) throws {
        #expect(SecureDatagram.overhead == 33)
        #expect(SecureDatagram.helloAckLength < SecureDatagram.helloLength)
        #expect(DatagramProtection.client(key: Pair.key).overhead == SecureDatagram.overhead)
        #expect(DatagramProtection.plaintext.overhead == 0)
        let largest = SCTPConfiguration().maxPacketSize - SecureDatagram.overhead
        let pair = Pair()
        pair.client.helloVersion = version
        pair.handshake()
        let sealed = try #require(pair.clientSeal(Pair.packet(1, size: largest)))
        #expect(sealed.payload.readableBytes == SCTPConfiguration().maxPacketSize - spare)
        #expect(pair.client.statistics.largestSealed == SCTPConfiguration().maxPacketSize - spare)
    }
}
