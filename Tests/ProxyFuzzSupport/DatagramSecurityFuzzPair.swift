import AggProtocol
import NIOCore
import SCTPEngine

/// A client's and a server's datagram security joined in memory with a completed handshake, so that the
/// DecryptFuzzer (in the Fuzz package) can feed arbitrary datagrams to the open paths: the server's HELLO and data
/// handling, the client's HELLO-ACK and data handling. Deterministic: randomness comes from `seed`, time from the
/// caller. Not linked into the daemons.
public final class DatagramSecurityFuzzPair {
    static let clientAddress = SCTPSocketAddress(ip: SCTPIPAddress(v4: 192, 0, 2, 1), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: SCTPIPAddress(v4: 198, 51, 100, 1), port: 9899)

    private var client: ClientDatagramSecurity
    private var server: ServerDatagramSecurity
    private var clock = SecurityClock(monotonic: SCTPTime(nanoseconds: 1_000_000_000), unixSeconds: 1_800_000_000)
    /// Real datagrams of the handshake and of data both ways (HELLO, HELLO-ACK, sealed packets), as seeds and as
    /// material for mutations.
    public private(set) var samples: [[UInt8]] = []
    /// Both sides right after the setup; `reset` returns to it (all of the state is value types, so a copy is a
    /// snapshot, and a fuzzer need not pay for a handshake per input).
    private var snapshot: (client: ClientDatagramSecurity, server: ServerDatagramSecurity, clock: SecurityClock)?

    /// Sets up both sides with one client key and runs the handshake plus one sealed packet each way.
    public init(seed: UInt64) {
        let key = PreSharedKey(name: "fuzz", key: (0..<PreSharedKey.keyLength).map { UInt8($0) &* 29 &+ 3 })
        let other = PreSharedKey(name: "other", key: [UInt8](repeating: 0x77, count: PreSharedKey.keyLength))
        client = ClientDatagramSecurity(key: key, random: SCTPRandom(seed: seed))
        server = ServerDatagramSecurity(keys: [key, other], random: SCTPRandom(seed: seed &+ 1))
        let packet = ByteBuffer(bytes: [UInt8](repeating: 0xAB, count: 64))
        let outgoing = SCTPDatagram(source: Self.clientAddress, destination: Self.serverAddress, payload: packet)
        // The first packet waits for the handshake: HELLO out, HELLO-ACK back, then the queued packet sealed.
        _ = client.seal(outgoing, clock: clock)
        exchange()
        if let sealed = client.seal(outgoing, clock: clock) {
            samples.append(Array(sealed.payload.readableBytesView))
            _ = server.open(sealed, clock: clock)
        }
        let reply = SCTPDatagram(
            source: Self.serverAddress, destination: Self.clientAddress, payload: packet,
            owner: server.owner(ofKeyNamed: key.name) ?? .unauthenticated)
        if let sealed = server.seal(reply) {
            samples.append(Array(sealed.payload.readableBytesView))
            _ = client.open(sealed, clock: clock)
        }
        snapshot = (client, server, clock)
    }

    /// Returns both sides to their state right after the setup.
    public func reset() {
        guard let snapshot else { return }
        client = snapshot.client
        server = snapshot.server
        clock = snapshot.clock
    }

    /// Moves handshake datagrams between the two sides until both are quiet.
    private func exchange() {
        for _ in 0..<8 {
            var moved = false
            while let datagram = client.pollTransmit() {
                samples.append(Array(datagram.payload.readableBytesView))
                _ = server.open(datagram, clock: clock)
                moved = true
            }
            while let datagram = server.pollTransmit() {
                samples.append(Array(datagram.payload.readableBytesView))
                _ = client.open(datagram, clock: clock)
                moved = true
            }
            if !moved { return }
        }
    }

    /// Feeds `bytes` to the server as a datagram from the client's address; returns the SCTP packet it opened, if
    /// any. Replies the server queued (HELLO-ACKs) are returned in `replies`.
    public func openAtServer(_ bytes: [UInt8]) -> (packet: [UInt8]?, replies: [[UInt8]]) {
        let datagram = SCTPDatagram(
            source: Self.clientAddress, destination: Self.serverAddress, payload: ByteBuffer(bytes: bytes))
        let opened = server.open(datagram, clock: clock)
        var replies: [[UInt8]] = []
        while let reply = server.pollTransmit() { replies.append(Array(reply.payload.readableBytesView)) }
        return (opened.map { Array($0.payload.readableBytesView) }, replies)
    }

    /// Feeds `bytes` to the client as a datagram from the server; returns the SCTP packet it opened, if any.
    public func openAtClient(_ bytes: [UInt8]) -> [UInt8]? {
        let datagram = SCTPDatagram(
            source: Self.serverAddress, destination: Self.clientAddress, payload: ByteBuffer(bytes: bytes))
        let opened = client.open(datagram, clock: clock)
        while client.pollTransmit() != nil {}
        return opened.map { Array($0.payload.readableBytesView) }
    }

    /// Advances both clocks and runs the timers (session expiry, HELLO retransmission, rekeying).
    public func advance(seconds: Int64) {
        clock.monotonic = clock.monotonic + .seconds(seconds)
        clock.unixSeconds += seconds
        client.handleTimeout(clock: clock)
        server.handleTimeout(clock: clock)
        while client.pollTransmit() != nil {}
        while server.pollTransmit() != nil {}
    }

    /// The server's counters: what it opened and why it dropped the rest.
    public var serverStatistics: DatagramSecurityStatistics { server.statistics }
    /// The client's counters.
    public var clientStatistics: DatagramSecurityStatistics { client.statistics }
}
