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
        var firstByte: SCTPTime?
        s.client.onEvent = { event, host in
            if case .message = event, firstByte == nil { firstByte = host.now }
        }
        s.server.startTransfer(on: s.serverAssociation, stream: StreamID(1), total: total, messageSize: 16 * 1024)
        let done = try s.network.runUntil({ s.client.totalReceivedBytes == total }, timeout: .seconds(60))
        #expect(s.client.corruption == nil)
        let goodput = Double(total * 8) / (done - firstByte!).seconds
        // Two 20 Mbit/s paths: far more than either alone (at most 19.3 Mbit/s of payload).
        #expect(goodput > 30_000_000, "goodput \(goodput / 1e6) Mbit/s")
        let down1 = s.down1.counters.deliveredPayloadBytes
        let down2 = s.down2.counters.deliveredPayloadBytes
        #expect(Double(down1) > 0.3 * Double(total) && Double(down2) > 0.3 * Double(total), "\(down1) / \(down2)")
    }
}
