import AggProtocol
import NIOCore
import Testing

@testable import Proxy

/// A `ClientLink` against model servers in virtual time, no event loop: each group is one server that is up or
/// down; an up server completes the handshake, answers authentication and PINGs one round trip later, and a
/// download on an association reports the server heard every 10 ms while the server is up. The harness keeps one
/// `ClientSession` per attempt, performs the link's and the sessions' actions as the glue would and records them
/// with the time they happened.
final class LinkHarness {
    var link: ClientLink
    private(set) var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let start: NIODeadline
    var isUp: [Bool]
    let rtt = TimeAmount.milliseconds(20)
    let halfRTT = TimeAmount.milliseconds(10)
    static let key = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 5 &+ 1 })

    private var events: [(at: NIODeadline, order: Int, run: (LinkHarness) -> Void)] = []
    private var order = 0
    /// Each attempt's session (handshake, authentication, PING replies), by attempt.
    private(set) var sessions: [ClientLinkID: ClientSession] = [:]
    /// The server side of every attempt that reached an up server, by attempt.
    private var servers: [ClientLinkID: (group: Int, auth: ServerAuthenticator)] = [:]
    private var aborted: Set<ClientLinkID> = []
    /// Associations with a download running (the server sends all the time).
    var downloading: Set<ClientLinkID> = []

    private(set) var connects: [(id: ClientLinkID, group: Int, address: Int, at: NIODeadline)] = []
    private(set) var readies: [(id: ClientLinkID, at: NIODeadline)] = []
    private(set) var retired: [ClientLinkID] = []
    private(set) var lost: [(id: ClientLinkID, serverDead: Bool, at: NIODeadline)] = []
    private(set) var aborts: [(id: ClientLinkID, reason: String)] = []
    private(set) var delivered: [Int: (to: ClientLinkID, at: NIODeadline)] = [:]
    private(set) var gaveUp: [Int: NIODeadline] = [:]
    private(set) var pings = 0
    private(set) var settled = 0
    private(set) var authenticationFailures = 0
    /// The server of group `group` proves a wrong key (it is not the server the client's key belongs to).
    var impostor: Set<Int> = []

    init(groups: [Int], configure: (inout ClientLink.Configuration) -> Void = { _ in }) {
        var configuration = ClientLink.Configuration()
        configuration.groups = groups
        configure(&configuration)
        link = ClientLink(configuration: configuration)
        isUp = groups.map { _ in true }
        start = now
    }

    /// Seconds since the harness started.
    func elapsed(_ at: NIODeadline) -> Double { Double((at - start).nanoseconds) / 1e9 }

    func group(of id: ClientLinkID) -> Int? { connects.first { $0.id == id }?.group }

    func startLink() {
        link.start(now: now)
        perform()
    }

    /// The association or attempt `id` closes (the server ended it).
    func close(_ id: ClientLinkID) {
        link.handleClosed(id, now: now)
        perform()
    }

    func stopLink() {
        link.stop()
        perform()
    }

    func requestStreams() -> Int {
        let waiter = link.requestStreams(now: now)
        perform()
        return waiter
    }

    /// Runs events and the link's timer until `time`. Fails on more than 100,000 steps (a livelock).
    func run(for duration: TimeAmount) {
        let end = now + duration
        var steps = 0
        while true {
            steps += 1
            guard steps < 100_000 else {
                Issue.record("livelock")
                return
            }
            let event = events.min { ($0.at, $0.order) < ($1.at, $1.order) }
            let deadline = link.nextDeadline
            let sessionDeadline = sessions.values.compactMap(\.nextDeadline).min()
            let next = [event?.at, deadline, sessionDeadline].compactMap { $0 }.min()
            guard let next, next <= end else { break }
            now = max(now, next)
            if let event, event.at <= now {
                events.removeAll { $0.order == event.order }
                event.run(self)
            } else if let deadline, deadline <= now {
                link.handleTimeout(now: now)
            } else {
                for id in sessions.keys.sorted() where sessions[id]?.nextDeadline.map({ $0 <= now }) == true {
                    sessions[id]?.handleTimeout(now: now)
                    performSession(id)
                }
            }
            perform()
        }
        now = end
    }

    private func schedule(in delay: TimeAmount, _ run: @escaping (LinkHarness) -> Void) {
        order += 1
        events.append((now + delay, order, run))
    }

    private func perform() {
        while let action = link.pollAction() {
            switch action {
            case .connect(let id, let group, let address, let deadline):
                connects.append((id, group, address, now))
                sessions[id] = ClientSession(streams: Self.streams, deadline: deadline)
                schedule(in: rtt) { $0.established(id, group: group) }
            case .abort(let id, let reason):
                aborts.append((id, reason))
                aborted.insert(id)
                downloading.remove(id)
                closeSession(id)
            case .ready(let id, let keepalive):
                readies.append((id, now))
                if let keepalive { sessions[id]?.startKeepalive(serverTimeout: keepalive, now: now) }
            case .retire(let id):
                retired.append(id)
                sessions[id]?.stopKeepalive()
            case .lost(let id, let serverDead):
                lost.append((id, serverDead, now))
                downloading.remove(id)
                closeSession(id)
            case .deliver(let waiter, let id):
                delivered[waiter] = (id, now)
            case .giveUp(let waiter):
                gaveUp[waiter] = now
            case .changed:
                break
            case .settled:
                settled += 1
            }
        }
    }

    /// The streams of every session: a small association.
    static var streams: SessionStreamSettings {
        SessionStreamSettings(
            streamLimit: 100, streamCredit: 65536, idleTimeout: .seconds(300), openTimeout: .seconds(10),
            bufferedBytesLimit: 1 << 20, logger: LockstepSide.logger)
    }

    /// Performs what attempt `id`'s session asks, as the glue would: its verdicts go to the link.
    private func performSession(_ id: ClientLinkID) {
        while let action = sessions[id]?.pollAction() {
            switch action {
            case .send(let message):
                if case .ping = message { pings += 1 }
                schedule(in: halfRTT) { $0.serverReceives(message, on: id) }
            case .authenticated:
                link.handleAuthenticated(id, now: now)
            case .authenticationFailed:
                authenticationFailures += 1
            case .heard:
                link.handleHeard(id, now: now)
            case .awaitingPong:
                link.handleAwaitingPong(id)
            case .serverSilent:
                link.handleServerSilent(id, now: now)
            case .abort(let reason):
                aborts.append((id, reason))
                aborted.insert(id)
                downloading.remove(id)
                link.handleClosed(id, now: now)
            case .pongRefused, .drained, .stream:
                break
            }
        }
        if sessions[id]?.isClosed == true { sessions[id] = nil }
        perform()
    }

    private func closeSession(_ id: ClientLinkID) {
        sessions[id]?.handleClosed()
        sessions[id] = nil
    }

    /// A control message from the server reaches attempt `id`'s session.
    private func clientReceives(_ message: ControlMessage, on id: ClientLinkID) {
        sessions[id]?.handleControl(message, now: now)
        performSession(id)
    }

    private func isReachable(_ id: ClientLinkID) -> Bool {
        guard !aborted.contains(id), let group = group(of: id) else { return false }
        return isUp[group]
    }

    private func established(_ id: ClientLinkID, group: Int) {
        guard isReachable(id) else { return }
        var server = ServerAuthenticator(
            challenge: [UInt8](repeating: UInt8(id.rawValue), count: AggLimits.authFieldLength), maxStreams: 100,
            streamCredit: 65536)
        if impostor.contains(group) {
            server = ServerAuthenticator(challenge: [], maxStreams: 100, streamCredit: 65536)
        }
        servers[id] = (group, server)
        let nonce = [UInt8](repeating: 7, count: AggLimits.authFieldLength)
        sessions[id]?.handleEstablished(
            authenticator: ClientAuthenticator(key: Self.key, nonce: nonce), outbound: 10, inbound: 10)
        let hello = server.hello
        schedule(in: halfRTT) { $0.clientReceives(.hello(hello), on: id) }
    }

    private func serverReceives(_ message: ControlMessage, on id: ClientLinkID) {
        guard isReachable(id), var server = servers[id] else { return }
        let reply = try? server.auth.receive(message) { $0 == Self.key.name ? Self.key : nil }
        servers[id] = server
        guard let reply else { return }
        schedule(in: halfRTT) { harness in
            guard harness.isReachable(id) else { return }
            harness.clientReceives(reply, on: id)
        }
    }

    /// Starts a download on `id`: while its server is up, something arrives every 10 ms.
    func startDownload(on id: ClientLinkID) {
        downloading.insert(id)
        schedule(in: .milliseconds(10)) { $0.dataArrives(on: id) }
    }

    private func dataArrives(on id: ClientLinkID) {
        guard downloading.contains(id) else { return }
        if isReachable(id) {
            sessions[id]?.handleHeard(now: now)
            performSession(id)
        }
        schedule(in: .milliseconds(10)) { $0.dataArrives(on: id) }
    }
}

@Suite("ClientLink: association lifecycle and failover between server groups, in virtual time")
struct ClientLinkTests {
    @Test func connectsToThePreferredGroupAndHandsItTheConnectionsThatWaited() throws {
        let harness = LinkHarness(groups: [2, 1])
        harness.startLink()
        let waiter = harness.requestStreams()
        harness.run(for: .milliseconds(100))
        let ready = try #require(harness.readies.first)
        #expect(harness.group(of: ready.id) == 0)
        #expect(harness.connects.map(\.group) == [0])
        #expect(harness.delivered[waiter]?.to == ready.id)
        #expect(harness.settled == 1)
        #expect(harness.link.groupInUse == 0)
        // Later connections go to it at once.
        let later = harness.requestStreams()
        #expect(harness.delivered[later]?.to == ready.id)
    }

    @Test func aServerThatStopsAnsweringMidDownloadIsReplacedByTheNextGroupWithinThreeSeconds() throws {
        let harness = LinkHarness(groups: [1, 1])
        harness.startLink()
        harness.run(for: .milliseconds(100))
        let first = try #require(harness.link.current)
        harness.startDownload(on: first)
        harness.run(for: .seconds(5))
        #expect(harness.lost.isEmpty, "a server that sends is alive")

        harness.isUp[0] = false
        let killed = harness.now
        // Half a second of silence makes the server suspect: a connection then waits for its answer.
        harness.run(for: .milliseconds(700))
        let waiter = harness.requestStreams()
        harness.run(for: .seconds(5))

        let second = try #require(harness.readies.last)
        #expect(harness.group(of: second.id) == 1)
        #expect(harness.elapsed(second.at) - harness.elapsed(killed) < 3.0)
        #expect(harness.lost.map(\.id) == [first])
        #expect(harness.lost.first?.serverDead == true, "a dead server's connections are cut")
        let delivery = try #require(harness.delivered[waiter])
        #expect(delivery.to == second.id)
        #expect(harness.elapsed(delivery.at) - harness.elapsed(killed) < 3.0)
        #expect(harness.link.failovers == 1)
        #expect(harness.link.groupInUse == 1)
    }

    @Test func anIdleAssociationToALiveServerIsKeptWithPings() throws {
        let harness = LinkHarness(groups: [1, 1])
        harness.startLink()
        harness.run(for: .seconds(60))
        #expect(harness.readies.count == 1)
        #expect(harness.lost.isEmpty)
        #expect(harness.link.failovers == 0)
        // One PING per 0.5 s of silence at most: about two a second, answered.
        #expect(harness.pings > 60 && harness.pings <= 125)
    }

    @Test func anIdleAssociationToADeadServerFailsOverToo() throws {
        let harness = LinkHarness(groups: [1, 1])
        harness.startLink()
        harness.run(for: .seconds(2))
        harness.isUp[0] = false
        let killed = harness.now
        harness.run(for: .seconds(4))
        let second = try #require(harness.readies.last)
        #expect(harness.group(of: second.id) == 1)
        #expect(harness.elapsed(second.at) - harness.elapsed(killed) < 3.0)
    }

    @Test func thePreferredGroupTakesNewConnectionsAgainWhenItAnswersAndTheOldAssociationFinishes() throws {
        let harness = LinkHarness(groups: [1, 1])
        harness.startLink()
        harness.run(for: .milliseconds(100))
        let first = try #require(harness.link.current)
        harness.isUp[0] = false
        harness.run(for: .seconds(4))
        let backup = try #require(harness.link.current)
        #expect(harness.group(of: backup) == 1)
        harness.startDownload(on: backup)
        // Down for a minute: the preferred group is asked again and again, with backoff.
        harness.run(for: .seconds(60))
        let probes = harness.connects.filter { $0.group == 0 && $0.id != first }
        #expect(probes.count >= 4 && probes.count <= 12)
        let gaps = zip(probes.dropFirst(), probes).map { harness.elapsed($0.at) - harness.elapsed($1.at) }
        #expect(zip(gaps.dropFirst(), gaps).allSatisfy { $0 >= $1 - 0.001 }, "probes back off: \(gaps)")
        #expect(harness.link.groupInUse == 1)

        harness.isUp[0] = true
        let back = harness.now
        harness.run(for: .seconds(31))
        let preferred = try #require(harness.link.current)
        #expect(harness.group(of: preferred) == 0)
        let readyAgain = try #require(harness.readies.last)
        #expect(readyAgain.id == preferred)
        #expect(harness.elapsed(readyAgain.at) - harness.elapsed(back) <= 31)
        // The backup's connections are not cut: it is retired, to finish its streams.
        #expect(harness.retired == [backup])
        #expect(!harness.lost.contains { $0.id == backup })
        #expect(!harness.aborts.contains { $0.id == backup })
        #expect(harness.link.returns == 1)
        let waiter = harness.requestStreams()
        #expect(harness.delivered[waiter]?.to == preferred)
    }

    @Test func withNoServerUpAttemptsAlternateBetweenGroupsWithDoublingDelays() throws {
        let harness = LinkHarness(groups: [1, 1]) { $0.handshakeTimeout = .seconds(1) }
        harness.isUp = [false, false]
        harness.startLink()
        let waiter = harness.requestStreams()
        harness.run(for: .seconds(40))
        #expect(harness.connects.prefix(6).map(\.group) == [0, 1, 0, 1, 0, 1])
        // Each attempt waits out its handshake timeout, then the backoff: 0.25, 0.5, 1, 2, 4 s.
        let gaps = zip(harness.connects.dropFirst(), harness.connects).map {
            harness.elapsed($0.at) - harness.elapsed($1.at) - 1
        }
        for (gap, expected) in zip(gaps, [0.25, 0.5, 1, 2, 4, 8]) { #expect(abs(gap - expected) < 0.001) }
        #expect(harness.settled == 1, "the first failed attempt settles")
        #expect(harness.gaveUp[waiter] != nil, "a connection waits serverWait at most")
        #expect(harness.elapsed(harness.gaveUp[waiter]!) == 10)

        harness.isUp[1] = true
        harness.run(for: .seconds(70))
        #expect(harness.link.groupInUse == 1)
        // Authenticated: the backoff starts again from the shortest delay.
        harness.isUp[1] = false
        harness.isUp[0] = true
        let killed = harness.now
        harness.run(for: .seconds(3))
        #expect(harness.link.groupInUse == 0)
        #expect(harness.elapsed(harness.readies.last!.at) - harness.elapsed(killed) < 3)
    }

    @Test func oneGroupSendsNoPingsAndRotatesOverItsAddresses() throws {
        let harness = LinkHarness(groups: [3])
        harness.isUp = [false]
        harness.startLink()
        harness.run(for: .seconds(60))
        #expect(harness.connects.prefix(4).map(\.address) == [0, 1, 2, 0])
        #expect(harness.connects.allSatisfy { $0.group == 0 })
        harness.isUp = [true]
        harness.run(for: .seconds(60))
        #expect(harness.link.groupInUse == 0)
        harness.run(for: .seconds(60))
        #expect(harness.pings == 0)
        #expect(harness.lost.isEmpty, "silence alone does not end the only server's association")
    }

    @Test func aServerThatEndsTheAssociationHandsNewConnectionsToTheNextGroupUntilItAnswersAgain() throws {
        let harness = LinkHarness(groups: [1, 1])
        harness.startLink()
        harness.run(for: .milliseconds(100))
        let first = try #require(harness.link.current)
        // The server stops (its ABORT arrives) and comes back a moment later.
        harness.isUp[0] = false
        harness.close(first)
        harness.run(for: .milliseconds(100))
        #expect(harness.lost.map(\.serverDead) == [false])
        #expect(harness.connects.map(\.group) == [0, 1], "the next group at once, no backoff")
        #expect(harness.link.groupInUse == 1)
        #expect(harness.link.failovers == 1)
        let backup = try #require(harness.link.current)
        harness.isUp[0] = true
        harness.run(for: .seconds(2))
        #expect(harness.link.groupInUse == 0)
        #expect(harness.retired == [backup])
    }

    @Test func oneGroupAsksTheSameServerAgainAfterItEndsTheAssociation() throws {
        let harness = LinkHarness(groups: [1])
        harness.startLink()
        harness.run(for: .milliseconds(100))
        let first = try #require(harness.link.current)
        harness.close(first)
        harness.run(for: .milliseconds(200))
        #expect(harness.connects.count == 1, "after the shortest delay (250 ms)")
        harness.run(for: .milliseconds(100))
        #expect(harness.connects.map(\.group) == [0, 0])
        #expect(harness.link.groupInUse == 0)
    }

    @Test func aServerThatFailsAuthenticationIsAbortedAndTheNextGroupTried() throws {
        let harness = LinkHarness(groups: [1, 1])
        harness.impostor = [0]
        harness.startLink()
        harness.run(for: .seconds(2))
        #expect(harness.authenticationFailures >= 1, "and again on each probe of group 0")
        #expect(harness.aborts.first?.reason == "authentication failed")
        #expect(harness.link.groupInUse == 1)
    }

    /// The glue opens a stream at once on `takingConnections` instead of asking `requestStreams`: it must name the
    /// association `requestStreams` delivers to at once, and be nil whenever a connection would wait or give up
    /// (connecting, the server suspect, stopped).
    @Test func takingConnectionsNamesTheAssociationThatRequestStreamsDeliversToAtOnce() throws {
        let harness = LinkHarness(groups: [1, 1])
        func check(_ state: Comment) {
            let taking = harness.link.takingConnections
            let waiter = harness.requestStreams()
            let delivered = harness.delivered[waiter].map { $0.at == harness.now ? $0.to : nil } ?? nil
            #expect(taking == delivered, state)
        }
        check("idle")
        harness.startLink()
        check("connecting")
        harness.run(for: .milliseconds(100))
        #expect(harness.link.takingConnections != nil)
        check("ready")
        harness.isUp[0] = false
        // Half a second of silence makes the server suspect: connections wait for its answer.
        harness.run(for: .milliseconds(700))
        #expect(harness.link.takingConnections == nil)
        check("suspect")
        harness.run(for: .seconds(5))
        #expect(harness.link.groupInUse == 1)
        check("failed over")
        harness.stopLink()
        check("stopped")
    }

    @Test func stoppingFailsTheWaitingConnectionsAndAbortsTheAttempt() throws {
        let harness = LinkHarness(groups: [1])
        harness.isUp = [false]
        harness.startLink()
        let waiter = harness.requestStreams()
        harness.stopLink()
        harness.run(for: .seconds(60))
        #expect(harness.gaveUp[waiter] != nil)
        #expect(harness.aborts.map(\.reason) == ["client stopping"])
        #expect(harness.connects.count == 1)
        #expect(harness.link.nextDeadline == nil)
    }
}
