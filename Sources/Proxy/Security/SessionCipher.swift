import Crypto
import Foundation
import NIOCore

/// One session's data protection: seals outgoing SCTP packets with the send key and a fresh counter, opens incoming
/// ones with the receive key behind a replay window. The header (type, session id, counter) is the AEAD's
/// associated data.
struct SessionCipher {
    /// Why an incoming data datagram was dropped.
    enum OpenFailure: Error, Equatable {
        case tooShort
        case replayed
        case badTag
    }

    /// The largest counter a session seals with; past it the session refuses to seal (the client rekeys long
    /// before, after `ClientDatagramSecurity.Configuration.rekeyAfterPackets`).
    static let counterLimit: UInt64 = 1 << 62

    let sessionID: UInt64
    private let sendKey: SymmetricKey
    private let receiveKey: SymmetricKey
    /// The counter of the next sealed datagram.
    private(set) var sendCounter: UInt64 = 0
    private(set) var window = ReplayWindow()
    /// Datagrams opened successfully.
    private(set) var packetsOpened: UInt64 = 0

    init(sessionID: UInt64, sendKey: SymmetricKey, receiveKey: SymmetricKey) {
        self.sessionID = sessionID
        self.sendKey = sendKey
        self.receiveKey = receiveKey
    }

    /// The sealed datagram of `packet`, or nil once the counter is exhausted.
    mutating func seal(_ packet: ByteBuffer) -> ByteBuffer? {
        guard sendCounter < Self.counterLimit else { return nil }
        let counter = sendCounter
        sendCounter += 1
        var output = ByteBuffer()
        output.reserveCapacity(SecureDatagram.overhead + packet.readableBytes)
        output.writeInteger(SecureDatagram.Kind.data.rawValue)
        output.writeInteger(sessionID)
        output.writeInteger(counter)
        let sealed = output.withUnsafeReadableBytes { header in
            packet.withUnsafeReadableBytes { plaintext in
                try? ChaChaPoly.seal(
                    plaintext, using: sendKey, nonce: SecureDatagram.nonce(counter: counter), authenticating: header)
            }
        }
        guard let sealed else { return nil }
        output.writeBytes(sealed.ciphertext)
        output.writeBytes(sealed.tag)
        return output
    }

    /// The SCTP packet inside a data datagram whose session id is this session's.
    mutating func open(_ datagram: ByteBuffer) -> Result<ByteBuffer, OpenFailure> {
        let length = datagram.readableBytes
        guard length > SecureDatagram.overhead,
            let counter = datagram.getInteger(at: datagram.readerIndex + 9, as: UInt64.self)
        else { return .failure(.tooShort) }
        guard window.mayAccept(counter) else { return .failure(.replayed) }
        let opened: Data? = datagram.withUnsafeReadableBytes { bytes in
            let header = UnsafeRawBufferPointer(rebasing: bytes[0..<SecureDatagram.dataHeaderLength])
            let ciphertext = UnsafeRawBufferPointer(
                rebasing: bytes[SecureDatagram.dataHeaderLength..<(length - SecureDatagram.aeadTagLength)])
            let tag = UnsafeRawBufferPointer(rebasing: bytes[(length - SecureDatagram.aeadTagLength)...])
            guard
                let box = try? ChaChaPoly.SealedBox(
                    nonce: SecureDatagram.nonce(counter: counter), ciphertext: ciphertext, tag: tag)
            else { return nil }
            return try? ChaChaPoly.open(box, using: receiveKey, authenticating: header)
        }
        guard let opened else { return .failure(.badTag) }
        window.accept(counter)
        packetsOpened += 1
        return .success(ByteBuffer(bytes: opened))
    }

    /// The session id field of a data datagram.
    static func sessionID(of datagram: ByteBuffer) -> UInt64? {
        datagram.getInteger(at: datagram.readerIndex + 1, as: UInt64.self)
    }

    /// The counter field of a data datagram.
    static func counter(of datagram: ByteBuffer) -> UInt64? {
        datagram.getInteger(at: datagram.readerIndex + 9, as: UInt64.self)
    }
}
