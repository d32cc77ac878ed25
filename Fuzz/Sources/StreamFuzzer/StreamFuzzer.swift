import AggProtocol
import CFuzzerDriver
import NIOCore
import SCTPEngine

/// libFuzzer entry point for agg's stream protocol: the input is a sequence of SCTP messages (stream, PPID,
/// unordered flag, payload) as the engine would deliver them. Each is decoded with `AggMessage.decode`; whatever
/// decodes must encode to bytes that decode to the same message, and is then fed to the state machines a real
/// peer runs: the server's and the client's authenticators for control messages, a client-side and a
/// server-side `StreamState` per stream for the others.
///
/// Decoding errors and state-machine errors are expected (they are how bad input is refused); a trap is the
/// finding. Record layout: `stream` (1 byte, 0 = control), `kind` (1 byte: agg's PPID with this low byte, or with
/// the top bit set a raw PPID in the next 4 bytes), `flags` (1 byte; bit 0 unordered), `length` (2 bytes, little
/// endian), then up to `length` bytes of payload.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStream(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    var harness = StreamHarness()
    while let message = input.readFuzzedMessage() {
        harness.receive(message)
    }
    return 0
}

extension ByteBuffer {
    /// The next record of the input, or nil at its end.
    mutating func readFuzzedMessage() -> SCTPMessage? {
        guard let stream = readInteger(as: UInt8.self), let kind = readInteger(as: UInt8.self),
            let flags = readInteger(as: UInt8.self), let length = readInteger(endianness: .little, as: UInt16.self)
        else { return nil }
        var ppid = AggMessageKind.ppidBase | UInt32(kind & 0x7F)
        if kind & 0x80 != 0 {
            guard let raw = readInteger(as: UInt32.self) else { return nil }
            ppid = raw
        }
        let payload = readSlice(length: min(Int(length), readableBytes)) ?? ByteBuffer()
        return SCTPMessage(
            stream: StreamID(UInt16(stream)), ppid: PPID(ppid), isUnordered: flags & 1 != 0, payload: payload)
    }
}

/// Both ends' state machines, fed the same decoded messages.
struct StreamHarness {
    static let key = PreSharedKey(name: "fuzz", key: [UInt8](repeating: 0x42, count: PreSharedKey.keyLength))
    var server = ServerAuthenticator(
        challenge: [UInt8](repeating: 7, count: AggLimits.authFieldLength), maxStreams: 16, streamCredit: 65536)
    var client = ClientAuthenticator(key: key, nonce: [UInt8](repeating: 9, count: AggLimits.authFieldLength))
    var serverStreams: [UInt16: StreamState] = [:]
    var clientStreams: [UInt16: StreamState] = [:]

    mutating func receive(_ message: SCTPMessage) {
        let decoded: AggMessage
        do {
            decoded = try AggMessage.decode(message)
        } catch {
            return
        }
        checkRoundTrip(decoded, message)
        switch decoded {
        case .control(let control):
            _ = try? server.receive(control) { name in name == Self.key.name ? Self.key : nil }
            _ = try? client.receive(control)
        case .stream(let id, let streamMessage):
            var serverState =
                serverStreams[id.rawValue] ?? StreamState(role: .server, receiveCredit: 65536, initialSendCredit: 0)
            _ = try? serverState.receive(streamMessage)
            serverStreams[id.rawValue] = serverState
            var clientState = clientStreams[id.rawValue] ?? StreamState(role: .client, receiveCredit: 65536)
            // A client stream exists only after it sent OPEN; do that first so the other states are reachable.
            if clientState.isFree {
                let target = StreamTarget(host: "example.com", port: 443)
                _ = try? clientState.send(.open(target, initialCredit: 65536))
            }
            _ = try? clientState.receive(streamMessage)
            clientStreams[id.rawValue] = clientState
            for state in [serverState, clientState] {
                precondition(state.receiveWindow.buffered <= state.receiveWindow.capacity, "receive window overrun")
                precondition(state.receiveWindow.available >= 0, "negative receive window")
            }
        }
    }

    /// Encoding a decoded message and decoding it again must give the same message.
    func checkRoundTrip(_ decoded: AggMessage, _ original: SCTPMessage) {
        let payload: ByteBuffer
        let ppid: PPID
        switch decoded {
        case .control(let control):
            payload = control.encode()
            ppid = control.ppid
        case .stream(_, let streamMessage):
            payload = streamMessage.encode()
            ppid = streamMessage.ppid
        }
        let again = SCTPMessage(
            stream: original.stream, ppid: ppid, isUnordered: original.isUnordered, payload: payload)
        guard let redecoded = try? AggMessage.decode(again) else {
            fatalError("re-encoded message does not decode: \(decoded)")
        }
        if redecoded != decoded {
            fatalError("round trip changed the message\nbefore: \(decoded)\nafter:  \(redecoded)")
        }
    }
}

/// The executable's entry point (SwiftPM aliases an executable's `main` to `<module>_main`): libFuzzer's driver.
@_cdecl("StreamFuzzer_main")
public func streamFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzStream(data, size) }
}
