import NIOCore
import Testing

@testable import SCTPEngine

/// RFC 9653 (Zero Checksum for SCTP) as agg uses it: both ends announce an alternate error detection method (the
/// AEAD of the datagram layer below) in INIT and INIT-ACK, and DATA-bearing packets then go with a zero checksum.
/// The handshake keeps its CRC32c, and nothing changes for a peer that did not announce the same method or whose
/// INIT did not arrive protected by it.
@Suite struct ZeroChecksumTests {
    static let clientAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)
    static let method: UInt32 = 0x6167_6701

    /// Every datagram that crossed, with its direction and its first chunk's type.
    struct Crossing {
        var fromClient: Bool
        var payload: ByteBuffer

        var firstChunk: UInt8 { payload.getInteger(at: payload.readerIndex + 12)! }

        var checksum: UInt32 { payload.getInteger(at: payload.readerIndex + 8, endianness: .little, as: UInt32.self)! }
        var hasCorrectChecksum: Bool { checksum == CRC32c.packetChecksum(payload) }
        var carriesData: Bool {
            guard let packet = try? RawPacket.parse(payload, verifyChecksum: false) else { return false }
            return packet.chunks.contains { $0.type == DataChunk.type }
        }
    }

    /// A handshake, then one message each way. `verified`: the layer below marks every datagram as proved.
    static func exchange(client clientMethod: UInt32?, server serverMethod: UInt32?, verified: Bool) -> [Crossing] {
        var configuration = SCTPConfiguration()
        configuration.localPort = 5000
        configuration.zeroChecksumMethod = serverMethod
        let server = SCTPEndpoint(configuration: configuration, seed: 1)
        configuration.localPort = 5001
        configuration.zeroChecksumMethod = clientMethod
        let client = SCTPEndpoint(configuration: configuration, seed: 2)
        let id = client.connect(to: serverAddress, from: clientAddress, peerPort: 5000, now: .zero)
        var crossings: [Crossing] = []
        var serverID: SCTPAssociationID?
        var sent = (client: false, server: false)
        var received = 0
        for _ in 0..<20 {
            func carry(from sender: SCTPEndpoint, to receiver: SCTPEndpoint) {
                while var datagram = sender.pollTransmit() {
                    crossings.append(Crossing(fromClient: sender === client, payload: datagram.payload))
                    datagram.integrityVerified = verified
                    receiver.handle(datagram, now: .zero)
                }
            }
            carry(from: client, to: server)
            carry(from: server, to: client)
            while let event = client.pollEvent() {
                if case .established = event, !sent.client {
                    sent.client = true
                    try? client.send(ByteBuffer(repeating: 0x41, count: 3000), on: id, stream: StreamID(1), now: .zero)
                }
                if case .message = event { received += 1 }
            }
            while let event = server.pollEvent() {
                if case .established(let accepted, _, _) = event { serverID = accepted }
                if case .message = event {
                    received += 1
                    if let serverID, !sent.server {
                        sent.server = true
                        try? server.send(
                            ByteBuffer(repeating: 0x42, count: 3000), on: serverID, stream: StreamID(1), now: .zero)
                    }
                }
            }
        }
        #expect(received == 2, "both messages arrive")
        return crossings
    }

    @Test func dataGoesWithAZeroChecksumWhenBothAnnounceTheMethodUnderAVerifiedLayer() {
        let crossings = Self.exchange(client: Self.method, server: Self.method, verified: true)
        let data = crossings.filter { $0.carriesData }
        #expect(data.contains { $0.fromClient } && data.contains { !$0.fromClient })
        #expect(
            data.allSatisfy { $0.checksum == 0 },
            "DATA packets with a CRC32c: \(data.filter { $0.checksum != 0 }.count)")
        // INIT, INIT-ACK, COOKIE-ECHO and COOKIE-ACK keep a correct CRC32c.
        let handshake = crossings.filter {
            [InitChunk.type, InitAckChunk.type, CookieEchoChunk.type, CookieAckChunk.type].contains($0.firstChunk)
        }
        #expect(handshake.count >= 4)
        #expect(handshake.allSatisfy { $0.hasCorrectChecksum })
    }

    @Test(arguments: [
        (UInt32?.some(method), UInt32?.some(method), false),  // The INIT was not protected: the server does not offer it.
        (UInt32?.some(method), nil, true),  // The server does not offer it.
        (nil, UInt32?.some(method), true),  // The client does not offer it.
        (UInt32?.some(method), UInt32?.some(1), true),  // Different methods (1 is DTLS).
    ])
    func everyPacketKeepsItsChecksumOtherwise(client: UInt32?, server: UInt32?, verified: Bool) {
        let crossings = Self.exchange(client: client, server: server, verified: verified)
        #expect(crossings.contains { $0.carriesData })
        #expect(crossings.allSatisfy { $0.hasCorrectChecksum })
    }

    @Test func aZeroChecksumIsRefusedFromAPacketTheLayerBelowDidNotVerify() throws {
        // The receiving side: an unverified packet with a zero checksum is dropped even where the method is on.
        var configuration = SCTPConfiguration()
        configuration.zeroChecksumMethod = Self.method
        let server = SCTPEndpoint(configuration: configuration, seed: 1)
        configuration.localPort = 5001
        let client = SCTPEndpoint(configuration: configuration, seed: 2)
        _ = client.connect(to: Self.serverAddress, from: Self.clientAddress, peerPort: 5000, now: .zero)
        var datagram = try #require(client.pollTransmit())
        datagram.payload.setInteger(UInt32(0), at: datagram.payload.readerIndex + 8)
        server.handle(datagram, now: .zero)
        #expect(server.pollTransmit() == nil, "an INIT with a zero checksum was answered")
    }
}
