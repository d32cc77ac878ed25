import AggProtocol
import NIOCore
import SCTPEngine

/// A client and a server datagram layer joined by hand, with one clock both read, so each test spells out which
/// datagram goes where. A class, so its methods can be called inside `#expect`.
final class SecurityPair {
    static let key = PreSharedKey(name: "laptop", key: (0..<32).map { UInt8($0) &* 7 &+ 3 })
    static let otherKey = PreSharedKey(name: "phone", key: (0..<32).map { UInt8($0) &* 11 &+ 5 })
    /// The client's two paths as the server sees them (two NATs) and the server's address.
    static let clientPath1 = SCTPSocketAddress(ip: SCTPIPAddress(v4: 198, 51, 100, 7), port: 40001)
    static let clientPath2 = SCTPSocketAddress(ip: SCTPIPAddress(v4: 203, 0, 113, 9), port: 51002)
    static let server = SCTPSocketAddress(ip: SCTPIPAddress(v4: 192, 0, 2, 1), port: 9899)

    var client: ClientDatagramSecurity
    var server: ServerDatagramSecurity
    var clock = SecurityClock(monotonic: SCTPTime(nanoseconds: 1_000_000_000), unixSeconds: 1_800_000_000)

    init(
        clientKey: PreSharedKey = key, serverKeys: [PreSharedKey] = [key],
        client clientConfiguration: ClientDatagramSecurity.Configuration = .init(),
        server serverConfiguration: ServerDatagramSecurity.Configuration = .init(), seed: UInt64 = 1
    ) {
        client = ClientDatagramSecurity(
            key: clientKey, configuration: clientConfiguration, random: SCTPRandom(seed: seed))
        server = ServerDatagramSecurity(
            keys: serverKeys, configuration: serverConfiguration, random: SCTPRandom(seed: seed &+ 1000))
    }

    func advance(_ duration: SCTPDuration) {
        clock.monotonic = clock.monotonic + duration
        clock.unixSeconds += duration.nanoseconds / 1_000_000_000
    }

    /// An SCTP-looking packet of `size` bytes whose contents depend on `tag`, with the ports and checksum a packed
    /// datagram leaves out already zero (as the receiver hands them to its engine), so it arrives byte for byte.
    /// Its first chunk's type (byte 12) is none the packed layout sends whole.
    static func packet(_ tag: UInt8, size: Int = 100) -> ByteBuffer {
        var bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) ^ tag }
        for index in [0, 1, 2, 3, 8, 9, 10, 11] where index < size { bytes[index] = 0 }
        return ByteBuffer(bytes: bytes)
    }

    static func upward(_ payload: ByteBuffer, from source: SCTPSocketAddress = clientPath1) -> SCTPDatagram {
        SCTPDatagram(source: source, destination: server, payload: payload)
    }

    /// A packet the server's engine sends toward the client; `owner` nil stands for the owner of `key` (the
    /// association of the pair's client), which `serverSeal` fills in.
    static func downward(
        _ payload: ByteBuffer, to destination: SCTPSocketAddress = clientPath1, owner: SCTPOwner? = nil
    ) -> SCTPDatagram {
        SCTPDatagram(source: server, destination: destination, payload: payload, owner: owner ?? pendingOwner)
    }

    /// Marks a datagram whose owner `serverSeal` looks up.
    private static let pendingOwner = SCTPOwner(rawValue: .max)

    /// The client seals `packet` toward the server; the sealed datagram, or nil when it was queued.
    func clientSeal(_ packet: ByteBuffer, from source: SCTPSocketAddress = clientPath1) -> SCTPDatagram? {
        client.seal(Self.upward(packet, from: source), clock: clock)
    }

    /// Runs the handshake the first `clientSeal` starts: HELLO to the server, HELLO-ACK back. Returns the datagrams
    /// the client released from its queue.
    @discardableResult
    func handshake(first packet: ByteBuffer = packet(0)) -> [SCTPDatagram] {
        let queued = clientSeal(packet)
        precondition(queued == nil, "the first packet waits for the handshake")
        let hello = client.pollTransmit()!
        precondition(server.open(hello, clock: clock) == nil)
        let ack = server.pollTransmit()!
        precondition(client.open(ack, clock: clock) == nil)
        var released: [SCTPDatagram] = []
        while let datagram = client.pollTransmit() { released.append(datagram) }
        return released
    }

    /// Opens a copy of `datagram`'s bytes, as a datagram read off the wire: opening works in place (the packed
    /// layout rewrites the header's bytes too), and tests hand the same datagram in again as a replay.
    func serverOpen(_ datagram: SCTPDatagram, clock: SecurityClock) -> SCTPDatagram? {
        server.open(Self.received(datagram), clock: clock)
    }

    func clientOpen(_ datagram: SCTPDatagram, clock: SecurityClock) -> SCTPDatagram? {
        client.open(Self.received(datagram), clock: clock)
    }

    static func received(_ datagram: SCTPDatagram) -> SCTPDatagram {
        var copy = datagram
        copy.payload = ByteBuffer(bytes: datagram.payload.readableBytesView)
        return copy
    }

    func serverSeal(_ datagram: SCTPDatagram, key: PreSharedKey = key) -> SCTPDatagram? {
        var datagram = datagram
        if datagram.owner == Self.pendingOwner {
            datagram.owner = server.owner(ofKeyNamed: key.name) ?? .unauthenticated
        }
        return server.seal(datagram)
    }
    func serverPoll() -> SCTPDatagram? { server.pollTransmit() }
    func clientPoll() -> SCTPDatagram? { client.pollTransmit() }
    func serverTimeout(clock: SecurityClock) { server.handleTimeout(clock: clock) }
    func clientTimeout(clock: SecurityClock) { client.handleTimeout(clock: clock) }
    func clientRestart(now: SCTPTime) { client.restart(now: now) }
    func serverReplaceKeys(_ keys: [PreSharedKey]) { server.replaceKeys(keys) }

    /// Every datagram waiting in the client's outbox.
    func drainClient() -> [SCTPDatagram] {
        var out: [SCTPDatagram] = []
        while let datagram = client.pollTransmit() { out.append(datagram) }
        return out
    }
}

extension ByteBuffer {
    /// A copy with byte `index` of the readable bytes XORed with `mask`.
    func flipping(_ index: Int, mask: UInt8 = 0x01) -> ByteBuffer {
        var copy = self
        let byte = copy.getInteger(at: copy.readerIndex + index, as: UInt8.self)!
        copy.setInteger(byte ^ mask, at: copy.readerIndex + index)
        return copy
    }
}
