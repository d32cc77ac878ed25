import AggProtocol
import Crypto
import Testing

@Suite struct AuthenticationTests {
    static let key = PreSharedKey(name: "laptop", key: Array(repeating: 0x42, count: 32))
    static let challenge: [UInt8] = Array(0..<32)
    static let nonce: [UInt8] = Array(100..<132)

    static func lookup(_ name: String) -> PreSharedKey? { name == key.name ? key : nil }

    @Test func exchangeAuthenticatesBothSides() throws {
        var server = ServerAuthenticator(challenge: Self.challenge, maxStreams: 1024, streamCredit: 65536)
        var client = ClientAuthenticator(key: Self.key, nonce: Self.nonce)
        #expect(!server.mayAcceptStreams)
        let auth = try #require(try client.receive(.hello(server.hello)))
        let ok = try #require(try server.receive(auth, lookup: Self.lookup))
        #expect(server.state == .authenticated(keyName: "laptop"))
        #expect(try client.receive(ok) == nil)
        #expect(client.isAuthenticated && server.mayAcceptStreams)
        #expect(client.hello?.streamCredit == 65536)
        #expect(try server.receive(.ping(9), lookup: Self.lookup) == .pong(9))
        #expect(try client.receive(.ping(3)) == .pong(3))
    }

    @Test func clientMACIsHMACOfLabelChallengeAndNonce() {
        let expected = HMAC<SHA256>.authenticationCode(
            for: Array("agg-auth-v1".utf8) + Self.challenge + Self.nonce, using: SymmetricKey(data: Self.key.key))
        #expect(AuthMAC.client(key: Self.key.key, challenge: Self.challenge, nonce: Self.nonce) == Array(expected))
        #expect(
            AuthMAC.server(key: Self.key.key, challenge: Self.challenge, nonce: Self.nonce)
                != AuthMAC.client(key: Self.key.key, challenge: Self.challenge, nonce: Self.nonce))
    }

    @Test func wrongKeyIsRefused() throws {
        var server = ServerAuthenticator(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        var client = ClientAuthenticator(
            key: PreSharedKey(name: "laptop", key: Array(repeating: 1, count: 32)),
            nonce: Self.nonce)
        let auth = try #require(try client.receive(.hello(server.hello)))
        #expect(throws: AuthError.badMAC(keyName: "laptop")) { try server.receive(auth, lookup: Self.lookup) }
        #expect(!server.mayAcceptStreams)
    }

    @Test func unknownKeyNameIsRefused() throws {
        var server = ServerAuthenticator(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        var client = ClientAuthenticator(key: PreSharedKey(name: "other", key: Self.key.key), nonce: Self.nonce)
        let auth = try #require(try client.receive(.hello(server.hello)))
        #expect(throws: AuthError.unknownKey("other")) { try server.receive(auth, lookup: Self.lookup) }
    }

    @Test func replayedAuthFailsAgainstAFreshChallenge() throws {
        let first = ServerAuthenticator(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        var client = ClientAuthenticator(key: Self.key, nonce: Self.nonce)
        let auth = try #require(try client.receive(.hello(first.hello)))
        var second = ServerAuthenticator(challenge: Array(repeating: 9, count: 32), maxStreams: 1, streamCredit: 1)
        #expect(throws: AuthError.badMAC(keyName: "laptop")) { try second.receive(auth, lookup: Self.lookup) }
    }

    @Test func forgedServerProofIsRefused() throws {
        var client = ClientAuthenticator(key: Self.key, nonce: Self.nonce)
        let hello = ControlMessage.Hello(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        let auth = try #require(try client.receive(.hello(hello)))
        guard case .auth(let message) = auth else {
            Issue.record("expected AUTH")
            return
        }
        // Reflecting the client's own MAC back must not pass as the server's proof.
        #expect(throws: AuthError.badServerProof) { try client.receive(.authOK(proof: message.mac)) }
        #expect(!client.isAuthenticated)
    }

    @Test func streamsBeforeAuthOKAreRefused() {
        var server = ServerAuthenticator(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        #expect(throws: AuthError.streamBeforeAuthentication) { try server.checkStreamAllowed() }
        #expect(server.state == .failed(.streamBeforeAuthentication))
    }

    @Test func outOfOrderControlMessagesAreRefused() throws {
        var server = ServerAuthenticator(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        #expect(throws: AuthError.unexpected(.ping)) { try server.receive(.ping(1), lookup: Self.lookup) }
        var client = ClientAuthenticator(key: Self.key, nonce: Self.nonce)
        #expect(throws: AuthError.unexpected(.authOK)) {
            try client.receive(.authOK(proof: Array(repeating: 0, count: 32)))
        }
        var other = ClientAuthenticator(key: Self.key, nonce: Self.nonce)
        #expect(throws: AuthError.badChallenge) {
            try other.receive(.hello(ControlMessage.Hello(challenge: [1], maxStreams: 1, streamCredit: 1)))
        }
        var twice = ClientAuthenticator(key: Self.key, nonce: Self.nonce)
        let hello = ControlMessage.Hello(challenge: Self.challenge, maxStreams: 1, streamCredit: 1)
        _ = try twice.receive(.hello(hello))
        #expect(throws: AuthError.unexpected(.hello)) { try twice.receive(.hello(hello)) }
    }

    @Test func keyDescriptionNeverShowsTheKey() {
        #expect(Self.key.description == "PreSharedKey(laptop)")
    }
}
