import NIOCore
import Testing

@testable import SCTPEngine

/// A sharded server's endpoint chooses its verification tags and association ids congruent to its shard, so the
/// kernel's steering rule (tag modulo the shard count) brings every packet of an association back to it.
@Suite struct ShardSteeringTests {
    @Test func steeredValuesKeepTheShardsResidueWithoutOverflow() {
        let shard = SCTPShard(count: 3, index: 2)
        for value: UInt32 in [0, 1, 2, 3, 4, 1000, .max - 2, .max - 1, .max] {
            let steered = shard.steer(value)
            #expect(shard.owns(steered), "\(value) -> \(steered)")
            #expect(value >= steered ? value - steered < 6 : steered - value < 3, "\(value) -> \(steered)")
        }
        #expect(SCTPShard.single.steer(12345) == 12345)
        #expect(SCTPShard(count: 2, index: 0).steer(1) == 0)
    }

    @Test func everyPacketAfterInitCarriesATagOfTheServersShard() {
        for seed: UInt64 in 1...24 {
            let shard = SCTPShard(count: 4, index: UInt32(seed % 4))
            let pair = Lockstep(seed: seed) { $0.localPort = 5000 }
            var configuration = SCTPConfiguration()
            configuration.localPort = 5000
            configuration.shard = shard
            let server = SCTPEndpoint(configuration: configuration, seed: seed + 7)
            let clientAddress = pair.clientAddress
            _ = pair.client.connect(to: pair.serverAddress, from: clientAddress, peerPort: 5000, now: pair.now)
            var toServer: [SCTPDatagram] = []
            var established: SCTPAssociationID?
            for _ in 0..<10 {
                let fromClient = pair.take(pair.client)
                toServer += fromClient
                for datagram in fromClient { server.handle(datagram, now: pair.now) }
                while let event = server.pollEvent() {
                    if case .established(let id, _, _) = event { established = id }
                }
                var fromServer: [SCTPDatagram] = []
                while let datagram = server.pollTransmit() { fromServer.append(datagram) }
                if fromClient.isEmpty && fromServer.isEmpty { break }
                pair.deliver(fromServer, to: pair.client)
            }
            let id = try! #require(established, "seed \(seed)")
            #expect(UInt32(id.rawValue) % shard.count == shard.index, "association id \(id) of \(shard)")
            let tags = toServer.compactMap(Lockstep.tag)
            #expect(tags.first == .zero, "the INIT carries tag 0 (the kernel's hash places it)")
            #expect(tags.count >= 2)
            for tag in tags.dropFirst() {
                #expect(shard.owns(tag.rawValue), "tag \(tag) of shard \(shard) (seed \(seed))")
            }
        }
    }
}
