import NIOCore
import SCTPEngine

/// One message on stream 0, the control stream: authentication and liveness. Its codec as a pure value type.
public enum ControlMessage: Equatable, Sendable {
    /// Server → client, first message after establishment: a fresh random challenge and the limits that apply.
    case hello(Hello)
    /// Client → server: the answer to HELLO.
    case auth(Auth)
    /// Server → client: the client is authenticated; `proof` shows the server holds the same key.
    case authOK(proof: [UInt8])
    /// Liveness probe; the peer answers with PONG carrying the same value. May be unordered.
    case ping(UInt64)
    case pong(UInt64)

    /// The server's greeting.
    public struct Hello: Equatable, Sendable {
        public var version: UInt8
        /// `AggLimits.authFieldLength` random bytes, fresh for every association.
        public var challenge: [UInt8]
        /// The most streams the client may have open at once.
        public var maxStreams: UInt16
        /// The credit every new stream starts with for client → server DATA (the server's receive window).
        public var streamCredit: UInt32

        public init(version: UInt8 = AggLimits.version, challenge: [UInt8], maxStreams: UInt16, streamCredit: UInt32) {
            self.version = version
            self.challenge = challenge
            self.maxStreams = maxStreams
            self.streamCredit = streamCredit
        }
    }

    /// The client's answer: which key it holds and the MAC that proves it.
    public struct Auth: Equatable, Sendable {
        public var version: UInt8
        public var keyName: String
        /// `AggLimits.authFieldLength` random bytes chosen by the client.
        public var nonce: [UInt8]
        /// HMAC-SHA256(key, "agg-auth-v1" | challenge | nonce).
        public var mac: [UInt8]

        public init(version: UInt8 = AggLimits.version, keyName: String, nonce: [UInt8], mac: [UInt8]) {
            self.version = version
            self.keyName = keyName
            self.nonce = nonce
            self.mac = mac
        }
    }

    public var kind: AggMessageKind {
        switch self {
        case .hello: return .hello
        case .auth: return .auth
        case .authOK: return .authOK
        case .ping: return .ping
        case .pong: return .pong
        }
    }

    public var ppid: PPID { kind.ppid }

    /// Whether a key name is acceptable: 1 ... 64 bytes of letters, digits, '.', '_' and '-'.
    public static func isValidKeyName<Bytes: Collection>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= AggLimits.maxKeyNameLength else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
    }

    // MARK: - Encoding

    public func encode(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 80)
        encode(into: &buffer)
        return buffer
    }

    /// Appends the payload. Fixed-size fields are written as given; the caller supplies correct lengths.
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .hello(let hello):
            buffer.writeInteger(hello.version)
            buffer.writeBytes(Self.fixed(hello.challenge))
            buffer.writeInteger(hello.maxStreams)
            buffer.writeInteger(hello.streamCredit)
        case .auth(let auth):
            buffer.writeInteger(auth.version)
            buffer.writeBytes(Self.fixed(auth.nonce))
            buffer.writeBytes(Self.fixed(auth.mac))
            let name = Array(auth.keyName.utf8.prefix(AggLimits.maxKeyNameLength))
            buffer.writeInteger(UInt8(name.count))
            buffer.writeBytes(name)
        case .authOK(let proof):
            buffer.writeBytes(Self.fixed(proof))
        case .ping(let value), .pong(let value):
            buffer.writeInteger(value)
        }
    }

    /// Pads or cuts to `AggLimits.authFieldLength` bytes so the encoding always has the documented layout.
    private static func fixed(_ bytes: [UInt8]) -> [UInt8] {
        let n = AggLimits.authFieldLength
        return Array(bytes.prefix(n)) + [UInt8](repeating: 0, count: max(0, n - bytes.count))
    }

    // MARK: - Decoding

    /// Decodes a control message of the kind `ppid` names, received on `stream` (which must be 0).
    public static func decode(
        ppid: PPID, payload: ByteBuffer, stream: StreamID = StreamID(0)
    ) throws(StreamDecodingError) -> ControlMessage {
        guard let kind = AggMessageKind(ppid: ppid) else { throw .unknownPPID(ppid.rawValue) }
        guard kind.isControl, stream.rawValue == 0 else { throw .wrongStream(kind, stream) }
        return try decode(kind: kind, payload: payload)
    }

    static func decode(kind: AggMessageKind, payload: ByteBuffer) throws(StreamDecodingError) -> ControlMessage {
        var buffer = payload
        let n = AggLimits.authFieldLength
        let message: ControlMessage
        switch kind {
        case .hello:
            let version = try buffer.readAgg(UInt8.self, kind)
            guard version == AggLimits.version else { throw .unsupportedVersion(version) }
            let challenge = try buffer.readAggBytes(n, kind)
            let maxStreams = try buffer.readAgg(UInt16.self, kind)
            let credit = try buffer.readAgg(UInt32.self, kind)
            guard credit <= AggLimits.maxCredit else { throw .creditTooLarge(credit) }
            message = .hello(Hello(version: version, challenge: challenge, maxStreams: maxStreams, streamCredit: credit))
        case .auth:
            let version = try buffer.readAgg(UInt8.self, kind)
            guard version == AggLimits.version else { throw .unsupportedVersion(version) }
            let nonce = try buffer.readAggBytes(n, kind)
            let mac = try buffer.readAggBytes(n, kind)
            let length = Int(try buffer.readAgg(UInt8.self, kind))
            let name = try buffer.readAggBytes(length, kind)
            guard isValidKeyName(name) else { throw .invalidKeyName }
            message = .auth(
                Auth(version: version, keyName: String(decoding: name, as: UTF8.self), nonce: nonce, mac: mac))
        case .authOK:
            message = .authOK(proof: try buffer.readAggBytes(n, kind))
        case .ping:
            message = .ping(try buffer.readAgg(UInt64.self, kind))
        case .pong:
            message = .pong(try buffer.readAgg(UInt64.self, kind))
        case .open, .openResult, .data, .fin, .reset, .windowUpdate, .closed:
            throw .wrongStream(kind, StreamID(0))  // Unreachable through `decode(ppid:payload:stream:)`.
        }
        try buffer.requireEnd(kind)
        return message
    }
}

/// An incoming SCTP message classified and decoded: control (stream 0) or one connection's stream.
public enum AggMessage: Equatable, Sendable {
    case control(ControlMessage)
    case stream(StreamID, StreamMessage)

    /// Decodes a message as the engine delivered it. Only PING and PONG may arrive unordered.
    public static func decode(_ message: SCTPMessage) throws(StreamDecodingError) -> AggMessage {
        guard let kind = AggMessageKind(ppid: message.ppid) else { throw .unknownPPID(message.ppid.rawValue) }
        if message.isUnordered, kind != .ping, kind != .pong { throw .unorderedNotAllowed(kind) }
        if kind.isControl {
            return .control(try ControlMessage.decode(ppid: message.ppid, payload: message.payload, stream: message.stream))
        }
        let decoded = try StreamMessage.decode(ppid: message.ppid, payload: message.payload, stream: message.stream)
        return .stream(message.stream, decoded)
    }
}
