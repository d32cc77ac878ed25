import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// The product's case: the client behind two NATs adds its second uplink with ASCONF, then a download from the
/// server uses both paths at once.
@Suite struct NATDownloadTests {
    @Test(arguments: [1, 2] as [UInt64])
    func downloadUsesBothNATedPathsAfterASCONF(seed: UInt64) throws {
        let s = TwoNATScenario(seed: seed, name: "nat-download-\(seed)")
        try s.establish()
        try s.addSecondPath()
        let total = 8_000_000
        let goodput = try s.network.transferGoodput(total, from: s.server, on: s.serverAssociation, to: s.client)
        #expect(s.client.corruption == nil)
        // Two 20 Mbit/s paths: far more than either alone (at most 19.3 Mbit/s of payload).
        #expect(goodput > 30_000_000, "goodput \(goodput / 1e6) Mbit/s")
        let down1 = s.down1.counters.deliveredPayloadBytes
        let down2 = s.down2.counters.deliveredPayloadBytes
        #expect(Double(down1) > 0.3 * Double(total) && Double(down2) > 0.3 * Double(total), "\(down1) / \(down2)")
    }
}

/// The product's failover: a download over both NATed paths when the first uplink (the primary, which carried
/// the handshake) dies both ways. Every byte arrives and the other path is back at full rate within half a second (the dead path's T3, 200 ms, and one RTT).
@Suite struct NATFailoverTests {
    @Test(arguments: [0, 1])
    func aDownloadSurvivesEitherUplinkDying(failing: Int) throws {
        let s = TwoNATScenario(seed: 11, name: "nat-failover-\(failing)")
        try s.establish()
        try s.addSecondPath()
        let total = 12_000_000
        var bins: [Int] = []
        var firstByte: SCTPTime?
        s.client.onEvent = { event, host in
            guard case .message(_, let message) = event else { return }
            if firstByte == nil { firstByte = host.now }
            let bin = Int((host.now - firstByte!).nanoseconds / 100_000_000)
            while bins.count <= bin { bins.append(0) }
            bins[bin] += message.payload.readableBytes
        }
        s.server.startTransfer(on: s.serverAssociation, stream: StreamID(1), total: total, messageSize: 16 * 1024)
        try s.network.runUntil({ s.client.totalReceivedBytes >= total / 4 }, timeout: .seconds(30))
        let failedAt = s.network.now - firstByte!
        let links = failing == 0 ? [s.up1, s.down1] : [s.up2, s.down2]
        for link in links { link.isUp = false }
        try s.network.runUntil({ s.client.totalReceivedBytes == total }, timeout: .seconds(60))
        #expect(s.client.corruption == nil)
        // Bins of 100 ms from the failure on; the survivor alone carries at most 19.3 Mbit/s of payload.
        let first = Int(failedAt.nanoseconds / 100_000_000) + 1
        let after = bins[first..<(bins.count - 1)].map { Double($0 * 8) / 0.1 / 1e6 }
        let recovered = after.firstIndex { $0 >= 0.8 * 19.3 }
        #expect(recovered != nil && recovered! <= 5, "Mbit/s per 100 ms after the failure: \(after.map { Int($0) })")
    }
}
