import AggTransport
import NIOCore
import SCTPEngine
import Testing

@testable import AggProtocol

/// The server's datagram layer as one shard of several: the sessions it makes steer back to it, and forgetting
/// sessions looks only at those whose deadline came (no sweep over every session).
@Suite struct ShardedSessionTests {
    typealias Pair = SecurityPair

    /// Version 4's 4-byte ids and version 3's 8-byte ones alike: the kernel's program finds the shard in either
    /// layout's datagrams.
    @Test(arguments: [UInt8(3), 4])
    func sessionIDsKeepTheShardsResidue(version: UInt8) throws {
        for index: UInt32 in 0..<3 {
            var configuration = ServerDatagramSecurity.Configuration()
            configuration.shard = SCTPShard(count: 3, index: index)
            for seed: UInt64 in 1...8 {
                let pair = Pair(server: configuration, seed: seed)
                pair.client.helloVersion = version
                pair.handshake()
                let id = try #require(pair.client.current?.cipher.sessionID)
                #expect(UInt32(truncatingIfNeeded: id) % 3 == index, "session \(id) of shard \(index)")
                #expect((id <= UInt32.max) == (version >= 4), "a compact id has 32 bits")
                let program = ReusePortSteering.program(shards: 3, allowPlaintext: false)
                let sealed = try #require(pair.clientSeal(Pair.packet(1)))
                let bytes = sealed.payload.getBytes(
                    at: sealed.payload.readerIndex, length: sealed.payload.readableBytes)!
                #expect(ReusePortSteeringTests.run(program, on: bytes) == index, "the kernel brings it back")
            }
        }
    }

    @Test func sessionsAreForgottenAtTheirOwnDeadlines() throws {
        let busy = Pair(seed: 1)
        busy.handshake()
        // An unconfirmed session (HELLO answered, no data datagram yet) is due after 30 s, a confirmed one after
        // 300 s without traffic: the layer's deadline is the earliest of them, not a periodic sweep.
        let first = try #require(busy.clientSeal(Pair.packet(1)))
        #expect(busy.serverOpen(first, clock: busy.clock) != nil)
        let confirmedDue = busy.clock.monotonic + .seconds(300)
        #expect(busy.server.nextDeadline() == busy.clock.monotonic + .seconds(30), "checked once at the HELLO's 30 s")
        busy.advance(.seconds(30))
        busy.serverTimeout(clock: busy.clock)
        #expect(busy.server.sessions.count == 1, "confirmed: it stays")
        #expect(busy.server.nextDeadline() == confirmedDue, "next looked at when it could idle out")
        // Traffic moves its deadline: the check at 300 s finds it alive and looks again 300 s after the last datagram.
        busy.advance(.seconds(200))
        let later = try #require(busy.clientSeal(Pair.packet(2)))
        #expect(busy.serverOpen(later, clock: busy.clock) != nil)
        busy.advance(.seconds(70))
        busy.serverTimeout(clock: busy.clock)
        #expect(busy.server.sessions.count == 1)
        #expect(busy.server.nextDeadline() == busy.clock.monotonic + .seconds(230))
        busy.advance(.seconds(230))
        busy.serverTimeout(clock: busy.clock)
        #expect(busy.server.sessions.isEmpty, "idle for 300 s")

        let silent = Pair(seed: 2)
        silent.handshake()  // The client never sends a data datagram.
        silent.advance(.seconds(29))
        silent.serverTimeout(clock: silent.clock)
        #expect(silent.server.sessions.count == 1)
        silent.advance(.seconds(1))
        silent.serverTimeout(clock: silent.clock)
        #expect(silent.server.sessions.isEmpty, "never confirmed: gone after 30 s")
    }
}
