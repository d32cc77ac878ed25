import NIOCore
import SCTPSimulation
import Testing

@testable import SCTPEngine

/// Two endpoints across one simulated path: handshake, bulk transfer, shutdown.
struct OnePathScenario {
    let network: SimulatedNetwork
    let client: EndpointHost
    let server: EndpointHost
    let clientAddress = SCTPSocketAddress(ip: .init(v4: 10, 0, 0, 1), port: 40000)
    let serverAddress = SCTPSocketAddress(ip: .init(v4: 192, 0, 2, 1), port: 9899)

    init(seed: UInt64, link: LinkConfiguration, configure: (inout SCTPConfiguration) -> Void = { _ in }) {
        network = SimulatedNetwork(seed: seed, name: "one-path-\(seed)")
        var configuration = SCTPConfiguration()
        configure(&configuration)
        client = EndpointHost(endpoint: SCTPEndpoint(configuration: configuration, seed: seed &* 3 &+ 1))
        server = EndpointHost(
            endpoint: SCTPEndpoint(
                configuration: configuration, seed: seed &* 5 &+ 2, advertisedAddresses: [serverAddress.ip]))
        network.attach(client, at: clientAddress.ip)
        network.attach(server, at: serverAddress.ip)
        network.addBidirectionalLink(between: clientAddress.ip, and: serverAddress.ip, link)
    }

    func connect() -> SCTPAssociationID {
        var id: SCTPAssociationID!
        client.perform(at: network.now) {
            id = $0.connect(to: serverAddress, from: clientAddress, peerPort: 5000, now: network.now)
        }
        return id
    }
}

@Suite struct HandshakeTests {
    @Test func fourWayHandshakeEstablishesBothSides() throws {
        let s = OnePathScenario(seed: 1, link: LinkConfiguration(delay: .milliseconds(10)))
        _ = s.connect()
        let t = try s.network.runUntil({ !s.client.established.isEmpty && !s.server.established.isEmpty }, timeout: .seconds(5))
        // INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK: two round trips of 20 ms.
        #expect(t == SCTPTime(nanoseconds: 40_000_000))
        #expect(s.server.endpoint.associations.count == 1)
    }

    @Test func serverKeepsNoStateUntilCookieEcho() throws {
        let s = OnePathScenario(seed: 2, link: LinkConfiguration(delay: .milliseconds(10)))
        _ = s.connect()
        try s.network.run(until: SCTPTime(nanoseconds: 15_000_000))  // INIT arrived, INIT-ACK on its way
        #expect(s.server.endpoint.associations.isEmpty)
        try s.network.run(until: SCTPTime(nanoseconds: 35_000_000))  // COOKIE-ECHO arrived
        #expect(s.server.endpoint.associations.count == 1)
    }
}

@Suite struct DataTransferTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func everyByteArrivesInOrderOverIdealLink(seed: UInt64) throws {
        let s = OnePathScenario(seed: seed, link: LinkConfiguration(rateBitsPerSecond: 50_000_000, delay: .milliseconds(20)))
        let id = s.connect()
        s.client.startTransfer(on: id, stream: StreamID(0), total: 1_000_000, messageSize: 10_000)
        s.client.startTransfer(on: id, stream: StreamID(3), total: 300_000, messageSize: 100_000)
        s.client.shutdownWhenDone = true
        try s.network.runUntil({ s.client.closed.count == 1 && s.server.closed.count == 1 }, timeout: .seconds(30))
        #expect(s.server.corruption == nil)
        #expect(s.server.receivedBytes[0] == 1_000_000)
        #expect(s.server.receivedBytes[3] == 300_000)
        #expect(s.client.closed.first?.1 == .shutdownComplete)
        #expect(s.server.closed.first?.1 == .shutdownComplete)
    }

    @Test(arguments: [11, 12, 13, 14, 15] as [UInt64])
    func everyByteArrivesUnderLossReorderingAndDuplication(seed: UInt64) throws {
        let link = LinkConfiguration(
            rateBitsPerSecond: 20_000_000, delay: .milliseconds(15), jitter: .milliseconds(2), lossProbability: 0.10,
            reorderProbability: 0.05, reorderDelay: .milliseconds(3), duplicateProbability: 0.02)
        let s = OnePathScenario(seed: seed, link: link)
        let id = s.connect()
        s.client.startTransfer(on: id, stream: StreamID(1), total: 500_000, messageSize: 3_000)
        s.client.shutdownWhenDone = true
        try s.network.runUntil({ s.client.closed.count == 1 && s.server.closed.count == 1 }, timeout: .seconds(300))
        #expect(s.server.corruption == nil)
        #expect(s.server.receivedBytes[1] == 500_000)
        #expect(s.client.closed.first?.1 == .shutdownComplete)
        #expect(s.server.closed.first?.1 == .shutdownComplete)
    }
}

@Suite struct PacketSizeTests {
    /// Chunks are padded to 4 bytes (RFC 9260 §3.2), so a maximum packet size that is not a multiple of 4 must be
    /// rounded down when filling a packet: the encryption layer takes 33 bytes off 1472 and leaves 1439.
    @Test(arguments: [1439, 1437, 1200] as [Int])
    func noPacketExceedsTheConfiguredMaximum(maxPacketSize: Int) throws {
        let s = OnePathScenario(
            seed: 7, link: LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: .milliseconds(5)),
            configure: { $0.maxPacketSize = maxPacketSize })
        var largest = 0
        s.network.onDelivery = { datagram, _, _ in largest = max(largest, datagram.payload.readableBytes) }
        let id = s.connect()
        s.client.startTransfer(on: id, stream: StreamID(0), total: 300_000, messageSize: 7_001)
        s.client.shutdownWhenDone = true
        try s.network.runUntil({ s.client.closed.count == 1 && s.server.closed.count == 1 }, timeout: .seconds(30))
        #expect(s.server.receivedBytes[0] == 300_000)
        #expect(largest <= maxPacketSize)
        #expect(largest >= maxPacketSize - 3 - 16)  // bulk data still fills packets
    }

    /// An established association (1 MiB send buffer) whose stream 1 has just queued 300 KB, past the high
    /// watermark: the client's endpoint, the association and the scenario.
    static func queueOverItsWatermark(seed: UInt64) throws -> (SCTPEndpoint, SCTPAssociationID, OnePathScenario) {
        let s = OnePathScenario(
            seed: seed, link: LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: .milliseconds(5)),
            configure: { $0.sendBufferSize = 1024 * 1024 })
        let id = s.connect()
        try s.network.runUntil({ s.client.established.count == 1 }, timeout: .seconds(5))
        let endpoint = s.client.endpoint
        try endpoint.send(ByteBuffer(repeating: 1, count: 300_000), on: id, stream: StreamID(1), now: s.network.now)
        return (endpoint, id, s)
    }

    /// Past the high watermark the association still takes a light stream's messages (nothing or little queued,
    /// not on the scheduler's bulk list), up to `sendBufferSize`; the stream that filled the queue waits.
    @Test func aLightStreamIsWritableWhileTheAssociationIsNot() throws {
        let (endpoint, id, s) = try Self.queueOverItsWatermark(seed: 9)
        #expect(!endpoint.isWritable(id))
        #expect(!endpoint.isWritable(id, stream: StreamID(1)))
        #expect(endpoint.isWritable(id, stream: StreamID(0)))
        #expect(endpoint.isWritable(id, stream: StreamID(2)))
        try endpoint.send(ByteBuffer(repeating: 2, count: 64), on: id, stream: StreamID(2), now: s.network.now)
        #expect(endpoint.isWritable(id, stream: StreamID(2)))
        // At the ceiling nothing is writable.
        try endpoint.send(ByteBuffer(repeating: 3, count: 800_000), on: id, stream: StreamID(3), now: s.network.now)
        #expect(!endpoint.isWritable(id, stream: StreamID(0)))
    }

    /// The send-queue delay is the unsent bytes over the rate the paths take data at (here the window per smoothed
    /// round trip: the scenario's controller does not pace): nil before a path has a rate, and zero once
    /// everything has left the queue.
    @Test func theSendQueueDelayIsTheQueueOverThePathsRate() throws {
        let (endpoint, id, s) = try Self.queueOverItsWatermark(seed: 12)
        #expect(endpoint.paths(of: id).first?.srtt == nil)
        #expect(endpoint.sendQueueDelay(id) == nil)
        try s.network.runUntil({ endpoint.paths(of: id).first?.srtt != nil }, timeout: .seconds(5))
        try endpoint.send(ByteBuffer(repeating: 4, count: 200_000), on: id, stream: StreamID(1), now: s.network.now)
        let path = try #require(endpoint.paths(of: id).first)
        let rate = Double(path.cwnd) / (path.srtt?.seconds ?? .infinity)
        // Nothing was acknowledged yet but what the window let out: the rest is unsent.
        let unsent = endpoint.bufferedAmount(id) - path.flightSize
        let delay = try #require(endpoint.sendQueueDelay(id))
        #expect(abs(delay.seconds - Double(unsent) / rate) < 1e-6, "\(delay) for \(unsent) bytes at \(rate) B/s")
        #expect(delay > .milliseconds(50))
        try s.network.runUntil({ endpoint.bufferedAmount(id) == 0 }, timeout: .seconds(10))
        #expect(endpoint.sendQueueDelay(id) == .zero)
    }

    /// With the last chunk's padding left to the layer below (agg's packed datagrams), DATA fills a packet until its
    /// unpadded length is the packet size: 1,455 bytes carry 1,427 of data, and the packet handed out is 1,456 long.
    @Test func aPacketWithoutItsLastPaddingFillsTheSizeToTheByte() throws {
        let s = OnePathScenario(
            seed: 11, link: LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: .milliseconds(5)),
            configure: { $0.maxPacketSize = 1200 })
        var largest = 0
        var unpadded = 0
        s.network.onDelivery = { datagram, _, _ in
            largest = max(largest, datagram.payload.readableBytes)
            guard let packet = try? RawPacket.parse(datagram.payload), let last = packet.chunks.last else { return }
            unpadded = max(unpadded, datagram.payload.readableBytes - (4 - Int(last.length) % 4) % 4)
        }
        let id = s.connect()
        s.client.perform(at: s.network.now) { $0.setMaxPacketSize(1455, for: id, lastChunkUnpadded: true) }
        s.client.startTransfer(on: id, stream: StreamID(0), total: 600_000, messageSize: 7_001)
        s.client.shutdownWhenDone = true
        try s.network.runUntil({ s.client.closed.count == 1 && s.server.closed.count == 1 }, timeout: .seconds(30))
        #expect(s.server.receivedBytes[0] == 600_000)
        #expect(s.server.corruption == nil)
        #expect(largest == 1456)
        #expect(unpadded == 1455)
    }

    /// A stream of datagrams is judged by its own queue alone: past the high watermark it takes datagrams while it
    /// holds less than 64 KiB, though it holds too much to be a light stream; a flood stops at that bound, and
    /// nothing goes past `sendBufferSize`.
    @Test func aDatagramStreamTakesDatagramsUpToItsOwnBound() throws {
        let (endpoint, id, s) = try Self.queueOverItsWatermark(seed: 10)
        #expect(!endpoint.isWritable(id))
        func datagram() throws {
            try endpoint.send(
                ByteBuffer(repeating: 2, count: 1_000), on: id, stream: StreamID(0), unordered: true,
                reliability: .timed(lifetime: .seconds(1)), now: s.network.now)
        }
        for _ in 0..<20 { try datagram() }
        #expect(!endpoint.isWritable(id, stream: StreamID(0)), "20 KB queued: not a light stream")
        #expect(endpoint.takesDatagram(id, on: StreamID(0)))
        var taken = 20
        while endpoint.takesDatagram(id, on: StreamID(0)) {
            try datagram()
            taken += 1
        }
        #expect((65...80).contains(taken), "64 KiB of 1,000-byte datagrams (a few sent meanwhile): \(taken)")
        #expect(endpoint.takesDatagram(id, on: StreamID(4)), "another stream's bound is its own")
        try endpoint.send(ByteBuffer(repeating: 3, count: 800_000), on: id, stream: StreamID(3), now: s.network.now)
        #expect(!endpoint.takesDatagram(id, on: StreamID(4)), "at the ceiling nothing is taken")
    }

    /// `setMaxPacketSize` (the layer below learnt its overhead is smaller than it left room for) takes effect on the
    /// next packet of every path: a transfer started at 1,200-byte packets goes on at 1,436.
    @Test func aLargerPacketSizeSetMidTransferFillsTheLargerPackets() throws {
        let s = OnePathScenario(
            seed: 8, link: LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: .milliseconds(5)),
            configure: { $0.maxPacketSize = 1200 })
        var largest = 0
        s.network.onDelivery = { datagram, _, _ in largest = max(largest, datagram.payload.readableBytes) }
        let id = s.connect()
        s.client.startTransfer(on: id, stream: StreamID(0), total: 600_000, messageSize: 7_001)
        try s.network.runUntil({ s.server.totalReceivedBytes >= 100_000 }, timeout: .seconds(30))
        #expect(largest <= 1200)
        // Below the 508 bytes every path must carry: ignored, packets stay at 1,200.
        s.client.perform(at: s.network.now) { $0.setMaxPacketSize(300, for: id) }
        largest = 0
        try s.network.runUntil({ s.server.totalReceivedBytes >= 200_000 }, timeout: .seconds(30))
        #expect(largest == 1200, "\(largest)")
        s.client.perform(at: s.network.now) { $0.setMaxPacketSize(1439, for: id) }
        largest = 0
        try s.network.runUntil({ s.server.totalReceivedBytes == 600_000 }, timeout: .seconds(30))
        #expect(s.server.corruption == nil)
        #expect(largest == 1436, "\(largest)")
    }
}
