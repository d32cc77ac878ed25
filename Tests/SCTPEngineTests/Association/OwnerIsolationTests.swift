import NIOCore
import Testing

@testable import SCTPEngine

/// `SCTPOwner`: a server endpoint shared by several authenticated owners (client keys) behaves, toward each owner,
/// as if that owner had the endpoint to itself. Two clients, `victim` and `intruder`, reach one server; the test
/// stamps each client's datagrams with its owner, as aggserver's datagram layer does, and hands the intruder the
/// victim's real tags.
@Suite struct OwnerIsolationTests {
    static let victimOwner = SCTPOwner(rawValue: 1)
    static let intruderOwner = SCTPOwner(rawValue: 2)
    static let victimAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40000)
    /// The intruder sits behind the victim's carrier-grade NAT: same public IP, another port.
    static let intruderAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40001)
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)

    /// The server and two clients, each client's datagrams delivered with its owner.
    final class Setup {
        var now = SCTPTime.zero
        let server: SCTPEndpoint
        let victim: SCTPEndpoint
        let intruder: SCTPEndpoint
        var serverEvents: [SCTPEvent] = []

        init(configure: (inout SCTPConfiguration) -> Void = { _ in }) {
            var configuration = SCTPConfiguration()
            configure(&configuration)
            server = SCTPEndpoint(configuration: configuration, seed: 11)
            victim = SCTPEndpoint(configuration: configuration, seed: 12)
            intruder = SCTPEndpoint(configuration: configuration, seed: 13)
        }

        /// Delivers what `client` sent, stamped with `owner`, and what the server answered that owner.
        func exchange(_ client: SCTPEndpoint, as owner: SCTPOwner, rounds: Int = 20) {
            for _ in 0..<rounds {
                var moved = false
                while var datagram = client.pollTransmit() {
                    datagram.owner = owner
                    server.handle(datagram, now: now)
                    moved = true
                }
                while var datagram = server.pollTransmit() {
                    #expect(datagram.owner == owner, "the server answers an owner's packet for that owner only")
                    // The client's datagram layer opens it as its own, with no owner of its own to tell.
                    datagram.owner = .unauthenticated
                    client.handle(datagram, now: now)
                    moved = true
                }
                while let event = server.pollEvent() { serverEvents.append(event) }
                while client.pollEvent() != nil {}
                if !moved { return }
            }
        }

        /// Sends a hand-built packet to the server as `owner` and returns the chunk types of the answers.
        func inject(
            _ chunks: [Chunk], tag: VerificationTag, from source: SCTPSocketAddress, as owner: SCTPOwner
        )
            -> [UInt8]
        {
            var builder = PacketBuilder(
                header: CommonHeader(sourcePort: 5000, destinationPort: 5000, verificationTag: tag, checksum: 0))
            for chunk in chunks { builder.add(chunk) }
            server.handle(
                SCTPDatagram(
                    source: source, destination: OwnerIsolationTests.serverAddress, payload: builder.finish(),
                    owner: owner),
                now: now)
            var answers: [UInt8] = []
            while let datagram = server.pollTransmit() {
                answers += (try? RawPacket.parse(datagram.payload).chunks.map(\.type)) ?? []
            }
            while let event = server.pollEvent() { serverEvents.append(event) }
            return answers
        }
    }

    @Test func aPacketWithAnotherOwnersTagIsOutOfTheBlue() throws {
        let setup = Setup()
        let id = setup.victim.connect(
            to: OwnerIsolationTests.serverAddress, from: OwnerIsolationTests.victimAddress, peerPort: 5000,
            now: setup.now)
        setup.exchange(setup.victim, as: Self.victimOwner)
        let victimOnServer = try #require(setup.server.associations.values.first)
        #expect(victimOnServer.owner == Self.victimOwner)
        #expect(setup.server.associationIDs(ownedBy: Self.victimOwner) == [victimOnServer.id])
        let tag = victimOnServer.localTag
        let tsn = victimOnServer.dataTracker.cumulativeTSN.next
        let paths = victimOnServer.paths.map(\.remoteAddress)

        // HEARTBEAT, DATA, SHUTDOWN and ABORT with the victim's tag, from the victim's NAT address and another
        // port of it: each is answered as an unknown tag would be, with ABORT (T bit) or not at all.
        let attacks: [[Chunk]] = [
            [.heartbeat(HeartbeatChunk(info: ByteBuffer(bytes: [1, 2, 3, 4])))],
            [
                .data(
                    DataChunk(
                        tsn: tsn, streamID: StreamID(1), ssn: SSN(0), ppid: PPID(0), userData: ByteBuffer(bytes: [7])))
            ],
            [.shutdown(ShutdownChunk(cumulativeTSNAck: victimOnServer.dataTracker.cumulativeTSN))],
            [.abort(AbortChunk(isTagReflected: false, causes: []))],
        ]
        for chunks in attacks {
            for source in [Self.intruderAddress, Self.victimAddress] {
                let answers = setup.inject(chunks, tag: tag, from: source, as: Self.intruderOwner)
                #expect(answers.allSatisfy { $0 == AbortChunk.type }, "\(chunks) answered with \(answers)")
            }
        }
        // An ABORT with the T bit and the victim's own tag, as if reflected by the server.
        _ = setup.inject(
            [.abort(AbortChunk(isTagReflected: true, causes: []))], tag: victimOnServer.peerTag,
            from: Self.victimAddress, as: Self.intruderOwner)

        #expect(setup.server.associations[victimOnServer.id] === victimOnServer)
        #expect(victimOnServer.dataTracker.cumulativeTSN.next == tsn, "no DATA was taken")
        #expect(victimOnServer.paths.map(\.remoteAddress) == paths, "no path moved to the intruder's port")
        #expect(!setup.serverEvents.contains { if case .closed = $0 { return true } else { return false } })
        // The victim's association still works both ways.
        try setup.victim.send(ByteBuffer(bytes: [1, 2, 3]), on: id, stream: StreamID(1), now: setup.now)
        setup.exchange(setup.victim, as: Self.victimOwner)
        #expect(setup.serverEvents.contains { if case .message = $0 { return true } else { return false } })
    }

    @Test func anInitFromTheSameAddressCollidesOnlyWithTheSameOwner() throws {
        let setup = Setup()
        _ = setup.victim.connect(
            to: OwnerIsolationTests.serverAddress, from: OwnerIsolationTests.victimAddress, peerPort: 5000,
            now: setup.now)
        setup.exchange(setup.victim, as: Self.victimOwner)
        let victimOnServer = try #require(setup.server.associations.values.first)

        // The intruder starts an association from the victim's very address and port (the same NAT mapping).
        _ = setup.intruder.connect(
            to: OwnerIsolationTests.serverAddress, from: OwnerIsolationTests.victimAddress, peerPort: 5000,
            now: setup.now)
        let initPacket = try #require(setup.intruder.pollTransmit())
        setup.server.handle(
            SCTPDatagram(
                source: initPacket.source, destination: initPacket.destination, payload: initPacket.payload,
                owner: Self.intruderOwner), now: setup.now)
        let initAck = try #require(setup.server.pollTransmit())
        #expect(initAck.owner == Self.intruderOwner)
        guard case .initiationAck(let ack)? = try? Chunk(decoding: RawPacket.parse(initAck.payload).chunks[0]),
            case .stateCookie(let bytes)? = ack.parameters.first(where: {
                if case .stateCookie = $0 { return true } else { return false }
            })
        else {
            Issue.record("no INIT-ACK with a cookie")
            return
        }
        let cookie = try StateCookie.decode(bytes, secret: setup.server.cookieKey)
        // No tie-tags: the victim's association was not a collision candidate, so its tags do not leak.
        #expect(cookie.localTieTag == .zero && cookie.peerTieTag == .zero)
        #expect(cookie.owner == Self.intruderOwner)

        // The intruder's own association comes up beside the victim's, which is untouched.
        var opened = initAck
        opened.owner = .unauthenticated
        setup.intruder.handle(opened, now: setup.now)
        setup.exchange(setup.intruder, as: Self.intruderOwner)
        #expect(setup.server.associations.count == 2)
        #expect(setup.server.associations[victimOnServer.id] === victimOnServer)
        #expect(setup.server.associationIDs(ownedBy: Self.intruderOwner).count == 1)
    }

    @Test func aCookieMadeForOneOwnerCreatesNothingForAnother() throws {
        let setup = Setup()
        _ = setup.victim.connect(
            to: OwnerIsolationTests.serverAddress, from: OwnerIsolationTests.victimAddress, peerPort: 5000,
            now: setup.now)
        var initPacket = try #require(setup.victim.pollTransmit())
        initPacket.owner = Self.victimOwner
        setup.server.handle(initPacket, now: setup.now)
        var initAck = try #require(setup.server.pollTransmit())
        initAck.owner = .unauthenticated
        setup.victim.handle(initAck, now: setup.now)
        // The COOKIE-ECHO arrives under another owner (the intruder replays the victim's cookie).
        var echo = try #require(setup.victim.pollTransmit())
        echo.owner = Self.intruderOwner
        setup.server.handle(echo, now: setup.now)
        #expect(setup.server.associations.isEmpty)
        #expect(setup.server.pollTransmit() == nil)
        #expect(setup.server.droppedPackets[.cookieOfAnotherOwner] == 1)
    }

    @Test func anOwnerBeyondItsAssociationLimitIsRefusedUnlessOneIsQuiet() throws {
        let setup = Setup { $0.maxAssociationsPerOwner = 2 }
        var clients: [SCTPEndpoint] = []
        for index in 0..<3 {
            let client = SCTPEndpoint(configuration: SCTPConfiguration(), seed: 100 + UInt64(index))
            // Three devices of one key (an INIT from the same IP and SCTP port would be a restart, RFC 9260 §5.2).
            let address = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 10 + UInt8(index)), port: 41000)
            _ = client.connect(to: OwnerIsolationTests.serverAddress, from: address, peerPort: 5000, now: setup.now)
            setup.exchange(client, as: Self.victimOwner)
            clients.append(client)
        }
        #expect(setup.server.associationIDs(ownedBy: Self.victimOwner).count == 2)
        #expect(setup.server.refusedAssociations == 1)
        #expect(
            setup.serverEvents.contains {
                if case .associationRefused(let owner, _) = $0 {
                    return owner == Self.victimOwner
                } else {
                    return false
                }
            })
        // Another owner is not affected by the first one's limit.
        _ = setup.intruder.connect(
            to: OwnerIsolationTests.serverAddress, from: OwnerIsolationTests.intruderAddress, peerPort: 5000,
            now: setup.now)
        setup.exchange(setup.intruder, as: Self.intruderOwner)
        #expect(setup.server.associationIDs(ownedBy: Self.intruderOwner).count == 1)

        // Once the owner's associations have been quiet long enough, a new one replaces the quietest.
        setup.now = setup.now + .seconds(11)
        let late = SCTPEndpoint(configuration: SCTPConfiguration(), seed: 200)
        _ = late.connect(
            to: OwnerIsolationTests.serverAddress,
            from: SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 20), port: 42000),
            peerPort: 5000,
            now: setup.now)
        setup.exchange(late, as: Self.victimOwner)
        #expect(setup.server.associationIDs(ownedBy: Self.victimOwner).count == 2)
        #expect(setup.server.replacedAssociations == 1)
        #expect(
            setup.serverEvents.contains {
                if case .closed(_, .replacedByNewerAssociation) = $0 { return true } else { return false }
            })
    }

    @Test func theDeadlineScheduleVisitsOnlyDueAssociationsAndStaysSmall() throws {
        final class Item: DeadlineScheduled {
            let id: Int
            var scheduledDeadline: SCTPTime?
            init(_ id: Int) { self.id = id }
        }
        let items = (0..<100).map(Item.init)
        var schedule = DeadlineSchedule<Item>()
        for item in items { schedule.schedule(item, at: SCTPTime(nanoseconds: Int64(1000 + item.id))) }
        #expect(schedule.nextDeadline() == SCTPTime(nanoseconds: 1000))
        // Deadlines that move later keep their earlier entry; one that moves earlier adds an entry.
        for _ in 0..<1000 {
            for item in items { schedule.schedule(item, at: SCTPTime(nanoseconds: Int64(5000 + item.id))) }
        }
        #expect(schedule.entryCount == 100)
        schedule.schedule(items[50], at: SCTPTime(nanoseconds: 10))
        #expect(schedule.nextDeadline() == SCTPTime(nanoseconds: 10))
        #expect(schedule.popDue(now: SCTPTime(nanoseconds: 999)).map(\.id) == [50])
        #expect(schedule.popDue(now: SCTPTime(nanoseconds: 1001)).map(\.id).sorted() == [0, 1])
        schedule.schedule(items[2], at: nil)
        #expect(schedule.nextDeadline() == SCTPTime(nanoseconds: 1003))
        // Many moves earlier: stale entries are swept, the heap stays bounded.
        for round in 0..<10_000 { schedule.schedule(items[7], at: SCTPTime(nanoseconds: Int64(-round))) }
        #expect(schedule.entryCount < 2 * 100 + 65)
        #expect(schedule.nextDeadline() == SCTPTime(nanoseconds: -9999))
        // A forgotten element is never returned, and the sweep lets go of it.
        schedule.schedule(items[7], at: nil)
        let rest = schedule.popDue(now: SCTPTime(nanoseconds: 1_000_000)).map(\.id)
        #expect(rest.count == 95 && !rest.contains(7) && !rest.contains(2))
        #expect(schedule.nextDeadline() == nil)
    }

    @Test func theDeadlineScheduleLetsGoOfForgottenElements() {
        final class Item: DeadlineScheduled {
            var scheduledDeadline: SCTPTime?
        }
        var schedule = DeadlineSchedule<Item>()
        let live = (0..<10).map { _ in Item() }
        for item in live { schedule.schedule(item, at: SCTPTime(nanoseconds: 1_000_000)) }
        // Closed associations: scheduled far ahead, then forgotten. Their stale entries must not keep them, even
        // while the heap is far from twice the live count plus 64 (the sweep for entries pushed back).
        weak var firstForgotten: Item?
        for round in 0..<40 {
            let closed = Item()
            if round == 0 { firstForgotten = closed }
            schedule.schedule(closed, at: SCTPTime(nanoseconds: 2_000_000 + Int64(round)))
            schedule.schedule(closed, at: nil)
        }
        #expect(firstForgotten == nil, "a forgotten element is released by a sweep")
        #expect(schedule.entryCount <= 10 + 16 + 10 + 1)
        #expect(schedule.popDue(now: SCTPTime(nanoseconds: 3_000_000)).count == 10)
    }
}
