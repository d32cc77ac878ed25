import Logging
import NIOCore
import Testing

@testable import SCTPEngine

/// agg's private Path Policy ASCONF parameter (0xC0A6, docs/PROTOCOL.md "Path policy") from a key holder that sends
/// whatever it likes on its own association: extreme rates, unknown modes, wrong lengths, a source that is none of
/// its paths, thousands of requests. The server must answer each well-formed one, drop and count the malformed ones,
/// never trap, keep its log and its timers bounded, and leave every other owner's association exactly as it was.
@Suite struct PathPolicyAbuseTests {
    static let victimOwner = SCTPOwner(rawValue: 1)
    static let rogueOwner = SCTPOwner(rawValue: 2)
    static let victimAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40000)
    static let rogueAddress = SCTPSocketAddress(ip: .init(v4: 203, 0, 113, 9), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)

    /// One server endpoint and two clients, each client's datagrams stamped with its owner as aggserver's datagram
    /// layer stamps them. `lines` records the server's log messages.
    final class Setup {
        var now = SCTPTime.zero
        let server: SCTPEndpoint
        let victim: SCTPEndpoint
        let rogue: SCTPEndpoint
        let recorder = LogRateLimiterTests.Recorder()
        var serverMessages: [SCTPAssociationID: Int] = [:]
        var victimMessages = 0
        var rogueMessages = 0

        init() {
            let configuration = SCTPConfiguration()
            server = SCTPEndpoint(configuration: configuration, seed: 21)
            victim = SCTPEndpoint(configuration: configuration, seed: 22)
            rogue = SCTPEndpoint(configuration: configuration, seed: 23)
            server.logger = recorder.logger
        }

        func client(_ owner: SCTPOwner) -> SCTPEndpoint { owner == PathPolicyAbuseTests.victimOwner ? victim : rogue }

        /// Moves packets between the server and both clients until all three are quiet.
        func exchange(rounds: Int = 50) {
            for _ in 0..<rounds {
                var moved = false
                for owner in [PathPolicyAbuseTests.victimOwner, PathPolicyAbuseTests.rogueOwner] {
                    while var datagram = client(owner).pollTransmit() {
                        datagram.owner = owner
                        server.handle(datagram, now: now)
                        moved = true
                    }
                }
                while var datagram = server.pollTransmit() {
                    let owner = datagram.owner
                    datagram.owner = .unauthenticated
                    client(owner).handle(datagram, now: now)
                    moved = true
                }
                drainEvents()
                if !moved { return }
            }
        }

        func drainEvents() {
            while let event = server.pollEvent() {
                if case .message(let id, _) = event { serverMessages[id, default: 0] += 1 }
            }
            while let event = victim.pollEvent() { if case .message = event { victimMessages += 1 } }
            while let event = rogue.pollEvent() { if case .message = event { rogueMessages += 1 } }
        }

        /// Fires every timer due by `time`, exchanging what they send.
        func advance(to time: SCTPTime) -> Int {
            var wakeUps = 0
            while let next = [server.nextDeadline(), victim.nextDeadline(), rogue.nextDeadline()].compactMap({ $0 })
                .min(), next <= time
            {
                now = max(now, next)
                if server.nextDeadline().map({ $0 <= now }) == true { wakeUps += 1 }
                server.handleTimeout(now: now)
                victim.handleTimeout(now: now)
                rogue.handleTimeout(now: now)
                exchange()
            }
            now = time
            return wakeUps
        }

        /// Sends, from the rogue's association and signed with its AUTH key as its own ASCONFs are, an ASCONF
        /// carrying `parameters`, from `source`; returns the sizes of the ASCONF and of what the server answered.
        @discardableResult
        func sendASCONF(
            _ parameters: [Parameter], id: SCTPAssociationID, from source: SCTPSocketAddress
        )
            -> (sent: Int, answered: [Int])
        {
            let association = rogue.associations[id]!
            let chunk = ASCONFChunk(
                serial: association.asconf.nextSerial, addressParameter: .address(.anyV4), parameters: parameters)
            association.asconf.nextSerial = association.asconf.nextSerial.next
            let packet = association.buildPacket([.asconf(chunk)], tag: association.peerTag)
            server.handle(
                SCTPDatagram(
                    source: source, destination: PathPolicyAbuseTests.serverAddress, payload: packet,
                    owner: PathPolicyAbuseTests.rogueOwner),
                now: now)
            var answered: [Int] = []
            while let datagram = server.pollTransmit() {
                answered.append(datagram.payload.readableBytes)
                #expect(datagram.owner == PathPolicyAbuseTests.rogueOwner, "answers go to the rogue only")
            }
            drainEvents()
            return (packet.readableBytes, answered)
        }
    }

    /// A Path Policy parameter with the given raw fields (`length` of the value, normally 12).
    static func policy(
        correlationID: UInt32, mode: UInt8, priority: UInt8 = 0, rate: UInt32 = 0, valueLength: Int = 12
    ) -> Parameter {
        var value = ByteBuffer()
        value.writeInteger(correlationID)
        value.writeInteger(mode)
        value.writeInteger(priority)
        value.writeInteger(UInt16(0))
        value.writeInteger(rate)
        if valueLength < 12 {
            value.moveWriterIndex(to: valueLength)
        } else {
            value.writeRepeatingByte(0, count: valueLength - 12)
        }
        return .unknown(type: PathPolicyParameter.type, value: value)
    }

    static func serverPolicies(_ setup: Setup, _ id: SCTPAssociationID) -> [SCTPPathPolicy] {
        setup.server.paths(of: id).map(\.policy)
    }

    @Test func extremeAndMalformedPathPoliciesStayWithinTheSendersAssociation() throws {
        let setup = Setup()
        let victimID = setup.victim.connect(
            to: Self.serverAddress, from: Self.victimAddress, peerPort: 5000, now: setup.now)
        let rogueID = setup.rogue.connect(
            to: Self.serverAddress, from: Self.rogueAddress, peerPort: 5000, now: setup.now)
        setup.exchange()
        let victimOnServer = try #require(setup.server.associationIDs(ownedBy: Self.victimOwner).first)
        let rogueOnServer = try #require(setup.server.associationIDs(ownedBy: Self.rogueOwner).first)
        let victimPaths = setup.server.paths(of: victimOnServer).map(\.remote)

        // Extreme values that are well formed: the largest rate, a backup with the lowest priority, the smallest
        // rate (raised to 1000 B/s), none. Each gets one answer no larger than the request.
        var malformed = 0
        var correlation: UInt32 = 1
        let extremes: [(UInt8, UInt8, UInt32)] = [(1, 255, .max), (0, 0, .max), (1, 0, 1), (0, 255, 0), (1, 7, 0)]
        for (mode, priority, rate) in extremes {
            let exchange = setup.sendASCONF(
                [Self.policy(correlationID: correlation, mode: mode, priority: priority, rate: rate)], id: rogueID,
                from: Self.rogueAddress)
            correlation += 1
            #expect(exchange.answered.count == 1, "\(mode) \(priority) \(rate) answered \(exchange.answered)")
            #expect(exchange.answered.allSatisfy { $0 <= exchange.sent })
        }
        #expect(
            Self.serverPolicies(setup, rogueOnServer) == [SCTPPathPolicy(mode: .backup, priority: 7)],
            "the last well-formed request is in force")

        // Unknown modes and wrong lengths: dropped and counted, the rest of the ASCONF still answered.
        for mode in [UInt8(2), 3, 0x80, 0xFF] {
            setup.sendASCONF(
                [Self.policy(correlationID: correlation, mode: mode)], id: rogueID, from: Self.rogueAddress)
            correlation += 1
            malformed += 1
        }
        for length in [0, 4, 11, 13, 64] {
            setup.sendASCONF(
                [Self.policy(correlationID: correlation, mode: 1, valueLength: length)], id: rogueID,
                from: Self.rogueAddress)
            correlation += 1
            malformed += 1
        }
        #expect(setup.server.droppedPackets[.malformedPathPolicy] == malformed)

        // From a source that is none of the rogue's paths (another address, and the victim's own): refused with
        // Unresolvable Address or ignored, never applied to another path and never to another owner's.
        for source in [SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 200), port: 1), Self.victimAddress] {
            setup.sendASCONF(
                [Self.policy(correlationID: correlation, mode: 1, rate: 1000)], id: rogueID, from: source)
            correlation += 1
        }

        // Thousands of requests: 100 ASCONFs of 80 parameters each, every mode, priority and rate flipping.
        for round in 0..<100 {
            let parameters = (0..<80).map { i in
                Self.policy(
                    correlationID: correlation + UInt32(i), mode: UInt8((round + i) % 2), priority: UInt8(i),
                    rate: UInt32(i % 3 == 0 ? 0 : 1 + i * 100_000))
            }
            correlation += 80
            let exchange = setup.sendASCONF(parameters, id: rogueID, from: Self.rogueAddress)
            #expect(exchange.answered.count == 1 && exchange.answered.allSatisfy { $0 <= exchange.sent })
        }

        // The rogue's own association works, under whatever it last asked for, and the rate cap it chose keeps
        // its timer quiet: 64 KiB queued toward it at 1000 B/s wakes the server a bounded number of times.
        setup.sendASCONF(
            [Self.policy(correlationID: correlation, mode: 0, rate: 1)], id: rogueID, from: Self.rogueAddress)
        #expect(Self.serverPolicies(setup, rogueOnServer) == [SCTPPathPolicy(sendRateLimit: 1000)])
        for _ in 0..<64 {
            try setup.server.send(
                ByteBuffer(repeating: 1, count: 1024), on: rogueOnServer, stream: StreamID(1), now: setup.now)
        }
        setup.exchange()
        let wakeUps = setup.advance(to: setup.now + .seconds(10))
        #expect(wakeUps < 100, "the server woke \(wakeUps) times in 10 s for a 1000 B/s cap")
        #expect(setup.rogueMessages > 0 && setup.rogueMessages < 64, "\(setup.rogueMessages) messages at 1000 B/s")

        // The victim's association is untouched: same paths, default policy, data both ways.
        #expect(setup.server.associationIDs(ownedBy: Self.victimOwner) == [victimOnServer])
        #expect(setup.server.paths(of: victimOnServer).map(\.remote) == victimPaths)
        #expect(Self.serverPolicies(setup, victimOnServer).allSatisfy { $0 == .default })
        try setup.victim.send(ByteBuffer(bytes: [1, 2, 3]), on: victimID, stream: StreamID(1), now: setup.now)
        for _ in 0..<64 {
            try setup.server.send(
                ByteBuffer(repeating: 2, count: 1024), on: victimOnServer, stream: StreamID(1), now: setup.now)
        }
        setup.exchange()
        _ = setup.advance(to: setup.now + .milliseconds(500))
        #expect(setup.serverMessages[victimOnServer] == 1)
        #expect(setup.victimMessages == 64, "the victim's 64 KiB arrive at once, uncapped")
        #expect(setup.server.associationIDs(ownedBy: Self.rogueOwner) == [rogueOnServer])

        // The log: what the rogue causes with every request is rate-limited like the other lines a peer causes.
        let burst = LogRateLimiter().burst
        for line in ["peer path policy", "backup path stands by", "backup path carries data"] {
            #expect(setup.recorder.count(line) <= burst, "\(setup.recorder.count(line)) lines \"\(line)\"")
        }
    }
}
