import AggProtocol
import NIOCore
import SCTPEngine

/// The server side of a SOCKS4 or SOCKS4a CONNECT request, as a pure state machine.
///
/// SOCKS4: VN(4) CD DSTPORT DSTIP USERID NUL; reply VN(0) CD DSTPORT DSTIP with CD 0x5A granted or 0x5B rejected.
/// SOCKS4a: a DSTIP of 0.0.0.x (x non-zero) means a host name follows the user id's NUL, itself NUL-terminated.
/// SOCKS4 has a user id but no password, so when the proxy requires credentials every request is rejected (0x5B,
/// "request rejected or failed": 0x5C and 0x5D are about identd, which is not what refused it).
struct SOCKS4Handshake: TunnelHandshake {
    static let granted: UInt8 = 0x5A
    static let rejected: UInt8 = 0x5B

    let requiresCredentials: Bool
    let maxFieldLength: Int
    private var isDone = false

    init(requiresCredentials: Bool, maxFieldLength: Int) {
        self.requiresCredentials = requiresCredentials
        self.maxFieldLength = maxFieldLength
    }

    mutating func receive(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        guard !self.isDone else { return .replyAndClose([]) }
        let start = buffer.readerIndex
        let action = self.receiveRequest(&buffer)
        if case .needMoreData = action {
            buffer.moveReaderIndex(to: start)
        }
        return action
    }

    func successReply() -> [UInt8] { Self.reply(Self.granted) }

    func failureReply(_ failure: ProxyFailure) -> [UInt8] { Self.reply(failure.socks4Reply) }

    /// The destination fields of a reply are ignored by clients for CONNECT; they are zero.
    static func reply(_ code: UInt8) -> [UInt8] { [0x00, code, 0, 0, 0, 0, 0, 0] }

    private mutating func receiveRequest(_ buffer: inout ByteBuffer) -> TunnelHandshakeAction {
        let reject = TunnelHandshakeAction.replyAndClose(Self.reply(Self.rejected))
        guard let header = buffer.readBytes(length: 8) else { return .needMoreData }
        guard header[0] == 0x04 else { return .replyAndClose([]) }
        let port = UInt16(header[2]) << 8 | UInt16(header[3])
        let address = Array(header[4..<8])
        guard let userID = Self.readNULTerminated(&buffer, limit: self.maxFieldLength) else { return .needMoreData }
        guard case .some = userID else { return reject }
        // BIND (0x02) and anything else: rejected. The whole request is read first so the reply is not sent early.
        let isSOCKS4a = address[0] == 0 && address[1] == 0 && address[2] == 0 && address[3] != 0
        var host = ProxyTargetHost.address(SCTPIPAddress(bytes: address)!)
        if isSOCKS4a {
            guard let name = Self.readNULTerminated(&buffer, limit: self.maxFieldLength) else { return .needMoreData }
            guard case .some(let bytes) = name, let text = String(validating: bytes, as: UTF8.self),
                ProxyTarget.isPlausibleDomain(text)
            else { return reject }
            host = SCTPIPAddress(text).map { .address($0) } ?? .domain(text)
        }
        self.isDone = true
        guard !self.requiresCredentials else { return .refuse(Self.reply(Self.rejected), .socks4WithoutPassword) }
        guard header[1] == 0x01, port != 0 else { return reject }
        return .connect(host.target(port: port))
    }

    /// Reads bytes up to a NUL and consumes the NUL. Returns nil when the NUL has not arrived yet, `.some(nil)` when
    /// more than `limit` bytes precede it (or would), and the bytes otherwise.
    private static func readNULTerminated(_ buffer: inout ByteBuffer, limit: Int) -> [UInt8]?? {
        let view = buffer.readableBytesView
        guard let nul = view.firstIndex(of: 0) else {
            return view.count > limit ? .some(nil) : nil
        }
        let length = nul - view.startIndex
        guard length <= limit else { return .some(nil) }
        let bytes = buffer.readBytes(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        return .some(bytes)
    }
}
