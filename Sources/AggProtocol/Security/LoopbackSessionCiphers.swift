import Crypto
import NIOCore

/// Two ends of one data session joined back to back, for agg-bench: each call seals a packet as the client would and
/// opens it as the server would, exactly as the datagram layer does per packet (ChaCha20-Poly1305, header as
/// associated data, replay window).
public final class LoopbackSessionCiphers {
    private var sender: SessionCipher
    private var receiver: SessionCipher

    /// Session keys derived from `key` with a fixed shared secret and fixed randoms: fine for measuring, never for
    /// traffic.
    public init(key: [UInt8]) {
        let keys = SecureDatagram.sessionKeys(
            key: SymmetricKey(data: key), sharedSecret: Array(repeating: 3, count: 32),
            clientRandom: Array(repeating: 1, count: SecureDatagram.randomLength),
            serverRandom: Array(repeating: 2, count: SecureDatagram.randomLength), sessionID: 1)
        sender = SessionCipher(sessionID: 1, sendKey: keys.clientToServer, receiveKey: keys.serverToClient)
        receiver = SessionCipher(sessionID: 1, sendKey: keys.serverToClient, receiveKey: keys.clientToServer)
    }

    /// Bytes a sealed datagram adds to the packet inside.
    public static var overhead: Int { SecureDatagram.overhead }

    /// The packet after sealing and opening; nil if either failed.
    public func sealAndOpen(_ packet: ByteBuffer) -> ByteBuffer? {
        guard let sealed = sender.seal(packet), case .success(let opened) = receiver.open(sealed) else { return nil }
        return opened
    }
}
