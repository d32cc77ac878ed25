import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol
@testable import AggTransport

/// The driver decides whether a datagram joins the segmented run under way from `sealedLength` before sealing it
/// onto the run: the two must agree, or every datagram that differs starts a run of its own (a server's
/// plaintext associations once did: one write per datagram).
@Suite struct SealedLengthTests {
    static let key = SecurityPair.key

    static func appended(_ layer: DatagramSecurityLayer, _ datagram: SCTPDatagram) -> Int? {
        var run = ByteBufferAllocator().buffer(capacity: 2048)
        return layer.seal(datagram, clock: { Self.clock }, appendingTo: &run)
    }

    static let clock = SecurityClock(monotonic: SCTPTime(nanoseconds: 1_000_000_000), unixSeconds: 1_800_000_000)

    @Test func aServersPlaintextDatagramGoesAsItIs() throws {
        let server = try #require(
            DatagramSecurityLayer(.server(keys: [Self.key], allowPlaintext: true), random: SCTPRandom(seed: 1)))
        let datagram = SecurityPair.downward(SecurityPair.packet(1, size: 1200), owner: .unauthenticated)
        #expect(server.sealedLength(of: datagram) == 1200)
        #expect(Self.appended(server, datagram) == 1200)
    }

    @Test func aClientsDatagramGrowsByTheHeaderAndTag() throws {
        let client = try #require(DatagramSecurityLayer(.client(key: Self.key), random: SCTPRandom(seed: 2)))
        let server = try #require(
            DatagramSecurityLayer(.server(keys: [Self.key], allowPlaintext: false), random: SCTPRandom(seed: 3)))
        // The first datagram waits for the handshake: nothing is appended.
        #expect(Self.appended(client, SecurityPair.upward(SecurityPair.packet(0))) == nil)
        let hello = try #require(client.pollTransmit())
        #expect(server.open(hello, clock: Self.clock) == nil)
        let ack = try #require(server.pollTransmit())
        #expect(client.open(ack, clock: Self.clock) == nil)
        let datagram = SecurityPair.upward(SecurityPair.packet(1, size: 1200))
        #expect(client.sealedLength(of: datagram) == 1200 + 17)
        #expect(Self.appended(client, datagram) == client.sealedLength(of: datagram))
    }

    /// A server serves version 3, 4 and 5 clients side by side: each datagram's length is its own session's
    /// layout's (33 bytes of header and tag, 25, 17 with the packed packet's ports and checksum left out), else
    /// runs would break at every datagram of another layout.
    @Test(arguments: [(UInt8(5), 17), (4, 25), (3, 33)])
    func eachSessionsDatagramsGrowByItsOwnLayout(version: UInt8, overhead: Int) throws {
        let pair = SecurityPair()
        pair.client.helloVersion = version
        for released in pair.handshake() { #expect(pair.serverOpen(released, clock: pair.clock) != nil) }
        #expect(pair.client.sessionOverhead?.bytes == overhead)
        let up = SecurityPair.upward(SecurityPair.packet(1, size: 1200))
        #expect(try #require(pair.clientSeal(up.payload)).payload.readableBytes == 1200 + overhead)
        var down = SecurityPair.downward(SecurityPair.packet(2, size: 1200))
        down.owner = try #require(pair.server.owner(ofKeyNamed: SecurityPair.key.name))
        #expect(pair.server.sealedLength(of: down) == 1200 + overhead)
        var run = ByteBufferAllocator().buffer(capacity: 2048)
        #expect(pair.server.seal(down, appendingTo: &run) == 1200 + overhead)
        // A datagram with no session to seal it is not sent; its length is the largest layout's.
        var stranger = SecurityPair.downward(SecurityPair.packet(3, size: 1200), to: SecurityPair.clientPath2)
        stranger.owner = down.owner
        #expect(pair.server.sealedLength(of: stranger) == 1200 + SecureDatagram.overhead)
    }
}
