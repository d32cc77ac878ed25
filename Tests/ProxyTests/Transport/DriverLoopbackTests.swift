import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggTransport
@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// Two drivers on real UDP sockets on 127.0.0.1: handshake, a bulk transfer checked byte for byte, graceful
/// shutdown.
@Suite struct DriverLoopbackTests {
    /// aggserver's default listens on 0.0.0.0:9899 and [::]:9899; without IPV6_V6ONLY on the second socket the
    /// kernel (net.ipv6.bindv6only = 0) refuses it with EADDRINUSE, and the packaged server did not start.
    @Test func wildcardIPv4AndIPv6BindTheSamePort() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let port = try EndToEndHarness.freeUDPPort()
        let driver = try await SCTPDriver.bind(
            localAddresses: [SCTPSocketAddress(ip: .anyV4, port: port), SCTPSocketAddress(ip: .anyV6, port: port)],
            configuration: SCTPConfiguration(), seed: 1, on: loop
        ).get()
        let bound = try await loop.submit { driver.localAddresses }.get()
        #expect(bound.map(\.port) == [port, port])
        try await driver.close().get()
    }

    /// What a 2 MiB transfer from a client driver to a server driver on 127.0.0.1 came to.
    struct Transfer {
        var sent: ByteBuffer
        var received: ByteBuffer
        var clientReason: SCTPCloseReason
        var serverReason: SCTPCloseReason
        var established: Bool
        var peerShutdown: Bool
        var clientStats: SCTPDriver.Statistics
        var serverStats: SCTPDriver.Statistics
    }

    /// Handshake, 2 MiB in 64 KiB messages, graceful shutdown; `clientSends` decides some of the client's sends
    /// instead of the kernel (`SCTPDriver.simulatedSend`).
    func transfer(
        options: SCTPDriver.Options, clientSends: ((Bool) -> UDPSocket.SendResult?)? = nil
    ) async throws -> Transfer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let localhost = SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)
        var serverConfiguration = SCTPConfiguration()
        serverConfiguration.localPort = 7001
        let serverPort = serverConfiguration.localPort
        var clientConfiguration = SCTPConfiguration()
        clientConfiguration.localPort = 7000

        let server = try await SCTPDriver.bind(
            localAddresses: [localhost], configuration: serverConfiguration, seed: 1, options: options, on: loop
        ).get()
        let client = try await SCTPDriver.bind(
            localAddresses: [localhost], configuration: clientConfiguration, seed: 2, options: options, on: loop
        ).get()

        let total = 2 * 1024 * 1024
        var data = ByteBuffer()
        for i in 0..<total { data.writeInteger(UInt8(truncatingIfNeeded: i &* 7 &+ i >> 9)) }
        let sender = BulkSender(driver: client, data: data, messageSize: 64 * 1024)
        let receiver = Collector(driver: server)

        let clientClosed = loop.makePromise(of: SCTPCloseReason.self)
        let serverClosed = loop.makePromise(of: SCTPCloseReason.self)
        let timeout = loop.scheduleTask(in: .seconds(30)) {
            clientClosed.fail(TimedOut())
            serverClosed.fail(TimedOut())
        }
        try await loop.submit {
            sender.closed = clientClosed
            receiver.closed = serverClosed
            client.onEvent = sender.handle
            server.onEvent = receiver.handle
            client.simulatedSend = clientSends
            let serverAddress = server.localAddresses[0]
            sender.association = client.connect(to: serverAddress, peerPort: serverPort)
        }.get()

        let clientReason = try await clientClosed.futureResult.get()
        let serverReason = try await serverClosed.futureResult.get()
        timeout.cancel()
        let result = try await loop.submit {
            Transfer(
                sent: data, received: receiver.received, clientReason: clientReason, serverReason: serverReason,
                established: sender.established && receiver.established, peerShutdown: receiver.sawShutdown,
                clientStats: client.statistics, serverStats: server.statistics)
        }.get()
        try await client.close().get()
        try await server.close().get()
        try await group.shutdownGracefully()
        return result
    }

    /// Both with UDP segmentation offload (the default: runs of full-size datagrams leave in one write and arrive
    /// in one read) and without it.
    @Test(arguments: [true, false])
    func handshakeBulkTransferAndShutdown(segmentationOffload: Bool) async throws {
        var options = SCTPDriver.Options()
        options.segmentationOffload = segmentationOffload
        let run = try await transfer(options: options)
        let (clientStats, serverStats) = (run.clientStats, run.serverStats)
        #expect(run.clientReason == .shutdownComplete)
        #expect(run.serverReason == .shutdownComplete)
        #expect(run.established)
        #expect(run.peerShutdown)
        #expect(run.received.readableBytes == run.sent.readableBytes)
        #expect(run.received == run.sent)
        #expect(clientStats.sendFailures == 0 && serverStats.sendFailures == 0)
        #expect(clientStats.deferredWrites == 0)
        #expect(clientStats.bytesSent > run.sent.readableBytes)
        if segmentationOffload && System.supportsUDPSegmentationOffload {
            // 2 MiB in 64 KiB messages: most of the data leaves in runs of full-size datagrams.
            #expect(clientStats.segmentedWrites > 10)
            #expect(clientStats.datagramsSent > clientStats.segmentedWrites * 4)
        } else {
            #expect(clientStats.segmentedWrites == 0)
        }
        // Every datagram the client sent was received whole, one by one, whether the kernel handed them up in runs
        // or singly (none is lost on loopback).
        #expect(serverStats.datagramsReceived == clientStats.datagramsSent)
        #expect(serverStats.bytesReceived == clientStats.bytesSent)
    }

    /// A send the socket cannot take at once (EAGAIN: its send buffer full, as behind a slow uplink's queue)
    /// waits in the channel, and the sends after it queue behind it until it has left: nothing is lost or
    /// reordered, so the transfer needs no retransmission.
    @Test func sendsTheSocketCannotTakeWaitInTheChannel() async throws {
        var calls = 0
        let run = try await transfer(options: SCTPDriver.Options()) { _ in
            calls += 1
            return calls % 3 == 0 ? .wouldBlock : nil
        }
        #expect(run.clientReason == .shutdownComplete && run.serverReason == .shutdownComplete)
        #expect(run.received == run.sent)
        #expect(run.clientStats.deferredWrites > 5)
        #expect(run.clientStats.sendFailures == 0)
        #expect(run.serverStats.datagramsReceived == run.clientStats.datagramsSent)
    }

    /// A device without checksum offload refuses segmented sends (EIO): the failure is counted, the socket sends
    /// datagram by datagram from then on, and SCTP retransmits what was refused.
    @Test func refusedSegmentedSendTurnsSegmentationOff() async throws {
        guard System.supportsUDPSegmentationOffload else { return }
        let run = try await transfer(options: SCTPDriver.Options()) { segmented in segmented ? .failed(errno: EIO) : nil
        }
        #expect(run.clientReason == .shutdownComplete && run.serverReason == .shutdownComplete)
        #expect(run.received == run.sent)
        #expect(run.clientStats.segmentedWrites == 1)
        #expect(run.clientStats.sendFailures > 1)
    }

    /// A driver bound to 127.0.0.1 on an event loop group of its own.
    static func driverOnLoopback(
        seed: UInt64
    ) async throws -> (MultiThreadedEventLoopGroup, any EventLoop, SCTPDriver) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let driver = try await SCTPDriver.bind(
            localAddresses: [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)],
            configuration: SCTPConfiguration(), seed: seed, on: loop
        ).get()
        return (group, loop, driver)
    }

    @Test func datagramWithoutAChannelOfItsFamilyIsCounted() async throws {
        let (group, loop, driver) = try await DriverLoopbackTests.driverOnLoopback(seed: 3)
        // An IPv6 destination has no channel of its family: the INIT is counted as a failed send, not written.
        let failures = try await loop.submit {
            _ = driver.connect(to: SCTPSocketAddress("[::1]:9")!, peerPort: 9)
            return driver.statistics.sendFailures
        }.get()
        #expect(failures == 1)
        try await driver.close().get()
        try await group.shutdownGracefully()
    }

    /// Without SO_BROADCAST, sendmsg to 255.255.255.255 fails with EACCES: the driver counts it, and the socket
    /// stays as it is (a refused send says nothing about the socket).
    @Test func sendTheKernelRefusesIsCountedAndTheSocketKept() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let driver = try await SCTPDriver.bind(
            localAddresses: [SCTPSocketAddress(ip: .anyV4, port: 0)], configuration: SCTPConfiguration(), seed: 4,
            on: loop
        ).get()
        let port = try await loop.submit { driver.localAddresses[0].port }.get()
        // The INIT leaves (and fails) within `connect`: counted at once. (Read later, the INIT's retransmissions
        // would add to it on a slow machine.)
        let failures = try await loop.submit {
            _ = driver.connect(to: SCTPSocketAddress("255.255.255.255:9")!, peerPort: 9)
            return driver.statistics.sendFailures
        }.get()
        #expect(failures == 1)
        try await Task.sleep(for: .milliseconds(300))
        let (stats, bound, isOpen) = try await loop.submit {
            (driver.statistics, driver.localAddresses, driver.sockets[0].isOpen)
        }.get()
        #expect(stats.sendFailures >= 1)
        #expect(stats.rebinds == 0)
        #expect(isOpen)
        #expect(bound == [SCTPSocketAddress(ip: .anyV4, port: port)])
        try await driver.close().get()
        try await group.shutdownGracefully()
    }

    /// A channel that closes under the driver (a read error NIO finds fatal) is bound again to the same address,
    /// and the driver writes to the new socket, not to the old descriptor.
    @Test func channelClosedUnderTheDriverIsBoundAgain() async throws {
        let (group, loop, driver) = try await DriverLoopbackTests.driverOnLoopback(seed: 5)
        let bound = try await loop.submit { driver.localAddresses }.get()
        try await loop.submit { driver.sockets[0].channel.close(promise: nil) }.get()
        var rebound = false
        for _ in 0..<200 where !rebound {
            try await Task.sleep(for: .milliseconds(50))
            rebound = try await loop.submit { driver.statistics.rebinds == 1 }.get()
        }
        #expect(rebound)
        let (boundAgain, isOpen) = try await loop.submit { (driver.localAddresses, driver.sockets[0].isOpen) }.get()
        #expect(boundAgain == bound)
        #expect(isOpen)
        // The new socket sends: an INIT to a closed port leaves without a failure.
        let failures = try await loop.submit {
            _ = driver.connect(to: SCTPSocketAddress("127.0.0.1:9")!, peerPort: 9)
            return driver.statistics.sendFailures
        }.get()
        #expect(failures == 0)
        try await driver.close().get()
        try await group.shutdownGracefully()
    }
}

struct TimedOut: Error {}

/// Sends a buffer as messages whenever the association is writable, then shuts down. Confined to the loop.
final class BulkSender: @unchecked Sendable {
    let driver: SCTPDriver
    var data: ByteBuffer
    let messageSize: Int
    var association: SCTPAssociationID?
    var established = false
    var closed: EventLoopPromise<SCTPCloseReason>?
    private var didShutdown = false

    init(driver: SCTPDriver, data: ByteBuffer, messageSize: Int) {
        self.driver = driver
        self.data = data
        self.messageSize = messageSize
    }

    func handle(_ event: SCTPEvent) {
        switch event {
        case .established:
            established = true
            pump()
        case .writable:
            pump()
        case .closed(_, let reason):
            closed?.succeed(reason)
        case .message, .pathStateChanged, .pathRemoteChanged, .shutdownReceived, .associationRefused:
            break
        }
    }

    private func pump() {
        guard let association, !didShutdown else { return }
        while data.readableBytes > 0, driver.isWritable(association) {
            let message = data.readSlice(length: min(messageSize, data.readableBytes))!
            do {
                try driver.send(message, on: association, stream: StreamID(0))
            } catch {
                Issue.record("send failed: \(error)")
                return
            }
        }
        if data.readableBytes == 0 {
            didShutdown = true
            driver.shutdown(association)
        }
    }
}

/// Collects every message received. Confined to the loop.
final class Collector: @unchecked Sendable {
    let driver: SCTPDriver
    var received = ByteBuffer()
    var established = false
    var sawShutdown = false
    var closed: EventLoopPromise<SCTPCloseReason>?

    init(driver: SCTPDriver) { self.driver = driver }

    func handle(_ event: SCTPEvent) {
        switch event {
        case .established: established = true
        case .message(_, var message): received.writeBuffer(&message.payload)
        case .shutdownReceived: sawShutdown = true
        case .closed(_, let reason): closed?.succeed(reason)
        case .writable, .pathStateChanged, .pathRemoteChanged, .associationRefused: break
        }
    }
}

/// When the engine's input is stamped: the time each datagram was read, not the time its read batch began.
@Suite struct DriverReadClockTests {
    /// One read event runs several `recvmmsg` calls, so a datagram handed up later in a batch may have arrived long
    /// after the batch began (a busy host preempts the loop mid-batch). Stamped with the batch's first clock, a SACK
    /// in it measured a round trip shorter than the path's (6-11 ms on a 20 ms lab path), which bbr took for its
    /// minimum. Each datagram NIO hands up reads the clock; a run of offloaded segments, which arrived together,
    /// reads it once.
    @Test func eachDatagramOfAReadBatchIsStampedWhenItIsHandedUp() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let driver = try await SCTPDriver.bind(
            localAddresses: [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)],
            configuration: SCTPConfiguration(), seed: 5, on: loop
        ).get()
        let (reads, received) = try await loop.submit {
            var reads = 0
            driver.readClock = {
                reads += 1
                return SCTPTime(nanoseconds: 1_000_000_000 + Int64(reads) * 5_000_000)
            }
            let peer = try SocketAddress(ipAddress: "127.0.0.1", port: 5000)
            // Two datagrams and a run of three offloaded segments, all in one read batch (no read-complete between).
            var datagram = ByteBufferAllocator().buffer(capacity: 100)
            datagram.writeRepeatingByte(0x5a, count: 100)
            driver.receive(AddressedEnvelope(remoteAddress: peer, data: datagram), on: 0)
            driver.receive(AddressedEnvelope(remoteAddress: peer, data: datagram), on: 0)
            var run = ByteBufferAllocator().buffer(capacity: 300)
            run.writeRepeatingByte(0x5a, count: 300)
            let offloaded = AddressedEnvelope<ByteBuffer>.Metadata(
                ecnState: .transportNotCapable, packetInfo: nil, segmentSize: 100)
            driver.receive(AddressedEnvelope(remoteAddress: peer, data: run, metadata: offloaded), on: 0)
            driver.receiveComplete()
            return (reads, driver.statistics.datagramsReceived)
        }.get()
        #expect(received == 5)
        #expect(reads == 3)
        try await driver.close().get()
        try await group.shutdownGracefully()
    }
}
