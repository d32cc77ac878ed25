import AggProtocol
import NIOCore
import SCTPEngine

/// The server side of a SOCKS5 handshake (RFC 1928) with optional username/password authentication (RFC 1929), as a
/// pure state machine. CONNECT and UDP ASSOCIATE (RFC 1928 §7) are offered; domain names are passed on unresolved.
struct SOCKS5Handshake: TunnelHandshake {
    enum State: Equatable {
        case greeting
        case authentication
        case request
        case done
    }

    static let version: UInt8 = 0x05
    static let methodNoAuthentication: UInt8 = 0x00
    static let methodUsernamePassword: UInt8 = 0x02
    static let methodNoneAcceptable: UInt8 = 0xFF
    static let commandConnect: UInt8 = 0x01
    static let commandUDPAssociate: UInt8 = 0x03
    static let replyCommandNotSupported: UInt8 = 0x07
    static let replyAddressTypeNotSupported: UInt8 = 0x08

    private(set) var state = State.greeting
    let configuration: ProxyIngressConfiguration

    init(configuration: ProxyIngressConfiguration) {
        self.configuration = configuration
    }

    mutating func receive(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        let start = buffer.readerIndex
        let action: TunnelHandshakeAction
        switch self.state {
        case .greeting: action = self.receiveGreeting(&buffer)
        case .authentication: action = self.receiveAuthentication(&buffer)
        case .request: action = self.receiveRequest(&buffer)
        case .done: action = .replyAndClose([])
        }
        if case .needMoreData = action {
            buffer.moveReaderIndex(to: start)
        }
        return action
    }

    func successReply() -> [UInt8] {
        Self.granted
    }

    /// The replies every connection gets, made once.
    private static let granted = reply(0x00)
    private static let selectsNoAuthentication = [version, methodNoAuthentication]
    private static let selectsUsernamePassword = [version, methodUsernamePassword]

    func failureReply(_ failure: ProxyFailure) -> [UInt8] {
        Self.reply(failure.socks5Reply)
    }

    /// RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT. The bound address is the server's business and unknown
    /// here, so it is 0.0.0.0:0, which clients ignore for CONNECT.
    static func reply(_ code: UInt8) -> [UInt8] {
        [Self.version, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
    }

    /// RFC 1928 §7: the UDP ASSOCIATE reply's "BND.PORT field indicates the port number at which the client MUST
    /// send UDP request messages to be relayed, and the BND.ADDR field indicates the address": the relay socket's.
    static func reply(_ code: UInt8, bound: SCTPSocketAddress) -> [UInt8] {
        var bytes: [UInt8] = [Self.version, code, 0x00]
        bytes.append(bound.ip.isIPv4 ? 0x01 : 0x04)
        bytes.append(contentsOf: bound.ip.bytes)
        bytes.append(UInt8(bound.port >> 8))
        bytes.append(UInt8(bound.port & 0xFF))
        return bytes
    }

    // MARK: - Messages

    /// RFC 1928 §3: VER NMETHODS METHODS.
    private mutating func receiveGreeting(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        // Read in place, without an array per field: this runs for every connection.
        guard let (version, count) = buffer.readMultipleIntegers(as: (UInt8, UInt8).self) else { return .needMoreData }
        guard version == Self.version else { return .replyAndClose([]) }
        guard let methods = buffer.readSlice(length: Int(count)) else { return .needMoreData }
        let required = self.configuration.requiresCredentials
        let wanted = required ? Self.methodUsernamePassword : Self.methodNoAuthentication
        // RFC 1928 §3: "If the selected METHOD is X'FF', none of the methods listed by the client are acceptable,
        // and the client MUST close the connection." We close too.
        guard methods.readableBytesView.contains(wanted) else {
            let reply = [Self.version, Self.methodNoneAcceptable]
            return required ? .refuse(reply, .proxyAuthentication) : .replyAndClose(reply)
        }
        self.state = required ? .authentication : .request
        return .reply(required ? Self.selectsUsernamePassword : Self.selectsNoAuthentication)
    }

    /// RFC 1929 §2: VER(1) ULEN UNAME PLEN PASSWD; reply VER STATUS, where any non-zero status means failure and
    /// "the server MUST close the connection".
    private mutating func receiveAuthentication(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        let failure = TunnelHandshakeAction.refuse([0x01, 0x01], .proxyAuthentication)
        guard let version = buffer.readInteger(as: UInt8.self) else { return .needMoreData }
        guard version == 0x01 else { return failure }
        guard let userLength = buffer.readInteger(as: UInt8.self) else { return .needMoreData }
        guard let user = buffer.readBytes(length: Int(userLength)) else { return .needMoreData }
        guard let passwordLength = buffer.readInteger(as: UInt8.self) else { return .needMoreData }
        guard let password = buffer.readBytes(length: Int(passwordLength)) else { return .needMoreData }
        guard self.configuration.accepts(username: user, password: password) else { return failure }
        self.state = .request
        return .reply([0x01, 0x00])
    }

    /// RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT.
    private mutating func receiveRequest(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        // Read in place, without an array per field: this runs for every connection.
        guard
            let (version, command, _, addressType) = buffer.readMultipleIntegers(
                as: (UInt8, UInt8, UInt8, UInt8).self)
        else { return .needMoreData }
        guard version == Self.version else { return .replyAndClose([]) }
        // BIND (0x02) is not offered, and neither is anything unknown.
        guard command == Self.commandConnect || command == Self.commandUDPAssociate else {
            return .replyAndClose(Self.reply(Self.replyCommandNotSupported))
        }
        let host: ProxyTargetHost
        switch addressType {
        case 0x01:
            guard let address = buffer.readInteger(as: UInt32.self) else { return .needMoreData }
            host = .address(.v4(address))
        case 0x04:
            guard let (high, low) = buffer.readMultipleIntegers(as: (UInt64, UInt64).self) else { return .needMoreData }
            host = .address(.v6(high, low))
        case 0x03:
            guard let length = buffer.readInteger(as: UInt8.self) else { return .needMoreData }
            guard let bytes = buffer.readBytes(length: Int(length)) else { return .needMoreData }
            guard let name = String(validating: bytes, as: UTF8.self), ProxyTarget.isPlausibleDomain(name) else {
                return .replyAndClose(Self.reply(ProxyFailure.hostUnreachable.socks5Reply))
            }
            host = SCTPIPAddress(name).map { .address($0) } ?? .domain(name)
        default:
            return .replyAndClose(Self.reply(Self.replyAddressTypeNotSupported))
        }
        guard let port = buffer.readInteger(as: UInt16.self) else { return .needMoreData }
        self.state = .done
        // RFC 1928 §7: DST.ADDR and DST.PORT of UDP ASSOCIATE are where the client will send from (zeros when it
        // does not know yet).
        if command == Self.commandUDPAssociate { return .associateUDP(host.target(port: port)) }
        return .connect(host.target(port: port))
    }

    /// Compares without an early exit, so timing does not reveal how much of a secret matched.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}

/// A target's host before its port is known.
enum ProxyTargetHost {
    case address(SCTPIPAddress)
    case domain(String)

    func target(port: UInt16) -> ProxyTarget {
        switch self {
        case .address(let address): return .address(address, port: port)
        case .domain(let name): return .domain(name, port: port)
        }
    }
}
