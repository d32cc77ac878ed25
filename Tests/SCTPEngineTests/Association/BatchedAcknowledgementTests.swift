import NIOCore
import Testing

@testable import SCTPEngine

/// `handle(_:now:deferringTransmission:)`: a receiver handling a batch of datagrams that arrived together answers
/// them with one SACK when the batch ends (`transmitDeferred`), not one SACK per second packet.
@Suite struct BatchedAcknowledgementTests {
    static let clientAddress = SCTPSocketAddress(ip: .init(v4: 198, 51, 100, 7), port: 40000)
    static let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)

    /// The chunk types of a packet.
    static func chunkTypes(_ datagram: SCTPDatagram) throws -> [UInt8] {
        try RawPacket.parse(datagram.payload, verifyChecksum: false).chunks.map(\.type)
    }

    /// Sets up an association, has the client send a message of `packets` full DATA packets at once, hands them
    /// all to the server (deferring or not), and returns the packets the server sent back and whether they
    /// acknowledged the whole burst to the client.
    static func deliverBurst(packets: Int, deferring: Bool) throws -> (answers: [[UInt8]], allAcknowledged: Bool) {
        var configuration = SCTPConfiguration()
        configuration.localPort = 5000
        let server = SCTPEndpoint(configuration: configuration, seed: 1)
        configuration.localPort = 5001
        let client = SCTPEndpoint(configuration: configuration, seed: 2)
        let id = client.connect(to: serverAddress, from: clientAddress, peerPort: 5000, now: .zero)
        var now = SCTPTime.zero
        for _ in 0..<10 {
            while let datagram = client.pollTransmit() { server.handle(datagram, now: now) }
            while let datagram = server.pollTransmit() { client.handle(datagram, now: now) }
            now = now + .milliseconds(1)
        }
        try #require(client.pollEvent().map { if case .established = $0 { true } else { false } } == true)
        // One message of `packets` full packets: the initial window lets the first few go at once.
        try client.send(ByteBuffer(repeating: 0x5A, count: 1_400 * packets), on: id, stream: StreamID(1), now: now)
        var burst: [SCTPDatagram] = []
        while let datagram = client.pollTransmit() { burst.append(datagram) }
        try #require(burst.count >= 4, "the client sent \(burst.count) packets at once")
        let association = try #require(client.associations[id])
        let lastOfBurst = association.outstanding.highestOutstandingTSN
        now = now + .milliseconds(5)
        for datagram in burst { server.handle(datagram, now: now, deferringTransmission: deferring) }
        if deferring {
            #expect(server.pollTransmit() == nil, "nothing leaves before the batch ends")
            #expect(server.hasDeferredTransmissions)
            server.transmitDeferred(now: now)
        }
        var answers: [[UInt8]] = []
        while let datagram = server.pollTransmit() {
            answers.append(try chunkTypes(datagram))
            client.handle(datagram, now: now)
        }
        return (answers, association.outstanding.cumulativeTSNAck == lastOfBurst)
    }

    @Test func aDeferredBatchIsAnsweredWithOneSack() throws {
        let immediate = try Self.deliverBurst(packets: 8, deferring: false)
        let deferred = try Self.deliverBurst(packets: 8, deferring: true)
        let sacks = { (answers: [[UInt8]]) in
            answers.filter { $0.contains(SackChunk.type) || $0.contains(NRSackChunk.type) }.count
        }
        // One SACK per second packet when each is answered at once (RFC 9260 §6.2), one for the whole batch when
        // deferred; either way the client learns that everything arrived.
        #expect(sacks(immediate.answers) >= 2)
        #expect(sacks(deferred.answers) == 1)
        #expect(deferred.answers.count == 1)
        #expect(immediate.allAcknowledged && deferred.allAcknowledged)
    }
}
