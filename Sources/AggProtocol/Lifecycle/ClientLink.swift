import DequeModule
import NIOCore

/// One association attempt of aggclient, for the life of the attempt: a new attempt, even to the same server, gets
/// a new id, so a late event of an abandoned attempt cannot touch the next one.
package struct ClientLinkID: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let rawValue: Int

    package static func < (lhs: ClientLinkID, rhs: ClientLinkID) -> Bool { lhs.rawValue < rhs.rawValue }

    package var description: String { "l\(rawValue)" }
}

/// What a `ClientLink` asks its glue to do, in order. The link never sees a driver, a channel or a clock.
package enum ClientLinkAction: Equatable, Sendable {
    /// Set up an association to address `address` of server group `group` (a fresh driver bound to the paths'
    /// addresses) with a `ClientSession` that must authenticate by `deadline`; report `handleAuthenticated` when
    /// the session says so, `handleClosed` when it ends.
    case connect(ClientLinkID, group: Int, address: Int, deadline: NIODeadline)
    /// Abort the association and close its session (the link has already forgotten it: its `.closed` event is
    /// ignored).
    case abort(ClientLinkID, reason: String)
    /// The association authenticated and takes new connections from now on: its session's streams get the
    /// connections, and with several server groups its session watches the server (`keepalive`, the server
    /// timeout: `ClientSession.startKeepalive`).
    case ready(ClientLinkID, keepalive: TimeAmount?)
    /// The association no longer takes new connections (a more preferred server answered): its server is no
    /// longer watched; let its streams finish, then shut it down. Its `.closed` is the glue's business.
    case retire(ClientLinkID)
    /// The association that took new connections is gone: cut its streams and UDP flows.
    case lost(ClientLinkID, serverDead: Bool)
    /// The connection that waited as `waiter` goes to this association's streams.
    case deliver(waiter: Int, to: ClientLinkID)
    /// The connection that waited as `waiter` fails: no association within `serverWait` (or the client stops).
    case giveUp(waiter: Int)
    /// The first attempt authenticated or failed (once per link).
    case settled
    /// Which association is in use, or whether there is one, changed (status, systemd).
    case changed
}

/// aggclient's association lifecycle, sans-IO: which server group to connect to and when (reconnect backoff,
/// failover to the next group when the server in use stops answering, return to a more preferred group that
/// answers again, new connections only), the deadline each attempt gets, which association's server is watched,
/// and the connections waiting for an association. Each attempt's handshake, authentication, keepalive and streams
/// are a `ClientSession` of its own, below the link: the glue reports what the sessions say (`handleAuthenticated`,
/// `handleHeard`, `handleAwaitingPong`, `handleServerSilent`, `handleClosed`). Events and `now` go in,
/// `ClientLinkAction`s come out (`pollAction`), `nextDeadline` tells the glue when to call `handleTimeout`. The glue
/// owns drivers, sessions, sockets and promises.
package struct ClientLink {
    /// Tunables; `AggClientService.Configuration` fills them.
    package struct Configuration: Sendable {
        /// How many addresses each server group has, in order of preference. At least one group.
        package var groups: [Int] = [1]
        /// How long a new connection waits for an association before it fails.
        package var serverWait: TimeAmount = .seconds(10)
        /// How long the handshake and authentication of one attempt may take (its session's deadline).
        package var handshakeTimeout: TimeAmount = .seconds(10)
        /// First and largest delay between attempts after a failure; the delay doubles after each failure.
        package var reconnectDelay: TimeAmount = .milliseconds(250)
        package var maxReconnectDelay: TimeAmount = .seconds(30)
        /// With more than one group: a server from which nothing authenticated came for this long is dead, and the
        /// next group is tried at once. A PING goes out after a third of it without a datagram from the server (the
        /// association's `ClientSession` keeps that time).
        package var serverTimeout: TimeAmount = .milliseconds(1500)
        /// With more than one group: the first wait before asking a more preferred group again, doubling up to
        /// `maxReconnectDelay` while it does not answer.
        package var returnDelay: TimeAmount = .seconds(1)

        package init() {}
    }

    /// An attempt under way (its handshake and authentication are its `ClientSession`'s).
    struct Attempt {
        let id: ClientLinkID
        let group: Int
    }

    /// The association taking new connections.
    struct Current {
        let id: ClientLinkID
        let group: Int
        /// A keepalive PING is unanswered (`handleAwaitingPong`): new connections wait for the server's answer.
        var isSuspect = false
    }

    /// Where the link is.
    enum State {
        /// Not started.
        case idle
        /// No association and no attempt: the next one starts at `at` toward `group`.
        case waiting(at: NIODeadline, group: Int)
        /// No association takes connections; one attempt is under way.
        case connecting(Attempt)
        /// An association takes connections; `probe` asks a more preferred group meanwhile, the next probe starts
        /// at `nextProbe` (nil: the current group is the preferred one, or the link drains).
        case ready(Current, probe: Attempt?, nextProbe: NIODeadline?)
        /// Stopped (or draining with nothing left): nothing more is attempted.
        case stopped
    }

    let configuration: Configuration
    private(set) var state = State.idle
    /// Connections waiting for an association, oldest first, with their deadlines.
    private var waiters: Deque<(id: Int, deadline: NIODeadline)> = []
    private var nextWaiter = 0
    private var nextID = 0
    /// The next address to dial in each group: attempts rotate over a group's addresses.
    private var addressCursor: [Int]
    private var reconnectDelay: TimeAmount
    private var returnDelay: TimeAmount
    /// The more preferred group the next probe asks.
    private var probeGroup = 0
    /// The first attempt authenticated or failed (`.settled` was reported), or the link stopped.
    package private(set) var hasSettled = false
    /// Draining (`drain`): no new attempt, no probe.
    package private(set) var isDraining = false
    private var actions: Deque<ClientLinkAction> = []
    /// Times the client moved to another group because the one in use stopped answering.
    package private(set) var failovers = 0
    /// Times the client went back to a more preferred group that answered again.
    package private(set) var returns = 0

    package init(configuration: Configuration) {
        precondition(!configuration.groups.isEmpty && configuration.groups.allSatisfy { $0 > 0 })
        self.configuration = configuration
        addressCursor = configuration.groups.map { _ in 0 }
        reconnectDelay = configuration.reconnectDelay
        returnDelay = configuration.returnDelay
    }

    private var hasSeveralGroups: Bool { configuration.groups.count > 1 }

    // The readers the glue calls are kept out of line: inlined into AggClientService, where `link` is a stored
    // property of a class, Swift 6.3.1's release build crashes in CopyPropagation ("Found outside of lifetime use"
    // on the switch over `state`).

    /// The group whose association takes new connections now (nil: none does).
    package var groupInUse: Int? {
        @inline(never) get {
            if case .ready(let current, _, _) = state { return current.group }
            return nil
        }
    }

    /// The association taking new connections (nil: none).
    package var current: ClientLinkID? {
        @inline(never) get {
            if case .ready(let current, _, _) = state { return current.id }
            return nil
        }
    }

    /// The association a new connection goes to at once (`requestStreams` would deliver it without waiting): one
    /// ready and not suspect; nil when the connection must wait or give up, through `requestStreams`.
    package var takingConnections: ClientLinkID? {
        @inline(never) get {
            if case .ready(let current, _, _) = state, !current.isSuspect { return current.id }
            return nil
        }
    }

    /// Whether `stop` was called.
    package var isStopped: Bool {
        @inline(never) get {
            if case .stopped = state { return true }
            return false
        }
    }

    /// Whether `id` is the attempt under way, the probe, or the association taking new connections (false for
    /// retired associations and abandoned attempts).
    @inline(never)
    package func knows(_ id: ClientLinkID) -> Bool {
        switch state {
        case .ready(let current, let probe, _):
            return current.id == id || probe?.id == id
        case .connecting(let attempt):
            return attempt.id == id
        case .idle, .waiting, .stopped:
            return false
        }
    }

    // MARK: - Output

    /// The next thing for the glue to do.
    package mutating func pollAction() -> ClientLinkAction? {
        actions.popFirst()
    }

    /// When `handleTimeout` must run next (nil: no timer).
    package var nextDeadline: NIODeadline? {
        @inline(never) get { earliestDeadline() }
    }

    /// `nextDeadline` for the glue, which keeps the link in a class property and asks after every event: a mutating
    /// access reads it in place, where reading the property copies the whole link (its queues retained and
    /// released) each time.
    @inline(never)
    package mutating func readNextDeadline() -> NIODeadline? { earliestDeadline() }

    private func earliestDeadline() -> NIODeadline? {
        // A running minimum, not an array of candidates: this is read after every batch of events.
        var earliest: NIODeadline?
        func consider(_ deadline: NIODeadline?) {
            guard let deadline else { return }
            if let current = earliest, current <= deadline { return }
            earliest = deadline
        }
        consider(waiters.first?.deadline)
        switch state {
        case .idle, .stopped:
            break
        case .waiting(let at, _):
            if !isDraining { consider(at) }
        case .connecting:
            break
        case .ready(_, _, let nextProbe):
            consider(nextProbe)
        }
        return earliest
    }

    // MARK: - Commands

    /// Starts the first attempt, toward the most preferred group.
    package mutating func start(now: NIODeadline) {
        guard case .idle = state else { return }
        connect(group: 0, now: now)
    }

    /// A connection wants a stream: it is delivered at once when an association is ready and its server not
    /// silent, else waits up to `serverWait`. Returns the waiter id the actions name.
    package mutating func requestStreams(now: NIODeadline) -> Int {
        let id = nextWaiter
        nextWaiter += 1
        switch state {
        case .ready(let current, _, _) where !current.isSuspect:
            actions.append(.deliver(waiter: id, to: current.id))
        case .stopped:
            actions.append(.giveUp(waiter: id))
        case .idle, .waiting, .connecting, .ready:
            // A server that has not answered its PING yet may be dead: the connection waits for its answer or
            // for the next group rather than go where it may be cut.
            waiters.append((id, now + configuration.serverWait))
        }
        return id
    }

    /// Graceful stop: no new attempt, no probe; the current association keeps its streams (the glue shuts it
    /// down once they are done) and nothing replaces it when it closes.
    package mutating func drain() {
        isDraining = true
        switch state {
        case .ready(let current, let probe, _):
            if let probe { actions.append(.abort(probe.id, reason: "client stopping")) }
            state = .ready(current, probe: nil, nextProbe: nil)
        case .idle, .waiting, .connecting, .stopped:
            break
        }
    }

    /// Stops: every attempt and the association are aborted, waiting connections fail.
    package mutating func stop() {
        switch state {
        case .ready(let current, let probe, _):
            actions.append(.lost(current.id, serverDead: false))
            actions.append(.abort(current.id, reason: "client stopping"))
            if let probe { actions.append(.abort(probe.id, reason: "client stopping")) }
        case .connecting(let attempt):
            actions.append(.abort(attempt.id, reason: "client stopping"))
        case .idle, .waiting, .stopped:
            break
        }
        state = .stopped
        for waiter in waiters { actions.append(.giveUp(waiter: waiter.id)) }
        waiters.removeAll()
        settle()
    }

    // MARK: - Input

    /// Attempt `id`'s session authenticated the server (`ClientSessionAction.authenticated`): it takes new
    /// connections from now on, and a less preferred association in use is retired.
    package mutating func handleAuthenticated(_ id: ClientLinkID, now: NIODeadline) {
        guard let attempt = attempt(id) else { return }
        authenticated(attempt, now: now)
    }

    /// The session of `id` heard from its server (`ClientSessionAction.heard`): the server is alive, connections
    /// that waited for its answer go to it.
    package mutating func handleHeard(_ id: ClientLinkID, now: NIODeadline) {
        guard case .ready(var current, let probe, let nextProbe) = state, current.id == id else { return }
        current.isSuspect = false
        state = .ready(current, probe: probe, nextProbe: nextProbe)
        deliverWaiters(to: id)
    }

    /// The session of `id` sent a keepalive PING that is unanswered (`ClientSessionAction.awaitingPong`): new
    /// connections wait for the answer, or for the next group.
    package mutating func handleAwaitingPong(_ id: ClientLinkID) {
        guard case .ready(var current, let probe, let nextProbe) = state, current.id == id else { return }
        current.isSuspect = true
        state = .ready(current, probe: probe, nextProbe: nextProbe)
    }

    /// The session of `id` heard nothing from its server for `serverTimeout` (`ClientSessionAction.serverSilent`):
    /// the association is cut and the next group is asked at once.
    package mutating func handleServerSilent(_ id: ClientLinkID, now: NIODeadline) {
        guard case .ready(let current, let probe, _) = state, current.id == id else { return }
        failOver(current, probe: probe, now: now)
    }

    private mutating func deliverWaiters(to id: ClientLinkID) {
        let waiting = waiters
        waiters.removeAll()
        for waiter in waiting { actions.append(.deliver(waiter: waiter.id, to: id)) }
    }

    /// Attempt or association `id` closed (or it was aborted: its session gave up the handshake or failed the
    /// server's authentication, the server lost the session, a local address went away). Unknown ids (retired
    /// associations, abandoned attempts) are ignored.
    package mutating func handleClosed(_ id: ClientLinkID, now: NIODeadline) {
        if case .ready(let current, let probe, _) = state, current.id == id {
            actions.append(.lost(id, serverDead: false))
            if let probe { actions.append(.abort(probe.id, reason: "association lost")) }
            actions.append(.changed)
            reconnectDelay = configuration.reconnectDelay
            if hasSeveralGroups, !isDraining {
                // The server ended the association (it stops or restarts): the next group takes new connections
                // at once, and the preferred one gets them back once it answers a probe again.
                failovers += 1
                connect(group: (current.group + 1) % configuration.groups.count, now: now)
            } else {
                wait(group: current.group, now: now)
            }
            return
        }
        attemptFailed(id, now: now)
    }

    /// A path just got an address: a waiting link tries again after the shortest delay, not its backoff.
    package mutating func handlePathAvailable(now: NIODeadline) {
        guard case .waiting(_, let group) = state, !isDraining else { return }
        reconnectDelay = configuration.reconnectDelay
        state = .waiting(at: now + reconnectDelay, group: group)
    }

    /// Runs what is due at `now`: attempts, waiting connections, probes of a more preferred group (an attempt's
    /// handshake deadline and the keepalive are its session's).
    package mutating func handleTimeout(now: NIODeadline) {
        while let first = waiters.first, first.deadline <= now {
            waiters.removeFirst()
            actions.append(.giveUp(waiter: first.id))
        }
        switch state {
        case .idle, .stopped:
            break
        case .waiting(let at, let group):
            if at <= now, !isDraining { connect(group: group, now: now) }
        case .connecting:
            break
        case .ready(let current, var probe, var nextProbe):
            if probe == nil, let at = nextProbe, at <= now, !isDraining, current.group > 0 {
                probeGroup = probeGroup < current.group ? probeGroup : 0
                let attempt = newAttempt(group: probeGroup, now: now)
                probeGroup += 1
                probe = attempt
                nextProbe = nil
            }
            state = .ready(current, probe: probe, nextProbe: nextProbe)
        }
    }

    // MARK: - Transitions

    private func attempt(_ id: ClientLinkID) -> Attempt? {
        switch state {
        case .connecting(let attempt) where attempt.id == id: return attempt
        case .ready(_, let probe?, _) where probe.id == id: return probe
        case .idle, .waiting, .connecting, .ready, .stopped: return nil
        }
    }

    private mutating func newAttempt(group: Int, now: NIODeadline) -> Attempt {
        let id = ClientLinkID(rawValue: nextID)
        nextID += 1
        let address = addressCursor[group] % configuration.groups[group]
        addressCursor[group] += 1
        actions.append(.connect(id, group: group, address: address, deadline: now + configuration.handshakeTimeout))
        return Attempt(id: id, group: group)
    }

    private mutating func connect(group: Int, now: NIODeadline) {
        state = .connecting(newAttempt(group: group, now: now))
    }

    /// No association takes connections: the next attempt toward `group` after the current backoff.
    private mutating func wait(group: Int, now: NIODeadline) {
        guard !isDraining else {
            state = .stopped
            return
        }
        state = .waiting(at: now + reconnectDelay, group: group)
        reconnectDelay = min(reconnectDelay * 2, configuration.maxReconnectDelay)
    }

    /// Attempt `id` ended before it authenticated: without an association the next group is tried after the
    /// backoff; a probe of a more preferred group is tried again later.
    private mutating func attemptFailed(_ id: ClientLinkID, now: NIODeadline) {
        switch state {
        case .connecting(let attempt) where attempt.id == id:
            settle()
            wait(group: (attempt.group + 1) % configuration.groups.count, now: now)
        case .ready(let current, let probe?, _) where probe.id == id:
            state = .ready(current, probe: nil, nextProbe: isDraining ? nil : now + returnDelay)
            returnDelay = min(returnDelay * 2, configuration.maxReconnectDelay)
        case .idle, .waiting, .connecting, .ready, .stopped:
            break
        }
    }

    /// The server in use stopped answering: its association is cut and the next group is asked at once.
    private mutating func failOver(_ current: Current, probe: Attempt?, now: NIODeadline) {
        actions.append(.lost(current.id, serverDead: true))
        actions.append(.abort(current.id, reason: "server not answering"))
        if let probe { actions.append(.abort(probe.id, reason: "association lost")) }
        failovers += 1
        actions.append(.changed)
        reconnectDelay = configuration.reconnectDelay
        guard !isDraining else {
            state = .stopped
            return
        }
        connect(group: (current.group + 1) % configuration.groups.count, now: now)
    }

    private mutating func authenticated(_ attempt: Attempt, now: NIODeadline) {
        let previous: Current?
        if case .ready(let current, _, _) = state { previous = current } else { previous = nil }
        let current = Current(id: attempt.id, group: attempt.group)
        actions.append(.ready(attempt.id, keepalive: hasSeveralGroups ? configuration.serverTimeout : nil))
        if let previous {
            actions.append(.retire(previous.id))
            returns += 1
        }
        reconnectDelay = configuration.reconnectDelay
        returnDelay = configuration.returnDelay
        probeGroup = 0
        let nextProbe = hasSeveralGroups && attempt.group > 0 && !isDraining ? now + returnDelay : nil
        state = .ready(current, probe: nil, nextProbe: nextProbe)
        settle()
        actions.append(.changed)
        deliverWaiters(to: attempt.id)
    }

    private mutating func settle() {
        guard !hasSettled else { return }
        hasSettled = true
        actions.append(.settled)
    }
}
