import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// `send(deferringTransmission:)` and `transmitDeferred(now:)`: messages sent together leave bundled.
@Suite struct DeferredTransmissionTests {
    /// Sends `count` small messages on as many streams at one instant, deferred or not, and returns the DATA
    /// packets the client sent for them and whether the server got every message.
    static func send(count: Int, deferring: Bool, seed: UInt64) throws -> (packets: Int, delivered: Int) {
        let s = OnePathScenario(seed: seed, link: LinkConfiguration(rateBitsPerSecond: 100_000_000, delay: .milliseconds(5)))
        let id = s.connect()
        try s.network.runUntil({ !s.client.established.isEmpty && !s.server.established.isEmpty }, timeout: .seconds(5))
        let link = try #require(s.network.link(from: s.clientAddress.ip, to: s.serverAddress.ip))
        let before = link.counters.sentPackets
        s.client.perform(at: s.network.now) { endpoint in
            for i in 0..<count {
                try? endpoint.send(
                    ByteBuffer(repeating: UInt8(i & 0xFF), count: 40), on: id, stream: StreamID(UInt16(i + 1)),
                    deferringTransmission: deferring, now: s.network.now)
            }
            #expect(endpoint.hasDeferredTransmissions == deferring)
            if deferring { endpoint.transmitDeferred(now: s.network.now) }
            #expect(!endpoint.hasDeferredTransmissions)
        }
        try s.network.run(for: .seconds(1))
        return (link.counters.sentPackets - before, s.server.receivedMessages)
    }

    @Test func messagesSentTogetherShareAPacketWhenDeferred() throws {
        let immediate = try Self.send(count: 20, deferring: false, seed: 7)
        let deferred = try Self.send(count: 20, deferring: true, seed: 7)
        #expect(immediate.delivered == 20 && deferred.delivered == 20)
        // Twenty 40-byte messages fit one packet: sent at once, each took its own (the initial window allows them);
        // the client also sends one SACK-free packet or none after them (the server's SACKs go the other way).
        #expect(immediate.packets >= 20)
        #expect(deferred.packets <= 2, "deferred: \(deferred.packets) packets")
    }
}
