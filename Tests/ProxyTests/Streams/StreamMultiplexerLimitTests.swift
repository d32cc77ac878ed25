import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import SCTPEngine
import Testing

@testable import Proxy

/// A server-side multiplexer fed messages as a hostile key holder would send them: every stream opened at once, each
/// filled to its credit while its target never connects (the DATA waits in the relay). The association's limits
/// hold whatever the peer does, and every refusal is counted.
@Suite struct StreamMultiplexerLimitTests {
    static let credit = 64 * 1024
    static let cap = 256 * 1024

    /// Runs `body` on the event loop of a driver bound to loopback, with a server multiplexer whose replies go to
    /// an association that does not exist (the driver drops them).
    static func withMultiplexer(
        streams: Int, _ body: @escaping @Sendable (StreamMultiplexer, ProxyMetrics, () -> [StreamRelay]) throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let driver = try await SCTPDriver.bind(
            localAddresses: [SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: 0)],
            configuration: SCTPConfiguration(), seed: 1, on: loop
        ).get()
        try await loop.submit {
            let metrics = ProxyMetrics()
            let multiplexer = StreamMultiplexer(
                driver: driver, association: SCTPAssociationID(1), role: .server, table: StreamTable(limit: streams),
                receiveCredit: UInt32(credit), sendCredit: 0, idleTimeout: .seconds(60),
                bufferedBytesLimit: cap, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            multiplexer.metrics = metrics
            var opened: [StreamRelay] = []
            // The targets never connect: DATA waits in the relays' backlogs and counts as buffered.
            multiplexer.onOpen = { relay, _ in opened.append(relay) }
            try body(multiplexer, metrics, { opened })
            multiplexer.associationLost()
        }.get()
        try await driver.close().get()
        try await group.shutdownGracefully()
    }

    static func message(_ message: StreamMessage, on stream: Int) -> SCTPMessage {
        SCTPMessage(stream: StreamID(UInt16(stream)), ppid: message.ppid, isUnordered: false, payload: message.encode())
    }

    static let target = StreamTarget(host: "127.0.0.1", port: 9)

    /// 16 streams opened before any byte arrives each bring 64 KiB of credit, four times the 256 KiB cap; each is
    /// then filled to its credit, round by round. The association never holds more than its cap: once it is full,
    /// each DATA resets the stream holding the most, and at least 12 streams go (1 MiB arrived, each reset stream
    /// takes at most its 64 KiB with it), each counted. On main the check was made only when a stream opened, and
    /// all 16 × 64 KiB were held.
    @Test func dataBeyondTheBufferedBytesCapResetsAStream() async throws {
        try await Self.withMultiplexer(streams: 64) { multiplexer, metrics, opened in
            for stream in 1...16 {
                multiplexer.receive(Self.message(.open(Self.target, initialCredit: 0), on: stream))
            }
            #expect(opened().count == 16)
            let chunk = ByteBuffer(repeating: 0x5A, count: 16 * 1024)
            for _ in 0..<(Self.credit / chunk.readableBytes) {
                for stream in 1...16 {
                    multiplexer.receive(Self.message(.data(chunk), on: stream))
                    #expect(multiplexer.bufferedBytes <= Self.cap)
                }
            }
            #expect(multiplexer.bufferedBytes == Self.cap)
            let resets = metrics.refusals[.bufferedBytesPerAssociation] ?? 0
            #expect(resets >= 12)
            #expect(multiplexer.activeStreams == 16 - resets)
            #expect(opened().filter { $0.bufferedBytes == 0 }.count == resets)
        }
    }

    /// At the cap, DATA for a stream whose socket takes everything at once resets a stream that holds bytes its
    /// socket did not take, not the one that drains.
    @Test func theStreamHoldingTheMostIsResetNotTheOneThatDrains() async throws {
        try await Self.withMultiplexer(streams: 64) { multiplexer, metrics, opened in
            for stream in 1...5 {
                multiplexer.receive(Self.message(.open(Self.target, initialCredit: 0), on: stream))
            }
            let healthy = opened()[0]
            let socket = EmbeddedChannel()
            _ = try socket.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            healthy.connected(socket)
            let chunk = ByteBuffer(repeating: 0x33, count: 16 * 1024)
            for stream in 2...5 {
                for _ in 0..<4 { multiplexer.receive(Self.message(.data(chunk), on: stream)) }
            }
            #expect(multiplexer.bufferedBytes == Self.cap)
            multiplexer.receive(Self.message(.data(chunk), on: 1))
            #expect(metrics.refusals[.bufferedBytesPerAssociation] == 1)
            #expect(multiplexer.relays[StreamID(1)] === healthy)
            #expect(try socket.readOutbound(as: ByteBuffer.self) == chunk)
            #expect(multiplexer.bufferedBytes == Self.cap - Self.credit)
            #expect(multiplexer.activeStreams == 4)
        }
    }

    /// OPENs beyond the streams-per-association limit are refused with OPEN-RESULT "too many streams" and counted
    /// both as refused connections and as refusals of that limit.
    @Test func opensBeyondTheStreamLimitAreRefusedAndCounted() async throws {
        try await Self.withMultiplexer(streams: 8) { multiplexer, metrics, opened in
            for stream in 1...13 {
                multiplexer.receive(Self.message(.open(Self.target, initialCredit: 0), on: stream))
            }
            #expect(opened().count == 8)
            #expect(multiplexer.activeStreams == 8)
            #expect(metrics.refusals[.streamsPerAssociation] == 5)
            #expect(metrics.values.connections[ConnectionOutcome.tooManyStreams.rawValue] == 5)
        }
    }
}
