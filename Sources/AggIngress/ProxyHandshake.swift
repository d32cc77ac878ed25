import AggProtocol
import NIOCore

/// A listener connection's handshake from its first byte: that byte says which protocol the client speaks (0x05
/// SOCKS5, 0x04 SOCKS4/4a, an ASCII letter HTTP: every method token starts with one); a SOCKS handshake then goes on
/// in this machine, and HTTP is handed over to its own handlers. Anything else, or a protocol the listener does not
/// speak, closes the connection; so does silence until the handshake deadline (the handler's).
///
/// One `TunnelHandshakeHandler` runs it from the accept to the tunnel: a SOCKS connection costs one handler added to
/// its pipeline and removed, where a sniffer that installed the SOCKS handler and left cost two of each.
enum ProxyHandshake: TunnelHandshake {
    /// No byte yet: the protocols the listener speaks.
    case detecting(ProxyProtocols, ProxyIngressConfiguration)
    case socks5(SOCKS5Handshake)
    case socks4(SOCKS4Handshake)

    static func detect(firstByte: UInt8) -> ProxyProtocols {
        switch firstByte {
        case 0x05: return .socks5
        case 0x04: return .socks4
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): return .http
        default: return []
        }
    }

    mutating func receive(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        switch self {
        case .detecting(let protocols, let configuration):
            guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .needMoreData }
            let detected = Self.detect(firstByte: first)
            guard !detected.isEmpty, protocols.isSuperset(of: detected) else { return .replyAndClose([]) }
            switch detected {
            case .socks5:
                self = .socks5(SOCKS5Handshake(configuration: configuration))
            case .socks4:
                self = .socks4(
                    SOCKS4Handshake(
                        requiresCredentials: configuration.requiresCredentials,
                        maxFieldLength: configuration.maxSOCKS4FieldLength))
            default:
                return .handOver
            }
            return self.receive(&buffer)
        case .socks5(var handshake):
            let action = handshake.receive(&buffer)
            self = .socks5(handshake)
            return action
        case .socks4(var handshake):
            let action = handshake.receive(&buffer)
            self = .socks4(handshake)
            return action
        }
    }

    func successReply() -> [UInt8] {
        switch self {
        case .detecting: return []
        case .socks5(let handshake): return handshake.successReply()
        case .socks4(let handshake): return handshake.successReply()
        }
    }

    func failureReply(_ failure: ProxyFailure) -> [UInt8] {
        switch self {
        case .detecting: return []
        case .socks5(let handshake): return handshake.failureReply(failure)
        case .socks4(let handshake): return handshake.failureReply(failure)
        }
    }
}
