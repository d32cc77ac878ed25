import NIOCore
import Testing

@testable import SCTPEngine

/// `SCTPDatagram.integrityVerified`: below the engine, agg's datagram layer proves each packet unchanged with an
/// AEAD tag, so the engine skips the CRC32c of such packets; every other packet is still checked (RFC 9260 §6.8).
@Suite struct VerifiedIntegrityTests {
    static let clientAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)

    /// Runs a handshake in which every datagram's CRC32c is broken on the way and returns whether it completed.
    func handshakeWithBrokenChecksums(markedVerified: Bool) -> Bool {
        var configuration = SCTPConfiguration()
        configuration.localPort = 5000
        let server = SCTPEndpoint(configuration: configuration, seed: 1)
        configuration.localPort = 5001
        let client = SCTPEndpoint(configuration: configuration, seed: 2)
        _ = client.connect(to: Self.serverAddress, from: Self.clientAddress, peerPort: 5000, now: .zero)
        func corrupt(_ datagram: SCTPDatagram) -> SCTPDatagram {
            var datagram = datagram
            let offset = datagram.payload.readerIndex + 8  // The common header's checksum field.
            let checksum = datagram.payload.getInteger(at: offset, as: UInt32.self)!
            datagram.payload.setInteger(checksum ^ 0x0100_0001, at: offset)
            datagram.integrityVerified = markedVerified
            return datagram
        }
        var established = false
        for _ in 0..<10 {
            while let datagram = client.pollTransmit() { server.handle(corrupt(datagram), now: .zero) }
            while let datagram = server.pollTransmit() { client.handle(corrupt(datagram), now: .zero) }
            while let event = client.pollEvent() {
                if case .established = event { established = true }
            }
            while server.pollEvent() != nil {}
        }
        return established
    }

    @Test func aBadChecksumIsDroppedUnlessTheLayerBelowVerifiedThePacket() {
        #expect(!handshakeWithBrokenChecksums(markedVerified: false))
        #expect(handshakeWithBrokenChecksums(markedVerified: true))
    }

    @Test func packetsTheEngineSendsKeepACorrectChecksum() throws {
        var configuration = SCTPConfiguration()
        configuration.localPort = 5001
        let client = SCTPEndpoint(configuration: configuration, seed: 2)
        _ = client.connect(to: Self.serverAddress, from: Self.clientAddress, peerPort: 5000, now: .zero)
        let datagram = try #require(client.pollTransmit())
        let packet = try RawPacket.parse(datagram.payload, verifyChecksum: true)  // Throws on a wrong CRC32c.
        #expect(packet.header.checksum != 0)
    }
}
