import AggProtocol
import AggTransport
import Foundation
import NIOCore
import NIOPosix
import SCTPEngine
import Testing

@testable import AggObservability
@testable import Proxy

/// What one side can be made to queue by a peer that acknowledges nothing: many streams whose targets (server) or
/// applications (client) all send at once. The relayed connections' reads must stop near the association's send
/// buffer, whatever the number of streams: a read allowed while the buffer had room must not bring a whole grown read
/// past it once other streams filled it, nor every stream waiting for a drain one such read each.
@Suite(.serialized) struct EgressReadBoundTests {
    static let streams = 300
    static let responseSize = 64 * 1024
    static let sendBuffer = 256 * 1024

    /// 300 streams open to targets that then send 64 KiB each at the same moment, while the client's loop is blocked
    /// (nothing acknowledged, nothing read). What the server read and has not sent (queued on the association, or
    /// waiting in the session for a stream's credit) stays within twice its send buffer plus a small read per stream
    /// (a first read armed before the session could hold it back, and one read allowed while the buffer still had
    /// room), through the drain when the client runs again. Before reads were sized when made the queue reached
    /// 8.8-9.2 MB here; with the client's credit at its least (16 KiB per stream), the bytes waiting for credit
    /// reached 5.0 MB while only the queue sized the reads. Every response arrives whole.
    @Test(arguments: [nil, AggLimits.maxDataPayload])
    func targetsAnsweringAtOnceQueueNoMoreThanTheSendBufferAndASmallReadPerStream(clientCredit: Int?) throws {
        var clientLimits = StreamLimits()
        if let clientCredit { clientLimits.streamCredit = UInt32(clientCredit) }
        let harness = try AttackHarness(clientLimits: clientLimits) { $0.sendBufferSize = Self.sendBuffer }
        defer { harness.shutdown() }
        // The client runs again after two seconds: its acknowledgements drain the queue below the buffer's low
        // watermark, and every stream whose read waited for that may read again at the same moment.
        let (queued, sockets) = try Self.targetsAnswerWhileTheClientIsBlocked(harness, closing: false)
        // The scenario loaded the association: without the bound this is where the queue grows past it.
        #expect(queued > Self.sendBuffer, "the server queued only \(queued) bytes")
        let bound = 2 * Self.sendBuffer + Self.streams * 2 * 1024 + 64 * 1024
        #expect(queued <= bound, "the server queued \(queued) bytes for one client, bound \(bound)")

        // Nothing lost: every response arrives whole once the client runs again.
        var intact = 0
        for socket in sockets where socket.receive(Self.responseSize) == Self.response {
            intact += 1
        }
        #expect(intact == Self.streams)
    }

    /// 300 streams whose targets each send 64 KiB and close at the same moment, while the client's loop is blocked.
    /// At a peer's FIN, NIO reads everything its socket holds whether or not the session allowed a read, so the
    /// bound above does not hold here: what the server read and has not sent was bounded only by the streams'
    /// windows, and reached 19.6-19.7 MB here, every response (300 × 64 KiB) at once. A read the session did not
    /// allow that would take the association past its limit (four times the buffered-bytes cap: 4 MiB here) now
    /// resets its stream: the queue stays within the limit and the small first read each stream was allowed (armed
    /// as it connected, cut to 2 KiB past the read bound), every stream's response arrives whole or the stream is
    /// reset, and each reset is counted.
    @Test func targetsClosingAtOnceQueueNoMoreThanTheAssociationsLimit() throws {
        var serverLimits = StreamLimits()
        serverLimits.bufferedBytesPerAssociation = 1024 * 1024
        let limit = 4 * serverLimits.bufferedBytesPerAssociation
        let harness = try AttackHarness(serverLimits: serverLimits) { $0.sendBufferSize = Self.sendBuffer }
        defer { harness.shutdown() }
        let (queued, sockets) = try Self.targetsAnswerWhileTheClientIsBlocked(harness, closing: true)
        #expect(queued > limit / 2, "the server queued only \(queued) bytes")
        let bound = limit + Self.streams * TCPReads.leastRead + 64 * 1024
        #expect(queued <= bound, "the server queued \(queued) bytes for one client, bound \(bound)")

        var intact = 0
        for socket in sockets where socket.receive(Self.responseSize) == Self.response {
            intact += 1
        }
        let resets = try harness.server.eventLoop.submit {
            harness.server.metrics.refusals[.bufferedBytesPerAssociation] ?? 0
        }.wait()
        #expect(intact >= limit / 2 / Self.responseSize, "\(intact) responses arrived whole")
        #expect(resets > 0 && intact + resets == Self.streams, "\(intact) whole, \(resets) reset")
    }

    /// The same from the applications' side, on aggclient (a router's LAN uploading through it): 300 connections
    /// each write 64 KiB at once while the server's loop is blocked. What the client read and has not sent stays
    /// within twice its send buffer (4 MiB by default) and a small read per connection (14.0-14.4 MB before the
    /// client's reads were sized the same way); every byte reaches the targets afterwards.
    @Test func applicationsUploadingAtOnceQueueNoMoreThanTheSendBufferAndASmallReadPerConnection() throws {
        let harness = try AttackHarness()
        defer { harness.shutdown() }
        let origin = try BurstOrigin.start(on: harness.origin.eventLoop)
        defer { try? origin.channel.close().wait() }
        let sendBuffer = SCTPConfiguration().sendBufferSize

        let sockets = try Self.openStreams(harness, to: origin)
        Self.block(harness.server.eventLoop)
        let peak = try harness.clientQueuePeak()
        // What each socket takes at once (the kernel's buffers), the rest as the client reads it.
        var offsets = [Int](repeating: 0, count: sockets.count)
        func sendWhatFits() {
            for index in sockets.indices where offsets[index] < Self.responseSize {
                offsets[index] = sockets[index].send(Self.response, from: offsets[index])
            }
        }
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(3) {
            sendWhatFits()
            Thread.sleep(forTimeInterval: 0.01)
        }
        let queued = try peak.stop()
        #expect(queued > sendBuffer / 2, "the client queued only \(queued) bytes")
        let bound = 2 * sendBuffer + Self.streams * 2 * 1024 + 64 * 1024
        #expect(queued <= bound, "the client queued \(queued) bytes, bound \(bound)")
        // Nothing lost: every byte reaches the targets once the server runs again.
        let total = Self.streams * Self.responseSize
        #expect(
            try AttackHarness.wait(seconds: 20) {
                sendWhatFits()
                return origin.received == total
            }, "the targets received \(origin.received) of \(total) bytes")
    }

    /// `streams` streams through client 0 to a `BurstOrigin`; the client's loop stops (no SACK, no read) for two
    /// seconds, and meanwhile every target sends `response` (and closes, when `closing`). The most the server read
    /// and did not send over the next three seconds, and the sockets; the origin stays open until the harness
    /// shuts down (its connections may still be read).
    static func targetsAnswerWhileTheClientIsBlocked(
        _ harness: AttackHarness, closing: Bool
    ) throws -> (queued: Int, sockets: [AttackSocket]) {
        let origin = try BurstOrigin.start(on: harness.origin.eventLoop)
        let sockets = try openStreams(harness, to: origin)
        block(harness.clients[0].eventLoop)
        let peak = try harness.serverQueuePeak()
        origin.sendToEveryConnection(response, thenClose: closing)
        Thread.sleep(forTimeInterval: 3)
        return (try peak.stop(), sockets)
    }

    /// `streams` SOCKS5 connections through client 0 to `origin`, every one accepted there.
    static func openStreams(_ harness: AttackHarness, to origin: BurstOrigin) throws -> [AttackSocket] {
        var sockets: [AttackSocket] = []
        for index in 0..<streams {
            let socket = try #require(AttackSocket(port: harness.proxyPorts[0]), "connection \(index)")
            try #require(socket.socks5Connect(port: UInt16(origin.port)) == 0, "connection \(index) refused")
            sockets.append(socket)
        }
        #expect(try AttackHarness.wait(seconds: 10) { origin.connected == streams })
        return sockets
    }

    /// Once every OPEN-RESULT is on its way, blocks `loop` for two seconds; returns when the block has begun.
    static func block(_ loop: any EventLoop) {
        Thread.sleep(forTimeInterval: 0.3)
        let blocked = DispatchSemaphore(value: 0)
        loop.execute {
            blocked.signal()
            Thread.sleep(forTimeInterval: 2)
        }
        blocked.wait()
    }

    static let response: [UInt8] = (0..<responseSize).map { UInt8(truncatingIfNeeded: $0 % 251) }
}

extension AttackHarness {
    /// Samples the bytes the server read from targets and has not sent, over its associations.
    func serverQueuePeak() throws -> QueuePeak {
        let server = server
        return try QueuePeak.start(on: server.eventLoop) { server.unsentReads.values.reduce(0, +) }
    }

    /// Samples the bytes client `index` read from applications and has not sent.
    func clientQueuePeak(_ index: Int = 0) throws -> QueuePeak {
        let client = clients[index]
        return try QueuePeak.start(on: client.eventLoop) {
            guard let (group, id) = client.currentAssociation, let streams = client.currentStreams else { return 0 }
            return group.driver.queuedAmount(id) + streams.unsentReadBytes
        }
    }

    /// The largest of a count sampled every millisecond on a loop (a burst of reads and the acknowledgements that
    /// drain it are separate turns of the loop); confined to that loop.
    final class QueuePeak: @unchecked Sendable {
        private var value = 0
        private var task: RepeatedTask?
        private let loop: any EventLoop

        private init(loop: any EventLoop) {
            self.loop = loop
        }

        static func start(on loop: any EventLoop, _ sample: @escaping @Sendable () -> Int) throws -> QueuePeak {
            let peak = QueuePeak(loop: loop)
            peak.task = try loop.submit {
                loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { _ in
                    peak.value = max(peak.value, sample())
                }
            }.wait()
            return peak
        }

        func stop() throws -> Int {
            let promise = loop.makePromise(of: Void.self)
            task?.cancel(promise: promise)
            try promise.futureResult.wait()
            return try loop.submit { self.value }.wait()
        }
    }
}

/// A TCP server that accepts connections and sends nothing until told to send the same bytes on every one.
final class BurstOrigin: @unchecked Sendable {
    let channel: any Channel
    let port: Int
    private let children: Children

    private init(channel: any Channel, children: Children) {
        self.channel = channel
        self.children = children
        port = channel.localAddress!.port!
    }

    static func start(on loop: any EventLoop) throws -> BurstOrigin {
        let children = Children()
        let channel = try ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 512)
            .childChannelInitializer { child in
                children.add(child)
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ByteCounter(children: children))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        return BurstOrigin(channel: channel, children: children)
    }

    var connected: Int { children.all.count }
    /// Bytes received over every connection.
    var received: Int { children.received }

    /// Sends `bytes` on every connection, then closes each once they are written when `thenClose`.
    func sendToEveryConnection(_ bytes: [UInt8], thenClose: Bool = false) {
        for child in children.all {
            let written = child.writeAndFlush(ByteBuffer(bytes: bytes))
            if thenClose { written.whenComplete { _ in child.close(promise: nil) } }
        }
    }

    private final class Children: @unchecked Sendable {
        private let lock = NSLock()
        private var channels: [any Channel] = []
        private var bytes = 0
        var all: [any Channel] { lock.withLock { channels } }
        var received: Int { lock.withLock { bytes } }
        func add(_ channel: any Channel) { lock.withLock { channels.append(channel) } }
        func count(_ count: Int) { lock.withLock { bytes += count } }
    }

    private final class ByteCounter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let children: Children

        init(children: Children) {
            self.children = children
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            children.count(unwrapInboundIn(data).readableBytes)
        }
    }
}
