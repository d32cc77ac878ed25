import AggProtocol
import NIOCore
import SCTPEngine
import Testing

@testable import Proxy

/// Round trips and malformed input for every stream and control message.
@Suite struct StreamCodecTests {
    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    static func decodeStream(_ kind: AggMessageKind, _ bytes: [UInt8]) throws(StreamDecodingError) -> StreamMessage {
        try StreamMessage.decode(ppid: kind.ppid, payload: buffer(bytes))
    }

    static func decodeControl(_ kind: AggMessageKind, _ bytes: [UInt8]) throws(StreamDecodingError) -> ControlMessage {
        try ControlMessage.decode(ppid: kind.ppid, payload: buffer(bytes))
    }

    static let samples: [StreamMessage] = [
        .open(StreamTarget(host: .ip(SCTPIPAddress(v4: 93, 184, 216, 34)), port: 443), initialCredit: 262_144),
        .open(StreamTarget(host: .ip(SCTPIPAddress("2001:db8::1")!), port: 80), initialCredit: 0),
        .open(StreamTarget(host: .domain("example.com"), port: 8443), initialCredit: AggLimits.maxCredit),
        .open(StreamTarget(host: .domain(String(repeating: "a", count: 255)), port: 1), initialCredit: 1),
        .openResult(.ok, text: nil),
        .openResult(.dnsFailure, text: "NXDOMAIN for nonexistent.invalid"),
        .openResult(.tooManyStreams, text: "ünïcödé"),
        .data(ByteBuffer(bytes: [1, 2, 3])),
        .data(ByteBuffer(repeating: 0xAB, count: AggLimits.maxDataPayload)),
        .fin,
        .reset(.connectionReset, text: nil),
        .reset(.flowControlError, text: "sent 5 bytes over credit"),
        .windowUpdate(credit: 1),
        .windowUpdate(credit: AggLimits.maxCredit),
        .closed,
    ]

    @Test(arguments: samples)
    func streamMessagesRoundTrip(_ message: StreamMessage) throws {
        let decoded = try StreamMessage.decode(ppid: message.ppid, payload: message.encode(), stream: StreamID(7))
        #expect(decoded == message)
    }

    @Test func everyKindHasADistinctPPIDInAggsRange() {
        let ppids = Set(AggMessageKind.allCases.map(\.ppid.rawValue))
        #expect(ppids.count == AggMessageKind.allCases.count)
        for kind in AggMessageKind.allCases {
            #expect(kind.ppid.rawValue >> 8 == 0x61_6767)
            #expect(AggMessageKind(ppid: kind.ppid) == kind)
        }
        #expect(AggMessageKind.open.ppid == PPID(0x6167_6701))
    }

    @Test func openHasTheDocumentedLayout() {
        let v4 = StreamMessage.open(
            StreamTarget(host: .ip(SCTPIPAddress(v4: 1, 2, 3, 4)), port: 0x1BB), initialCredit: 0x40000)
        #expect(Array(buffer: v4.encode()) == [1, 1, 2, 3, 4, 0x01, 0xBB, 0, 4, 0, 0])
        let name = StreamMessage.open(StreamTarget(host: .domain("a.b"), port: 80), initialCredit: 16)
        #expect(Array(buffer: name.encode()) == [3, 3, 0x61, 0x2E, 0x62, 0, 80, 0, 0, 0, 16])
        #expect(Array(buffer: StreamMessage.fin.encode()) == [0])
        #expect(Array(buffer: StreamMessage.windowUpdate(credit: 0x0102_0304).encode()) == [1, 2, 3, 4])
    }

    @Test func dataIsPassedOnWithoutCopying() {
        let payload = ByteBuffer(bytes: [9, 8, 7])
        #expect(StreamMessage.data(payload).encode() == payload)
    }

    @Test func longTextIsCutAtACharacterBoundary() throws {
        let text = String(repeating: "é", count: AggLimits.maxTextLength)  // 2 bytes each
        let encoded = StreamMessage.reset(.internalError, text: text).encode()
        #expect(encoded.readableBytes == 1 + AggLimits.maxTextLength)
        let decoded = try StreamMessage.decode(ppid: AggMessageKind.reset.ppid, payload: encoded)
        #expect(decoded == .reset(.internalError, text: String(repeating: "é", count: AggLimits.maxTextLength / 2)))
    }

    /// Property: random messages survive a round trip (seeded, so failures reproduce).
    @Test func randomMessagesRoundTrip() throws {
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<2000 {
            let message = Self.randomMessage(&rng)
            #expect(try StreamMessage.decode(ppid: message.ppid, payload: message.encode()) == message)
        }
    }

    /// Property: decoding arbitrary bytes under every PPID never traps; it returns a message or a typed error.
    @Test func decodingRandomBytesNeverTraps() {
        var rng = SplitMix(seed: 42)
        for _ in 0..<5000 {
            let length = Int(rng.next() % 48)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let kind = AggMessageKind.allCases[Int(rng.next() % UInt64(AggMessageKind.allCases.count))]
            let stream = StreamID(kind.isControl ? 0 : 1)
            let message = SCTPMessage(stream: stream, ppid: kind.ppid, isUnordered: false, payload: Self.buffer(bytes))
            _ = try? AggMessage.decode(message)
        }
    }

    static func randomMessage(_ rng: inout SplitMix) -> StreamMessage {
        func text() -> String? {
            rng.next() % 2 == 0 ? nil : String(repeating: "x", count: Int(rng.next() % 100) + 1)
        }
        let port = UInt16(truncatingIfNeeded: rng.next() % 65535 + 1)
        switch rng.next() % 7 {
        case 0:
            let host: StreamTarget.Host
            switch rng.next() % 3 {
            case 0: host = .ip(.v4(UInt32(truncatingIfNeeded: rng.next())))
            case 1: host = .ip(.v6(rng.next(), rng.next()))
            default: host = .domain(String(repeating: "h", count: Int(rng.next() % 255) + 1))
            }
            return .open(
                StreamTarget(host: host, port: port), initialCredit: UInt32(rng.next() % UInt64(AggLimits.maxCredit)))
        case 1: return .openResult(OpenResultCode.allCases[Int(rng.next() % 9)], text: text())
        case 2:
            let count = Int(rng.next() % UInt64(AggLimits.maxDataPayload)) + 1
            return .data(ByteBuffer(repeating: UInt8(truncatingIfNeeded: rng.next()), count: count))
        case 3: return .fin
        case 4: return .reset(ResetReason.allCases[Int(rng.next() % 6)], text: text())
        case 5: return .windowUpdate(credit: UInt32(rng.next() % UInt64(AggLimits.maxCredit)) + 1)
        default: return .closed
        }
    }

    // MARK: - Malformed stream messages: one test per decode error

    @Test func unknownPPIDIsRejected() {
        #expect(throws: StreamDecodingError.unknownPPID(51)) {
            try StreamMessage.decode(ppid: PPID(51), payload: Self.buffer([0]))
        }
        #expect(throws: StreamDecodingError.unknownPPID(0x6167_67FF)) {
            try StreamMessage.decode(ppid: PPID(0x6167_67FF), payload: Self.buffer([0]))
        }
    }

    @Test func truncatedOpenIsRejectedAtEveryLength() throws {
        let full = Array(buffer: Self.samples[0].encode())
        for length in 0..<full.count {
            #expect(throws: StreamDecodingError.self) { try Self.decodeStream(.open, Array(full.prefix(length))) }
        }
        #expect(throws: StreamDecodingError.truncated(.open, needed: 16, available: 3)) {
            try Self.decodeStream(.open, [4, 0, 0, 0])
        }
        #expect(throws: StreamDecodingError.truncated(.open, needed: 5, available: 2)) {
            try Self.decodeStream(.open, [3, 5, 0x61, 0x62])
        }
    }

    @Test func openTrailingBytesAreRejected() {
        #expect(throws: StreamDecodingError.trailingBytes(.open, count: 1)) {
            try Self.decodeStream(.open, [1, 1, 2, 3, 4, 0, 80, 0, 0, 0, 1, 0xFF])
        }
    }

    @Test func openFieldErrors() {
        #expect(throws: StreamDecodingError.unknownAddressType(2)) { try Self.decodeStream(.open, [2, 0, 80]) }
        #expect(throws: StreamDecodingError.emptyDomain) { try Self.decodeStream(.open, [3, 0, 0, 80, 0, 0, 0, 0]) }
        #expect(throws: StreamDecodingError.invalidDomain) {
            try Self.decodeStream(.open, [3, 3, 0x61, 0x00, 0x62, 0, 80, 0, 0, 0, 0])
        }
        #expect(throws: StreamDecodingError.invalidDomain) {
            try Self.decodeStream(.open, [3, 2, 0x61, 0x20, 0, 80, 0, 0, 0, 0])
        }
        #expect(throws: StreamDecodingError.zeroPort) {
            try Self.decodeStream(.open, [1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0])
        }
        #expect(throws: StreamDecodingError.creditTooLarge(0x8000_0000)) {
            try Self.decodeStream(.open, [1, 1, 2, 3, 4, 0, 80, 0x80, 0, 0, 0])
        }
    }

    @Test func openResultErrors() {
        #expect(throws: StreamDecodingError.truncated(.openResult, needed: 1, available: 0)) {
            try Self.decodeStream(.openResult, [])
        }
        #expect(throws: StreamDecodingError.unknownResultCode(9)) { try Self.decodeStream(.openResult, [9]) }
        #expect(throws: StreamDecodingError.invalidUTF8) { try Self.decodeStream(.openResult, [0, 0xC3, 0x28]) }
        #expect(throws: StreamDecodingError.textTooLong(AggLimits.maxTextLength + 1)) {
            try Self.decodeStream(.openResult, [0] + [UInt8](repeating: 0x61, count: AggLimits.maxTextLength + 1))
        }
    }

    @Test func dataErrors() {
        #expect(throws: StreamDecodingError.truncated(.data, needed: 1, available: 0)) {
            try Self.decodeStream(.data, [])
        }
        #expect(throws: StreamDecodingError.dataTooLarge(AggLimits.maxDataPayload + 1)) {
            try Self.decodeStream(.data, [UInt8](repeating: 0, count: AggLimits.maxDataPayload + 1))
        }
    }

    @Test(arguments: [AggMessageKind.fin, .closed])
    func oneByteMessagesErrors(_ kind: AggMessageKind) {
        #expect(throws: StreamDecodingError.truncated(kind, needed: 1, available: 0)) {
            try Self.decodeStream(kind, [])
        }
        #expect(throws: StreamDecodingError.nonZeroReserved(kind, 1)) { try Self.decodeStream(kind, [1]) }
        #expect(throws: StreamDecodingError.trailingBytes(kind, count: 1)) { try Self.decodeStream(kind, [0, 0]) }
    }

    @Test func resetErrors() {
        #expect(throws: StreamDecodingError.truncated(.reset, needed: 1, available: 0)) {
            try Self.decodeStream(.reset, [])
        }
        #expect(throws: StreamDecodingError.unknownResetReason(6)) { try Self.decodeStream(.reset, [6]) }
        #expect(throws: StreamDecodingError.invalidUTF8) { try Self.decodeStream(.reset, [0, 0xFF]) }
    }

    @Test func windowUpdateErrors() {
        #expect(throws: StreamDecodingError.truncated(.windowUpdate, needed: 4, available: 3)) {
            try Self.decodeStream(.windowUpdate, [0, 0, 1])
        }
        #expect(throws: StreamDecodingError.zeroWindowUpdate) { try Self.decodeStream(.windowUpdate, [0, 0, 0, 0]) }
        #expect(throws: StreamDecodingError.creditTooLarge(.max)) {
            try Self.decodeStream(.windowUpdate, [0xFF, 0xFF, 0xFF, 0xFF])
        }
        #expect(throws: StreamDecodingError.trailingBytes(.windowUpdate, count: 1)) {
            try Self.decodeStream(.windowUpdate, [0, 0, 0, 1, 0])
        }
    }

    // MARK: - Control messages

    static let hello = ControlMessage.Hello(challenge: Array(0..<32), maxStreams: 1024, streamCredit: 262_144)
    static let auth = ControlMessage.Auth(keyName: "laptop-1", nonce: Array(32..<64), mac: Array(64..<96))

    @Test(arguments: [
        ControlMessage.hello(hello), .auth(auth), .authOK(proof: Array(100..<132)), .ping(0), .pong(.max),
    ])
    func controlMessagesRoundTrip(_ message: ControlMessage) throws {
        #expect(try ControlMessage.decode(ppid: message.ppid, payload: message.encode()) == message)
    }

    @Test func controlTruncationAtEveryLength() {
        for message in [ControlMessage.hello(Self.hello), .auth(Self.auth), .authOK(proof: Array(0..<32)), .ping(7)] {
            let full = Array(buffer: message.encode())
            for length in 0..<full.count {
                #expect(throws: StreamDecodingError.self) {
                    try Self.decodeControl(message.kind, Array(full.prefix(length)))
                }
            }
            #expect(throws: StreamDecodingError.trailingBytes(message.kind, count: 1)) {
                try Self.decodeControl(message.kind, full + [0])
            }
        }
    }

    @Test func controlFieldErrors() {
        var hello = Array(buffer: ControlMessage.hello(Self.hello).encode())
        hello[0] = 2
        #expect(throws: StreamDecodingError.unsupportedVersion(2)) { try Self.decodeControl(.hello, hello) }
        hello[0] = 1
        hello.replaceSubrange(35..<39, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: StreamDecodingError.creditTooLarge(.max)) { try Self.decodeControl(.hello, hello) }

        var auth = Array(buffer: ControlMessage.auth(Self.auth).encode())
        auth[0] = 0
        #expect(throws: StreamDecodingError.unsupportedVersion(0)) { try Self.decodeControl(.auth, auth) }
        auth[0] = 1
        auth[auth.count - 1] = UInt8(ascii: "/")
        #expect(throws: StreamDecodingError.invalidKeyName) { try Self.decodeControl(.auth, auth) }
        let empty = [1] + [UInt8](repeating: 0, count: 64) + [0]
        #expect(throws: StreamDecodingError.invalidKeyName) { try Self.decodeControl(.auth, empty) }
    }

    @Test func messagesOnTheWrongStreamAreRejected() {
        let data = SCTPMessage(
            stream: StreamID(0), ppid: AggMessageKind.data.ppid, isUnordered: false,
            payload: Self.buffer([1]))
        #expect(throws: StreamDecodingError.wrongStream(.data, StreamID(0))) { try AggMessage.decode(data) }
        let ping = SCTPMessage(
            stream: StreamID(3), ppid: AggMessageKind.ping.ppid, isUnordered: false,
            payload: ControlMessage.ping(1).encode())
        #expect(throws: StreamDecodingError.wrongStream(.ping, StreamID(3))) { try AggMessage.decode(ping) }
        #expect(throws: StreamDecodingError.wrongStream(.fin, StreamID(0))) {
            try ControlMessage.decode(ppid: AggMessageKind.fin.ppid, payload: Self.buffer([0]))
        }
        #expect(throws: StreamDecodingError.wrongStream(.hello, StreamID(1))) {
            try StreamMessage.decode(ppid: AggMessageKind.hello.ppid, payload: Self.buffer([0]))
        }
    }

    @Test func onlyPingAndPongMayBeUnordered() throws {
        let ping = SCTPMessage(
            stream: StreamID(0), ppid: AggMessageKind.ping.ppid, isUnordered: true,
            payload: ControlMessage.ping(5).encode())
        #expect(try AggMessage.decode(ping) == .control(.ping(5)))
        let data = SCTPMessage(
            stream: StreamID(1), ppid: AggMessageKind.data.ppid, isUnordered: true,
            payload: Self.buffer([1]))
        #expect(throws: StreamDecodingError.unorderedNotAllowed(.data)) { try AggMessage.decode(data) }
        let ordered = SCTPMessage(
            stream: StreamID(1), ppid: AggMessageKind.data.ppid, isUnordered: false,
            payload: Self.buffer([1]))
        #expect(try AggMessage.decode(ordered) == .stream(StreamID(1), .data(Self.buffer([1]))))
    }

    @Test func resultCodesMapToSOCKSAndHTTP() {
        #expect(OpenResultCode.ok.socksReply == 0 && OpenResultCode.ok.httpStatus == 200)
        #expect(OpenResultCode.notAllowed.socksReply == 2 && OpenResultCode.notAllowed.httpStatus == 403)
        #expect(OpenResultCode.refused.socksReply == 5)
        #expect(OpenResultCode.networkUnreachable.socksReply == 3)
        #expect(OpenResultCode.hostUnreachable.socksReply == 4)
        #expect(OpenResultCode.timeout.httpStatus == 504)
        #expect(OpenResultCode.tooManyStreams.httpStatus == 503)
        #expect(OpenResultCode.allCases.filter(\.isSuccess) == [.ok])
    }

    @Test func targetFromTextRecognisesLiterals() {
        #expect(StreamTarget(host: "192.0.2.1", port: 1).host == .ip(SCTPIPAddress(v4: 192, 0, 2, 1)))
        #expect(StreamTarget(host: "[2001:db8::1]", port: 1).host == .ip(SCTPIPAddress("2001:db8::1")!))
        #expect(StreamTarget(host: "example.com", port: 1).host == .domain("example.com"))
        #expect(StreamTarget(host: "2001:db8::1", port: 443).description == "[2001:db8::1]:443")
    }
}

/// A small seeded generator for property tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
