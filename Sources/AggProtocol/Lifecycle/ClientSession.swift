import DequeModule
import Logging
import NIOCore
import SCTPEngine

/// What a `ClientSession` asks its glue to do, in order.
package enum ClientSessionAction: Equatable {
    /// Send a control message (AUTH, PONG) on the association's stream 0.
    case send(ControlMessage)
    /// AUTH-OK proved the server: the session's streams are up (`ClientLink.handleAuthenticated`).
    case authenticated(ControlMessage.Hello)
    /// The server failed to authenticate (counted); an `.abort` follows.
    case authenticationFailed(String)
    /// The server of a ready association was heard (a control message, or `handleHeard`): it is alive
    /// (`ClientLink.handleHeard`).
    case heard
    /// A keepalive PING went out unanswered: the server may be dead, new connections wait for its answer
    /// (`ClientLink.handleAwaitingPong`).
    case awaitingPong
    /// Nothing came from the server for the keepalive's `serverTimeout`: it is dead (`ClientLink.handleServerSilent`
    /// fails over). Reported once.
    case serverSilent
    /// A PONG was not sent: the server's PINGs came faster than `ControlReplyBudget` allows.
    case pongRefused
    /// Draining (`handleDrain`) and the last stream is free: the association may shut down. Reported once.
    case drained
    /// End the association (ABORT); the session is closed already and its streams' sockets were closed by the
    /// `.stream` actions before this one. The link hears of it as a closed attempt or association.
    case abort(reason: String)
    /// What the association's streams ask (`StreamSessionAction`): the glue performs it on the TCP sockets and the
    /// association. Never `.abortAssociation` or `.drained`: the session turns those into `.abort` and `.drained`.
    case stream(StreamSessionAction)
}

/// One association attempt of aggclient, and the association it becomes, sans-IO: its handshake and
/// authentication with the attempt's deadline, its keepalive and its streams in one state machine. `ClientLink`
/// decides which attempts to make and which association takes new connections; this is one of them.
///
/// The SCTP handshake (`handleEstablished`) and the authentication (HELLO, AUTH, AUTH-OK) must be done by the
/// deadline `ClientLink` gave the attempt, else the attempt is aborted ("handshake timed out"); a wrong server proof
/// or an undecodable control message aborts it too ("authentication failed"). AUTH-OK starts the association's
/// `StreamSession`; once ready the session answers the server's PINGs within its reply budget, reports that the
/// server was heard, watches the server of the association in use when the link asks (`startKeepalive`: PINGs,
/// `.serverSilent`), and relays streams until it is closed, or, draining (`handleDrain`: the client stops, or a
/// more preferred server took over), until its last stream ends (`.drained`).
///
/// Inputs: the SCTP side (`handleEstablished`, `handleControlMessage`, `handleStreamMessage`, `handleHeard`,
/// `handleClosed`), the TCP side (the streams' own inputs, reached in place through `withStreams`), the link's
/// (`startKeepalive`, `stopKeepalive`, `handleDrain`) and `handleTimeout(now:)`. Outputs: `ClientSessionAction`s
/// (`pollAction`), the streams' included, and one `nextDeadline`, the attempt's deadline until ready, then the
/// streams' and the keepalive's.
package struct ClientSession {
    /// Waiting for the SCTP association.
    struct Connecting {
        /// When the attempt is abandoned unless it authenticated.
        let deadline: NIODeadline
        let settings: SessionStreamSettings
    }

    /// The SCTP association is up; HELLO, AUTH and AUTH-OK under way.
    struct Authenticating {
        var authenticator: ClientAuthenticator
        let deadline: NIODeadline
        /// The SCTP stream counts the association negotiated.
        let outbound: UInt16
        let inbound: UInt16
        let settings: SessionStreamSettings
    }

    /// The keepalive of the association in use when the client has several server groups: a PING after a third
    /// of `serverTimeout` without news of the server (and after each third while unanswered), `.serverSilent` after
    /// all of it.
    struct Keepalive {
        let serverTimeout: TimeAmount
        /// When the server was last heard from.
        var lastHeard: NIODeadline
        /// When the last unanswered PING went out.
        var pingSent: NIODeadline?
        var nextPing: UInt64 = 0

        var pingInterval: TimeAmount { .nanoseconds(serverTimeout.nanoseconds / 3) }

        /// When the server's silence must be looked at next.
        var nextCheck: NIODeadline {
            min(max(lastHeard, pingSent ?? lastHeard) + pingInterval, lastHeard + serverTimeout)
        }
    }

    /// Authenticated: streams and UDP flows go over the association.
    struct Ready {
        let hello: ControlMessage.Hello
        /// PONGs the server's PINGs may still get (`AggLimits.controlReplyBurst`).
        var replyBudget = ControlReplyBudget()
        /// Watching the server (`startKeepalive`); nil: no keepalive.
        var keepalive: Keepalive?
    }

    enum State {
        case connecting(Connecting)
        case authenticating(Authenticating)
        case ready(Ready)
        /// Ready, and no new connection comes: running streams finish, `.drained` follows the last one.
        case draining(Ready)
        /// Ended (aborted here, or the glue reported it closed): every later input is ignored.
        case closed
    }

    private(set) var state: State
    /// The streams of the ready and draining states, kept beside `state` (see `SessionStreams`).
    private var streams = SessionStreams()
    private var actions = Deque<ClientSessionAction>()

    /// An attempt starts: the SCTP association is being set up, and the attempt must authenticate by `deadline`.
    package init(streams settings: SessionStreamSettings, deadline: NIODeadline) {
        state = .connecting(Connecting(deadline: deadline, settings: settings))
    }

    /// The state's name for status: "connecting", "authenticating", "ready", "draining", "closed".
    package var phaseName: String {
        switch state {
        case .connecting: return "connecting"
        case .authenticating: return "authenticating"
        case .ready: return "ready"
        case .draining: return "draining"
        case .closed: return "closed"
        }
    }

    /// What the server said in HELLO (nil until authenticated, and once closed).
    package var hello: ControlMessage.Hello? {
        switch state {
        case .ready(let ready), .draining(let ready): return ready.hello
        case .connecting, .authenticating, .closed: return nil
        }
    }

    /// Whether the server authenticated and the association has not ended: its streams are up.
    package var isReady: Bool {
        switch state {
        case .ready, .draining: return true
        case .connecting, .authenticating, .closed: return false
        }
    }

    /// Whether the attempt or association ended.
    package var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    // MARK: - Output

    /// The next thing for the glue to do: the session's own actions, then its streams'.
    package mutating func pollAction() -> ClientSessionAction? {
        while true {
            if let action = actions.popFirst() { return action }
            switch streams.poll() {
            case nil: return nil
            case .stream(let action): return .stream(action)
            case .abort(let reason): abort(reason)
            case .drained: actions.append(.drained)
            }
        }
    }

    /// When `handleTimeout` must run next (nil: no timer): the attempt's deadline, then the streams' and the
    /// keepalive's.
    package var nextDeadline: NIODeadline? {
        switch state {
        case .connecting(let connecting): return connecting.deadline
        case .authenticating(let authenticating): return authenticating.deadline
        case .ready(let ready), .draining(let ready):
            return Self.earliest(streams.nextDeadline, ready.keepalive?.nextCheck)
        case .closed: return nil
        }
    }

    private static func earliest(_ a: NIODeadline?, _ b: NIODeadline?) -> NIODeadline? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    /// `nextDeadline` for a holder that keeps the session in a class property and asks after every input (see
    /// `StreamSession.readNextDeadline`).
    package mutating func readNextDeadline() -> NIODeadline? {
        switch state {
        case .connecting(let connecting): return connecting.deadline
        case .authenticating(let authenticating): return authenticating.deadline
        case .ready(let ready), .draining(let ready):
            return Self.earliest(streams.readNextDeadline(), ready.keepalive?.nextCheck)
        case .closed: return nil
        }
    }

    // MARK: - The streams, in place

    /// Runs `body` on the streams in place (no copy of the session's tables): the TCP side's inputs (connections
    /// opened, reads, input ended, writes completed, sockets gone) and what the glue keeps current. Nil, and
    /// `body` not run, until the server authenticated and once the association ended.
    package mutating func withStreams<R>(_ body: (inout StreamSession) -> R) -> R? {
        streams.with(body)
    }

    /// Runs `body` on the ready (or draining) state in place: while it runs, `state` holds no reference to it.
    private mutating func withReady<R>(_ body: (inout Ready) -> R) -> R? {
        switch state {
        case .ready(var ready):
            state = .closed
            defer { state = .ready(ready) }
            return body(&ready)
        case .draining(var ready):
            state = .closed
            defer { state = .draining(ready) }
            return body(&ready)
        case .connecting, .authenticating, .closed:
            return nil
        }
    }

    // MARK: - Input: the SCTP side

    /// The attempt's SCTP association is up with `outbound` and `inbound` streams: authentication starts with
    /// `authenticator` (the server group's key and a fresh nonce), HELLO is awaited.
    package mutating func handleEstablished(authenticator: ClientAuthenticator, outbound: UInt16, inbound: UInt16) {
        guard case .connecting(let connecting) = state else { return }
        state = .authenticating(
            Authenticating(
                authenticator: authenticator, deadline: connecting.deadline, outbound: outbound, inbound: inbound,
                settings: connecting.settings))
    }

    /// A control message from the server on stream 0.
    package mutating func handleControl(_ message: ControlMessage, now: NIODeadline) {
        switch state {
        case .connecting, .closed:
            return
        case .authenticating(var authenticating):
            let reply: ControlMessage?
            do {
                reply = try authenticating.authenticator.receive(message)
            } catch {
                fail("\(error)")
                return
            }
            if let reply { actions.append(.send(reply)) }
            guard authenticating.authenticator.isAuthenticated, let hello = authenticating.authenticator.hello else {
                state = .authenticating(authenticating)
                return
            }
            let settings = authenticating.settings
            var streams = StreamSession(
                role: .client,
                table: .client(
                    outboundStreams: authenticating.outbound, inboundStreams: authenticating.inbound,
                    maxStreams: hello.maxStreams, ownLimit: settings.streamLimit),
                receiveCredit: settings.streamCredit, sendCredit: hello.streamCredit,
                idleTimeout: settings.idleTimeout, openTimeout: settings.openTimeout,
                bufferedBytesLimit: settings.bufferedBytesLimit, logger: settings.logger, now: now)
            streams.metrics = settings.metrics
            streams.earlyReply = settings.earlyReply
            self.streams.start(streams)
            state = .ready(Ready(hello: hello))
            actions.append(.authenticated(hello))
        case .ready, .draining:
            // Once authenticated every control message says the server is alive; PINGs are answered within the
            // reply budget, anything else is ignored.
            heard(now: now)
            guard case .ping(let value) = message else { return }
            let mayReply = withReady { $0.replyBudget.mayReply(now: now.uptimeNanoseconds) } ?? false
            actions.append(mayReply ? .send(.pong(value)) : .pongRefused)
        }
    }

    /// A message on stream 0 that is not a UDP relay message: decoded and handled as a control message; one that
    /// does not decode ends an authentication under way (later ones are ignored). An agg message of another kind
    /// is ignored.
    package mutating func handleControlMessage(_ message: SCTPMessage, now: NIODeadline) {
        do {
            guard case .control(let control) = try AggMessage.decode(message) else { return }
            handleControl(control, now: now)
        } catch {
            handleUndecodableControl(error: "\(error)")
        }
    }

    /// A message on stream 0 that does not decode: it ends an authentication under way; later ones are ignored.
    package mutating func handleUndecodableControl(error: String) {
        guard case .authenticating = state else { return }
        fail(error)
    }

    /// Something authenticated came from the server (the glue saw its driver open a datagram since it last
    /// looked): it is alive. Ignored until ready.
    package mutating func handleHeard(now: NIODeadline) {
        guard isReady else { return }
        heard(now: now)
    }

    private mutating func heard(now: NIODeadline) {
        withReady { ready in
            ready.keepalive?.lastHeard = now
            ready.keepalive?.pingSent = nil
        }
        actions.append(.heard)
    }

    /// The association is the one in use and the client has several server groups (`ClientLinkAction.ready`):
    /// from `now` on its server is watched, with PINGs after a third of `serverTimeout` of silence and
    /// `.serverSilent` after all of it.
    package mutating func startKeepalive(serverTimeout: TimeAmount, now: NIODeadline) {
        withReady { $0.keepalive = Keepalive(serverTimeout: serverTimeout, lastHeard: now) }
    }

    /// The association is no longer the one in use (retired): its server is not watched any more.
    package mutating func stopKeepalive() {
        withReady { $0.keepalive = nil }
    }

    /// A message on stream 1 or above: the streams take it (none before AUTH-OK: it is dropped).
    package mutating func handleStreamMessage(_ message: SCTPMessage, now: NIODeadline) {
        withStreams { $0.handleMessage(message, now: now) }
    }

    /// The association closed (SHUTDOWN completed, ABORT, lost), or the glue ended it for a reason of its own (the
    /// link gave it up, the client stops): the streams' sockets are reset and pending opens fail (`.stream`
    /// actions), and every later input is ignored.
    package mutating func handleClosed() {
        closeStreams()
        state = .closed
    }

    // MARK: - Input: draining and time

    /// No new connection comes (the client stops, or a more preferred server took over): running streams finish
    /// and `.drained` follows once none is left (at once when none is open). An attempt not yet ready has no
    /// streams to wait for: this leaves it as it is.
    package mutating func handleDrain() {
        guard case .ready(let ready) = state else { return }
        streams.with { $0.handleDrain() }
        state = .draining(ready)
    }

    /// Runs what is due at `now`: the attempt's deadline, or the streams' timers and the keepalive.
    package mutating func handleTimeout(now: NIODeadline) {
        switch state {
        case .connecting(let connecting):
            if connecting.deadline <= now { abort("handshake timed out") }
        case .authenticating(let authenticating):
            if authenticating.deadline <= now { abort("handshake timed out") }
        case .ready, .draining:
            withStreams { $0.handleTimeout(now: now) }
            checkKeepalive(now: now)
        case .closed:
            break
        }
    }

    /// The server silent for `serverTimeout`: `.serverSilent` (once); silent for a third of it since it was last
    /// heard or pinged: a PING.
    private mutating func checkKeepalive(now: NIODeadline) {
        let outcome = withReady { ready -> ClientSessionAction? in
            guard var keepalive = ready.keepalive else { return nil }
            if now >= keepalive.lastHeard + keepalive.serverTimeout {
                ready.keepalive = nil
                return .serverSilent
            }
            guard now >= max(keepalive.lastHeard, keepalive.pingSent ?? keepalive.lastHeard) + keepalive.pingInterval
            else { return nil }
            let value = keepalive.nextPing
            keepalive.nextPing &+= 1
            keepalive.pingSent = now
            ready.keepalive = keepalive
            return .send(.ping(value))
        }
        guard let action = outcome ?? nil else { return }
        actions.append(action)
        if case .send = action { actions.append(.awaitingPong) }
    }

    // MARK: - Transitions

    private mutating func fail(_ error: String) {
        actions.append(.authenticationFailed(error))
        abort("authentication failed")
    }

    /// Ends the association: the streams' sockets are reset and their actions queued before `.abort`.
    private mutating func abort(_ reason: String) {
        closeStreams()
        state = .closed
        actions.append(.abort(reason: reason))
    }

    /// The streams are lost: what they still ask, and the resets of their sockets, go to the glue.
    private mutating func closeStreams() {
        for action in streams.close() { actions.append(.stream(action)) }
    }
}
