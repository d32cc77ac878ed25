import NIOCore

/// What a `ServerAssociation` asks its glue to do, in order.
package enum ServerAssociationAction: Equatable, Sendable {
    /// Send a control message (HELLO, AUTH-OK, PONG) on the association's stream 0.
    case send(ControlMessage)
    /// The client proved key `keyName`: start the association's stream session and UDP relay.
    case authenticated(keyName: String)
    /// The client failed to authenticate (counted); an `.abort` follows.
    case authenticationFailed(String)
    /// A PONG was not sent: the client's PINGs came faster than `ControlReplyBudget` allows.
    case pongRefused
    /// End the association (ABORT) and cut its streams and flows; the machine is closed already.
    case abort(reason: String)
}

/// One client's association on aggserver, from its SCTP association being up to its end, sans-IO: HELLO goes out
/// at once, the client has `authenticationTimeout` to prove a key with AUTH (an encrypted association only the
/// key that opened its datagrams), and until AUTH-OK no stream or UDP message is allowed (PROTOCOL.md,
/// "Authentication": such a message closes the association); once ready it answers PINGs within its reply budget.
/// Control messages, `now` and the glue's reports go in; `ServerAssociationAction`s come out (`pollAction`), and
/// `nextDeadline` tells the glue when to call `handleTimeout`. The streams themselves are `StreamSession`'s.
package struct ServerAssociation: Sendable {
    /// Waiting for AUTH.
    struct Authenticating: Sendable {
        var authenticator: ServerAuthenticator
        /// When the association is ended unless the client authenticated.
        let deadline: NIODeadline
    }

    /// Authenticated: streams and UDP flows are allowed.
    struct Ready: Sendable {
        var authenticator: ServerAuthenticator
        let keyName: String
        /// PONGs the client's PINGs may still get (`AggLimits.controlReplyBurst`).
        var replyBudget = ControlReplyBudget()
    }

    enum State: Sendable {
        case authenticating(Authenticating)
        case ready(Ready)
        /// Ended (aborted here, or the glue reported it closed): every later input is ignored.
        case closed
    }

    private(set) var state: State
    /// The key an encrypted association's datagrams were opened with: the only key its AUTH may name (nil in
    /// plaintext: any key).
    package let datagramKeyName: String?
    private var actions: [ServerAssociationAction] = []

    /// The association is up: HELLO (with `challenge`, the stream limit and credit) is queued, and the client has
    /// until `now + authenticationTimeout` to authenticate.
    package init(
        challenge: [UInt8], maxStreams: UInt16, streamCredit: UInt32, datagramKeyName: String?,
        authenticationTimeout: TimeAmount, now: NIODeadline
    ) {
        let authenticator = ServerAuthenticator(
            challenge: challenge, maxStreams: maxStreams, streamCredit: streamCredit)
        self.datagramKeyName = datagramKeyName
        state = .authenticating(Authenticating(authenticator: authenticator, deadline: now + authenticationTimeout))
        actions.append(.send(.hello(authenticator.hello)))
    }

    /// The key the client proved (nil while it authenticates, and once closed).
    package var keyName: String? {
        if case .ready(let ready) = state { return ready.keyName }
        return nil
    }

    /// Whether the client authenticated and the association has not ended.
    package var isReady: Bool { keyName != nil }

    /// Whether the association ended.
    package var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    // MARK: - Output

    /// The next thing for the glue to do.
    package mutating func pollAction() -> ServerAssociationAction? {
        actions.isEmpty ? nil : actions.removeFirst()
    }

    /// When `handleTimeout` must run next (nil: no timer).
    package var nextDeadline: NIODeadline? {
        if case .authenticating(let authenticating) = state { return authenticating.deadline }
        return nil
    }

    // MARK: - Input

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
            state = .ready(Ready(authenticator: authenticating.authenticator, keyName: name))
            actions.append(.authenticated(keyName: name))
        case .ready(var ready):
            let reply: ControlMessage?
            do {
                reply = try ready.authenticator.receive(message) { _ in nil }
            } catch {
                fail("\(error)")
                return
            }
            if let reply {
                if case .pong = reply, !ready.replyBudget.mayReply(now: now.uptimeNanoseconds) {
                    actions.append(.pongRefused)
                } else {
                    actions.append(.send(reply))
                }
            }
            state = .ready(ready)
        }
    }

    /// A message on stream 0 that does not decode: the association ends, as on a failed authentication.
    package mutating func handleUndecodableControl(error: String) {
        guard !isClosed else { return }
        fail(error)
    }

    /// A message on stream 1 or above. Returns whether the streams may take it; before AUTH-OK the association
    /// ends instead (PROTOCOL.md: "a stream message before AUTH-OK closes the association").
    package mutating func mayReceiveStreamMessage() -> Bool {
        guard case .authenticating = state else { return isReady }
        abort("stream message before AUTH-OK")
        return false
    }

    /// A UDP relay message on stream 0. Returns whether the relay may take it; before AUTH-OK the association ends
    /// instead, as for a stream message.
    package mutating func mayReceiveUDPMessage() -> Bool {
        guard case .authenticating = state else { return isReady }
        abort("UDP message before AUTH-OK")
        return false
    }

    /// The association closed (SHUTDOWN completed, ABORT, lost), or the glue ended it for a reason of its own (the
    /// key's association limit, its key revoked, the streams' fatal error, idleness): every later input is ignored.
    package mutating func handleClosed() {
        state = .closed
    }

    /// Runs what is due at `now`: the authentication deadline.
    package mutating func handleTimeout(now: NIODeadline) {
        guard case .authenticating(let authenticating) = state, authenticating.deadline <= now else { return }
        abort("not authenticated in time")
    }

    // MARK: - Transitions

    private mutating func fail(_ error: String) {
        actions.append(.authenticationFailed(error))
        abort("authentication: \(error)")
    }

    private mutating func abort(_ reason: String) {
        state = .closed
        actions.append(.abort(reason: reason))
    }
}
