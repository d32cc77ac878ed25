import Crypto

/// The MACs of the HELLO/AUTH exchange on stream 0.
///
/// - client MAC = HMAC-SHA256(key, "agg-auth-v1" | challenge | nonce)
/// - server proof = HMAC-SHA256(key, "agg-auth-v1-server" | challenge | nonce)
///
/// The two labels differ, so a server cannot replay the client's MAC as its proof, and the server's fresh
/// challenge stops a recorded AUTH from being replayed to another association.
public enum AuthMAC {
    public static let clientLabel = Array("agg-auth-v1".utf8)
    public static let serverLabel = Array("agg-auth-v1-server".utf8)

    public static func client(key: [UInt8], challenge: [UInt8], nonce: [UInt8]) -> [UInt8] {
        mac(key: key, label: clientLabel, challenge: challenge, nonce: nonce)
    }

    public static func server(key: [UInt8], challenge: [UInt8], nonce: [UInt8]) -> [UInt8] {
        mac(key: key, label: serverLabel, challenge: challenge, nonce: nonce)
    }

    /// Constant-time comparison of two MACs.
    public static func isEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    private static func mac(key: [UInt8], label: [UInt8], challenge: [UInt8], nonce: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: key))
        for part in [label, challenge, nonce] {
            part.withUnsafeBytes { hmac.update(data: $0) }
        }
        return hmac.finalize().withUnsafeBytes { Array($0) }
    }
}

/// Why authentication failed. The server closes the association (ABORT) on any of them.
public enum AuthError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownKey(String)
    case badMAC(keyName: String)
    /// A message that is not allowed at this point of the exchange (a second AUTH, AUTH-OK before AUTH, …).
    case unexpected(AggMessageKind)
    /// A stream message arrived before AUTH-OK.
    case streamBeforeAuthentication
    /// The server's AUTH-OK proof does not match our key: it is not the server we share the key with.
    case badServerProof
    /// HELLO's challenge has the wrong length.
    case badChallenge

    public var description: String {
        switch self {
        case .unknownKey(let name): return "unknown key name \"\(name)\""
        case .badMAC(let name): return "wrong MAC for key \"\(name)\""
        case .unexpected(let kind): return "unexpected \(kind) during authentication"
        case .streamBeforeAuthentication: return "stream message before AUTH-OK"
        case .badServerProof: return "server proof does not match the key"
        case .badChallenge: return "HELLO challenge has the wrong length"
        }
    }
}

/// The server's half of authentication: sends HELLO, checks AUTH, answers AUTH-OK. Pure: the challenge comes in.
///
/// Stream messages that arrive before the client is authenticated are refused by closing the association
/// (`mayAcceptStreams` is false): an honest client holds its connections until AUTH-OK, so such a message is
/// either a bug or an attack, and no state is spent on it.
public struct ServerAuthenticator: Sendable {
    public enum State: Equatable, Sendable {
        case awaitingAuth
        case authenticated(keyName: String)
        case failed(AuthError)
    }

    public private(set) var state: State = .awaitingAuth
    public let hello: ControlMessage.Hello

    public init(challenge: [UInt8], maxStreams: UInt16, streamCredit: UInt32) {
        hello = ControlMessage.Hello(challenge: challenge, maxStreams: maxStreams, streamCredit: streamCredit)
    }

    public var mayAcceptStreams: Bool {
        if case .authenticated = state { return true }
        return false
    }

    /// Handles a control message from the client; returns the reply to send, if any.
    /// `lookup` finds a key by name. On a thrown error the caller aborts the association.
    public mutating func receive(
        _ message: ControlMessage, lookup: (String) -> PreSharedKey?
    ) throws(AuthError) -> ControlMessage? {
        switch (state, message) {
        case (.awaitingAuth, .auth(let auth)):
            guard let key = lookup(auth.keyName) else { return try fail(.unknownKey(auth.keyName)) }
            let expected = AuthMAC.client(key: key.key, challenge: hello.challenge, nonce: auth.nonce)
            guard AuthMAC.isEqual(expected, auth.mac) else { return try fail(.badMAC(keyName: auth.keyName)) }
            state = .authenticated(keyName: auth.keyName)
            return .authOK(proof: AuthMAC.server(key: key.key, challenge: hello.challenge, nonce: auth.nonce))
        case (.authenticated, .ping(let value)):
            return .pong(value)
        case (.authenticated, .pong):
            return nil
        case (.awaitingAuth, _), (.authenticated, _), (.failed, _):
            return try fail(.unexpected(message.kind))
        }
    }

    /// Checks that a stream message may be processed; throws (and the caller aborts) before AUTH-OK.
    public mutating func checkStreamAllowed() throws(AuthError) {
        guard mayAcceptStreams else {
            state = .failed(.streamBeforeAuthentication)
            throw .streamBeforeAuthentication
        }
    }

    private mutating func fail(_ error: AuthError) throws(AuthError) -> ControlMessage? {
        state = .failed(error)
        throw error
    }
}

/// The client's half of authentication: answers HELLO with AUTH and verifies the server's proof in AUTH-OK.
/// Until `isAuthenticated`, the client holds new connections and sends no OPEN.
public struct ClientAuthenticator: Sendable {
    public enum State: Equatable, Sendable {
        case awaitingHello
        case awaitingAuthOK(ControlMessage.Hello)
        case authenticated(ControlMessage.Hello)
        case failed(AuthError)
    }

    public private(set) var state: State = .awaitingHello
    public let key: PreSharedKey
    private let nonce: [UInt8]

    /// `nonce` is `AggLimits.authFieldLength` fresh random bytes.
    public init(key: PreSharedKey, nonce: [UInt8]) {
        self.key = key
        self.nonce = nonce
    }

    public var isAuthenticated: Bool {
        if case .authenticated = state { return true }
        return false
    }

    /// The server's limits, once HELLO arrived.
    public var hello: ControlMessage.Hello? {
        switch state {
        case .awaitingAuthOK(let hello), .authenticated(let hello): return hello
        case .awaitingHello, .failed: return nil
        }
    }

    /// Handles a control message from the server; returns the reply to send, if any.
    /// On a thrown error the caller aborts the association.
    public mutating func receive(_ message: ControlMessage) throws(AuthError) -> ControlMessage? {
        switch (state, message) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.challenge.count == AggLimits.authFieldLength else { return try fail(.badChallenge) }
            state = .awaitingAuthOK(hello)
            let mac = AuthMAC.client(key: key.key, challenge: hello.challenge, nonce: nonce)
            return .auth(ControlMessage.Auth(keyName: key.name, nonce: nonce, mac: mac))
        case (.awaitingAuthOK(let hello), .authOK(let proof)):
            let expected = AuthMAC.server(key: key.key, challenge: hello.challenge, nonce: nonce)
            guard AuthMAC.isEqual(expected, proof) else { return try fail(.badServerProof) }
            state = .authenticated(hello)
            return nil
        case (.authenticated, .ping(let value)):
            return .pong(value)
        case (.authenticated, .pong):
            return nil
        case (.awaitingHello, _), (.awaitingAuthOK, _), (.authenticated, _), (.failed, _):
            return try fail(.unexpected(message.kind))
        }
    }

    private mutating func fail(_ error: AuthError) throws(AuthError) -> ControlMessage? {
        state = .failed(error)
        throw error
    }
}
