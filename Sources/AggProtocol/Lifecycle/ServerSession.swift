import DequeModule
import Logging
import NIOCore
import SCTPEngine

/// What a `ServerSession` asks its glue to do, in order.
package enum ServerSessionAction: Equatable {
    /// Send a control message (HELLO, AUTH-OK, PONG) on the association's stream 0.
    case send(ControlMessage)
    /// The client proved key `keyName`; the session's streams are up (the glue starts its UDP relay and hosts the
    /// streams' sockets).
    case authenticated(keyName: String)
    /// The client failed to authenticate (counted); an `.abort` follows.
    case authenticationFailed(String)
    /// A PONG was not sent: the client's PINGs came faster than `ControlReplyBudget` allows.
    case pongRefused
    /// Draining (`handleDrain`) and the last stream is free: the association may shut down. Reported once.
    case drained
    /// End the association (ABORT) and cut its flows; the session is closed already and its streams' sockets
    /// were closed by the `.stream` actions before this one.
    case abort(reason: String)
    /// What the association's streams ask (`StreamSessionAction`): the glue performs it on the TCP sockets and the
    /// association. Never `.abortAssociation` or `.drained`: the session turns those into `.abort` and `.drained`.
    case stream(StreamSessionAction)
}

/// One client's association on aggserver, from its SCTP association being up to its end, sans-IO: its lifecycle
/// and its streams in one state machine.
///
/// HELLO goes out at once, the client has `authenticationTimeout` to prove a key with AUTH (an encrypted
/// association only the key that opened its datagrams), and until AUTH-OK no stream or UDP message is allowed
/// (PROTOCOL.md, "Authentication": such a message closes the association). AUTH-OK starts the association's
/// `StreamSession`; once ready the session answers PINGs within its reply budget and relays streams until it is
/// closed, or, draining (`handleDrain`), until its last stream ends (`.drained`).
///
/// Inputs: the SCTP side (`handleControlMessage`, `handleStreamMessage`, `handleUDPMessage`, `handleClosed`), the
/// TCP side (the streams' own inputs, reached in place through `withStreams`), `handleDrain` and
/// `handleTimeout(now:)`. Outputs: `ServerSessionAction`s (`pollAction`), the streams' included, and one
/// `nextDeadline`, the earlier of the authentication deadline and the streams'.
package struct ServerSession {
    /// Waiting for AUTH.
    struct Authenticating {
        var authenticator: ServerAuthenticator
        /// When the association is ended unless the client authenticated.
        let deadline: NIODeadline
        /// The streams' parameters, for when the client authenticated.
        let settings: SessionStreamSettings
    }

    /// Authenticated: streams and UDP flows are allowed.
    struct Ready {
        var authenticator: ServerAuthenticator
        let keyName: String
        /// PONGs the client's PINGs may still get (`AggLimits.controlReplyBurst`).
        var replyBudget = ControlReplyBudget()
    }

    enum State {
        case authenticating(Authenticating)
        case ready(Ready)
        /// Ready, and the daemon is stopping: running streams finish, `.drained` follows the last one.
        case draining(Ready)
        /// Ended (aborted here, or the glue reported it closed): every later input is ignored.
        case closed
    }

    private(set) var state: State
    /// The streams of the ready and draining states, kept beside `state` (see `SessionStreams`).
    private var streams = SessionStreams()
    /// The key an encrypted association's datagrams were opened with: the only key its AUTH may name (nil in
    /// plaintext: any key).
    package let datagramKeyName: String?
    private var actions = Deque<ServerSessionAction>()

    /// The association is up: HELLO (with `challenge`, the stream limit and credit of `streams`) is queued, and
    /// the client has until `now + authenticationTimeout` to authenticate.
    package init(
        challenge: [UInt8], streams settings: SessionStreamSettings, datagramKeyName: String?,
        authenticationTimeout: TimeAmount, now: NIODeadline
    ) {
        let authenticator = ServerAuthenticator(
            challenge: challenge, maxStreams: UInt16(clamping: settings.streamLimit),
            streamCredit: settings.streamCredit)
        self.datagramKeyName = datagramKeyName
        state = .authenticating(
            Authenticating(authenticator: authenticator, deadline: now + authenticationTimeout, settings: settings))
        actions.append(.send(.hello(authenticator.hello)))
    }

    /// The key the client proved (nil while it authenticates, and once closed).
    package var keyName: String? {
        switch state {
        case .ready(let ready), .draining(let ready): return ready.keyName
        case .authenticating, .closed: return nil
        }
    }

    /// Whether the client authenticated and the association has not ended: its streams are up.
    package var isReady: Bool {
        switch state {
        case .ready, .draining: return true
        case .authenticating, .closed: return false
        }
    }

    /// Whether the association ended.
    package var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    // MARK: - Output

    /// The next thing for the glue to do: the session's own actions, then its streams'.
    package mutating func pollAction() -> ServerSessionAction? {
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

    /// When `handleTimeout` must run next (nil: no timer): the authentication deadline, then the streams'.
    package var nextDeadline: NIODeadline? {
        switch state {
        case .authenticating(let authenticating): return authenticating.deadline
        case .ready, .draining: return streams.nextDeadline
        case .closed: return nil
        }
    }

    /// `nextDeadline` for a holder that keeps the session in a class property and asks after every input (see
    /// `StreamSession.readNextDeadline`).
    package mutating func readNextDeadline() -> NIODeadline? {
        switch state {
        case .authenticating(let authenticating): return authenticating.deadline
        case .ready, .draining: return streams.readNextDeadline()
        case .closed: return nil
        }
    }

    // MARK: - The streams, in place

    /// Runs `body` on the streams in place (no copy of the session's tables): the TCP side's inputs (reads, input
    /// ended, writes completed, targets connected or failed, sockets gone) and what the glue keeps current. Nil,
    /// and `body` not run, while the client authenticates and once the association ended.
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
        case .authenticating, .closed:
            return nil
        }
    }

    // MARK: - Input: the SCTP side

    /// A control message from the client on stream 0. `lookup` finds a key by name in the server's key table.
    package mutating func handleControl(
        _ message: ControlMessage, now: NIODeadline, lookup: (String) -> PreSharedKey?
    ) {
        switch state {
        case .closed:
            return
        case .authenticating(var authenticating):
            // An encrypted association may only prove the key that opened its datagrams.
            let required = datagramKeyName
            let reply: ControlMessage?
            do {
                reply = try authenticating.authenticator.receive(message) { name in
                    required == nil || required == name ? lookup(name) : nil
                }
            } catch {
                fail("\(error)")
                return
            }
            if let reply { actions.append(.send(reply)) }
            guard case .authenticated(let name) = authenticating.authenticator.state else {
                state = .authenticating(authenticating)
                return
            }
            let settings = authenticating.settings
            var streams = StreamSession(
                role: .server, table: StreamTable(limit: settings.streamLimit),
                receiveCredit: settings.streamCredit, sendCredit: 0, idleTimeout: settings.idleTimeout,
                associationIdleTimeout: settings.associationIdleTimeout,
                bufferedBytesLimit: settings.bufferedBytesLimit, logger: settings.logger, now: now)
            streams.metrics = settings.metrics
            self.streams.start(streams)
            state = .ready(Ready(authenticator: authenticating.authenticator, keyName: name))
            actions.append(.authenticated(keyName: name))
        case .ready, .draining:
            // Once authenticated: PINGs are answered within the reply budget; anything out of order ends it.
            let outcome = withReady { ready -> Result<ServerSessionAction?, AuthError> in
                let reply: ControlMessage?
                do throws(AuthError) {
                    reply = try ready.authenticator.receive(message, lookup: { _ in nil })
                } catch {
                    return .failure(error)
                }
                guard let reply else { return .success(nil) }
                if case .pong = reply, !ready.replyBudget.mayReply(now: now.uptimeNanoseconds) {
                    return .success(.pongRefused)
                }
                return .success(.send(reply))
            }
            switch outcome {
            case .success(let action?)?: actions.append(action)
            case .failure(let error)?: fail("\(error)")
            case .success(nil)?, nil: break
            }
        }
    }

    /// A message on stream 0 that is not a UDP relay message: decoded and handled as a control message; one that
    /// does not decode ends the association, as a failed authentication does. An agg message of another kind is
    /// ignored.
    package mutating func handleControlMessage(
        _ message: SCTPMessage, now: NIODeadline, lookup: (String) -> PreSharedKey?
    ) {
        do {
            guard case .control(let control) = try AggMessage.decode(message) else { return }
            handleControl(control, now: now, lookup: lookup)
        } catch {
            handleUndecodableControl(error: "\(error)")
        }
    }

    /// A message on stream 0 that does not decode: the association ends, as on a failed authentication.
    package mutating func handleUndecodableControl(error: String) {
        guard !isClosed else { return }
        fail(error)
    }

    /// A message on stream 1 or above: the streams take it; before AUTH-OK the association ends instead
    /// (PROTOCOL.md: "a stream message before AUTH-OK closes the association").
    package mutating func handleStreamMessage(_ message: SCTPMessage, now: NIODeadline) {
        if case .authenticating = state {
            abort("stream message before AUTH-OK")
            return
        }
        withStreams { $0.handleMessage(message, now: now) }
    }

    /// A UDP relay message on stream 0. Returns whether the relay may take it (the association's idle clock starts
    /// again); before AUTH-OK the association ends instead, as for a stream message.
    package mutating func handleUDPMessage(now: NIODeadline) -> Bool {
        if case .authenticating = state {
            abort("UDP message before AUTH-OK")
            return false
        }
        return withStreams { $0.restartIdleClock(now: now) } != nil
    }

    /// The association closed (SHUTDOWN completed, ABORT, lost), or the glue ended it for a reason of its own (the
    /// key's association limit, its key revoked, idleness): the streams' sockets are reset (`.stream` actions) and
    /// every later input is ignored.
    package mutating func handleClosed() {
        closeStreams()
        state = .closed
    }

    // MARK: - Input: draining and time

    /// The daemon is stopping: running streams finish and `.drained` follows once none is left (at once when none
    /// is open). An association still authenticating has no streams to wait for: the glue's `GracefulStop` shuts
    /// it down at once, and this leaves it as it is.
    package mutating func handleDrain() {
        guard case .ready(let ready) = state else { return }
        streams.with { $0.handleDrain() }
        state = .draining(ready)
    }

    /// Runs what is due at `now`: the authentication deadline, or the streams' timers.
    package mutating func handleTimeout(now: NIODeadline) {
        switch state {
        case .authenticating(let authenticating):
            if authenticating.deadline <= now { abort("not authenticated in time") }
        case .ready, .draining:
            withStreams { $0.handleTimeout(now: now) }
        case .closed:
            break
        }
    }

    // MARK: - Transitions

    private mutating func fail(_ error: String) {
        actions.append(.authenticationFailed(error))
        abort("authentication: \(error)")
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
