import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// `ClientSession` alone: what PROTOCOL.md's "Authentication" requires of the client.
@Suite struct ClientSessionTests {
    static let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let challenge = [UInt8](repeating: 1, count: AggLimits.authFieldLength)
    static let hello = ControlMessage.Hello(challenge: challenge, maxStreams: 10, streamCredit: 1024)

    static let key = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 5 &+ 1 })
    static let otherKey = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 3 &+ 7 })

    static var streams: ClientStreamSettings {
        ClientStreamSettings(
            streamLimit: 100, streamCredit: 64 * 1024, idleTimeout: .seconds(300), openTimeout: .seconds(10),
            bufferedBytesLimit: 64 * 1024 * 1024, logger: LockstepSide.logger)
    }

    /// An OPEN on stream 1, as the server would never send it.
    static let open = SessionLockstepTests.sctp(
        .open(SessionLockstepTests.target, initialCredit: 1024), StreamID(1))

    static func actions(_ session: inout ClientSession) -> [ClientSessionAction] {
        var all: [ClientSessionAction] = []
        while let action = session.pollAction() { all.append(action) }
        return all
    }

    /// A session whose SCTP association is up, HELLO answered with AUTH.
    static func authenticating(key: PreSharedKey = ClientSessionTests.key) -> ClientSession {
        var session = ClientSession(streams: Self.streams, deadline: now + .seconds(10))
        session.handleEstablished(
            authenticator: ClientAuthenticator(
                key: key, nonce: [UInt8](repeating: 2, count: AggLimits.authFieldLength)),
            outbound: 100, inbound: 100)
        session.handleControl(.hello(hello), now: now)
        guard case .send(.auth)? = actions(&session).first else {
            Issue.record("no AUTH")
            return session
        }
        return session
    }

    /// The server's AUTH-OK for `authenticating()`'s AUTH.
    static var authOK: ControlMessage {
        var server = ServerAuthenticator(challenge: challenge, maxStreams: 10, streamCredit: 1024)
        var client = ClientAuthenticator(
            key: Self.key, nonce: [UInt8](repeating: 2, count: AggLimits.authFieldLength))
        let auth = try! client.receive(.hello(hello))!
        return try! server.receive(auth) { $0 == Self.key.name ? Self.key : nil }!
    }

    static func ready() -> ClientSession {
        var session = authenticating()
        session.handleControl(authOK, now: now)
        #expect(actions(&session) == [.authenticated(hello)])
        return session
    }

    @Test func aWrongServerProofFailsTheAuthentication() {
        var session = Self.authenticating(key: Self.otherKey)
        session.handleControl(Self.authOK, now: Self.now)
        #expect(
            Self.actions(&session) == [
                .authenticationFailed("\(AuthError.badServerProof)"), .abort(reason: "authentication failed"),
            ])
        #expect(session.isClosed && session.nextDeadline == nil)
    }

    @Test func anUndecodableControlMessageFailsTheAuthenticationButNotAReadySession() {
        var session = Self.authenticating()
        session.handleUndecodableControl(error: "truncated")
        #expect(
            Self.actions(&session) == [.authenticationFailed("truncated"), .abort(reason: "authentication failed")])
        var ready = Self.ready()
        ready.handleUndecodableControl(error: "truncated")
        #expect(Self.actions(&ready).isEmpty)
        #expect(ready.isReady)
    }

    @Test func theAttemptsDeadlineHoldsUntilReady() {
        var connecting = ClientSession(streams: Self.streams, deadline: Self.now + .seconds(10))
        connecting.handleTimeout(now: Self.now + .milliseconds(9_999))
        #expect(Self.actions(&connecting).isEmpty)
        connecting.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&connecting) == [.abort(reason: "handshake timed out")])
        var authenticating = Self.authenticating()
        authenticating.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&authenticating) == [.abort(reason: "handshake timed out")])
        var ready = Self.ready()
        ready.handleTimeout(now: Self.now + .seconds(10))
        #expect(Self.actions(&ready).isEmpty)
        #expect(ready.nextDeadline == Self.now + .seconds(30), "the streams' sweep")
    }

    @Test func aStreamMessageBeforeReadyIsDropped() {
        var session = Self.authenticating()
        session.handleStreamMessage(Self.open, now: Self.now)
        #expect(Self.actions(&session).isEmpty)
        #expect(session.phaseName == "authenticating")
    }

    @Test func pingsAreAnsweredWithinTheReplyBudgetAndEveryControlMessageIsHeard() {
        var session = Self.ready()
        var answered = 0
        var refused = 0
        var heard = 0
        for value in 0..<UInt64(AggLimits.controlReplyBurst + 5) {
            session.handleControl(.ping(value), now: Self.now)
            for action in Self.actions(&session) {
                if case .send(.pong(value)) = action { answered += 1 }
                if action == .pongRefused { refused += 1 }
                if action == .heard { heard += 1 }
            }
        }
        #expect(answered == AggLimits.controlReplyBurst)
        #expect(refused == 5)
        #expect(heard == AggLimits.controlReplyBurst + 5)
        // A PONG (the server's answer to the link's PING) is heard, not answered.
        session.handleControl(.pong(1), now: Self.now)
        #expect(Self.actions(&session) == [.heard])
    }
}
