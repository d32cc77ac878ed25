import NIOCore
import Testing

@testable import SCTPEngine

/// `SCTPDatagram.portsElided`: agg's packed datagrams carry SCTP packets without their ports and checksum, which
/// the layer below hands in as zeros. The engine takes such a packet only where its verification tag routes it,
/// fills the ports in from the association, and drops anything else unanswered (it has no port to answer).
@Suite struct ElidedPortsTests {
    static let clientAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)

    /// What the packed layout does to a packet the tag routes: ports and checksum zeroed, the packet marked.
    static func elide(_ datagram: SCTPDatagram) -> SCTPDatagram {
        var datagram = datagram
        let start = datagram.payload.readerIndex
        datagram.payload.setInteger(UInt32(0), at: start)
        datagram.payload.setInteger(UInt32(0), at: start + 8)
        datagram.portsElided = true
        datagram.integrityVerified = true
        return datagram
    }

    /// Whether the packed layout sends `datagram`'s packet packed (agg's rule, `DataLayout.packs`).
    static func travelsPacked(_ datagram: SCTPDatagram) -> Bool {
        let type = datagram.payload.getInteger(at: datagram.payload.readerIndex + 12, as: UInt8.self)!
        let flags = datagram.payload.getInteger(at: datagram.payload.readerIndex + 13, as: UInt8.self)!
        switch type {
        case InitChunk.type, InitAckChunk.type, CookieEchoChunk.type: return false
        case AbortChunk.type, ShutdownCompleteChunk.type: return flags & 1 == 0
        default: return true
        }
    }

    struct Setup {
        let client: SCTPEndpoint
        let server: SCTPEndpoint
        let clientID: SCTPAssociationID
        var serverID: SCTPAssociationID?
        var received: [ByteBuffer] = []
        var packedCrossings = 0

        init() {
            var configuration = SCTPConfiguration()
            configuration.localPort = 5000
            server = SCTPEndpoint(configuration: configuration, seed: 1)
            configuration.localPort = 5001
            client = SCTPEndpoint(configuration: configuration, seed: 2)
            clientID = client.connect(to: ElidedPortsTests.serverAddress, from: ElidedPortsTests.clientAddress, peerPort: 5000, now: .zero)
        }

        /// Carries every datagram both ways as the packed layout would, until nothing moves.
        mutating func run(now: SCTPTime = .zero) {
            for _ in 0..<20 {
                for (sender, receiver) in [(client, server), (server, client)] {
                    while let datagram = sender.pollTransmit() {
                        if ElidedPortsTests.travelsPacked(datagram) {
                            packedCrossings += 1
                            receiver.handle(ElidedPortsTests.elide(datagram), now: now)
                        } else {
                            receiver.handle(datagram, now: now)
                        }
                    }
                }
                while let event = client.pollEvent() {
                    if case .message(_, let message) = event { received.append(message.payload) }
                }
                while let event = server.pollEvent() {
                    if case .established(let accepted, _, _) = event { serverID = accepted }
                    if case .message(_, let message) = event { received.append(message.payload) }
                }
            }
        }
    }

    @Test func packetsWithoutPortsReachTheirAssociationByTag() throws {
        var setup = Setup()
        setup.run()
        let serverID = try #require(setup.serverID, "the handshake goes whole")
        try setup.client.send(ByteBuffer(repeating: 0x41, count: 5000), on: setup.clientID, stream: StreamID(1), now: .zero)
        try setup.server.send(ByteBuffer(repeating: 0x42, count: 5000), on: serverID, stream: StreamID(2), now: .zero)
        setup.run()
        #expect(setup.received.map(\.readableBytes).sorted() == [5000, 5000])
        #expect(setup.packedCrossings >= 6, "DATA and SACK both ways, and the COOKIE-ACK")
        #expect(setup.client.droppedPackets.isEmpty && setup.server.droppedPackets.isEmpty)
    }

    /// A packet without ports whose tag routes nowhere is out of the blue: answered with an ABORT with the T bit
    /// at the port of the sender's latest association (the ABORT goes with its ports), or dropped unanswered when
    /// the sender never had one. A handshake packet (matched by ports, not by tag) is dropped and counted.
    @Test func aPacketWithoutPortsTheTagDoesNotRouteIsOutOfTheBlue() throws {
        var setup = Setup()
        setup.run()
        _ = try #require(setup.serverID)
        // Some DATA from the client with its tag changed, as if the server had lost the association.
        try setup.client.send(ByteBuffer(repeating: 0x43, count: 100), on: setup.clientID, stream: StreamID(1), now: .zero)
        var stray = try #require(setup.client.pollTransmit())
        stray.payload.setInteger(UInt32(0xDEAD_BEEF), at: stray.payload.readerIndex + 4)
        setup.server.handle(Self.elide(stray), now: .zero)
        let abort = try #require(setup.server.pollTransmit())
        let answer = try RawPacket.parse(abort.payload)
        #expect(answer.chunks.map(\.type) == [AbortChunk.type] && answer.chunks[0].flags & 1 == 1)
        #expect(answer.header.verificationTag == VerificationTag(0xDEAD_BEEF))
        #expect(answer.header.sourcePort == 5000 && answer.header.destinationPort == 5001)
        #expect(setup.server.droppedPackets[.outOfTheBlue] == 1)

        // The client's INIT without its ports: dropped, unanswered.
        var configuration = SCTPConfiguration()
        configuration.localPort = 5002
        let stranger = SCTPEndpoint(configuration: configuration, seed: 3)
        _ = stranger.connect(to: Self.serverAddress, from: Self.clientAddress, peerPort: 5000, now: .zero)
        let initPacket = try #require(stranger.pollTransmit())
        setup.server.handle(Self.elide(initPacket), now: .zero)
        #expect(setup.server.droppedPackets[.unroutableWithoutPorts] == 1)
        #expect(setup.server.pollTransmit() == nil)

        // An endpoint that never had an association: nothing to answer at.
        configuration.localPort = 5000
        let fresh = SCTPEndpoint(configuration: configuration, seed: 4)
        fresh.handle(Self.elide(stray), now: .zero)
        #expect(fresh.droppedPackets[.unroutableWithoutPorts] == 1)
        #expect(fresh.pollTransmit() == nil)
    }
}
