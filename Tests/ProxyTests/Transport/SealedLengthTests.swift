import AggProtocol
import NIOCore
import SCTPEngine
import Testing

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
        #expect(client.sealedLength(of: datagram) == 1200 + 33)
        #expect(Self.appended(client, datagram) == client.sealedLength(of: datagram))
    }
}
