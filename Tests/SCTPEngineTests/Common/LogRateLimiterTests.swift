import Logging
import NIOCore
import Synchronization
import Testing

@testable import SCTPEngine

/// Log lines a peer can cause with every packet are rate-limited: `LogRateLimiter` itself, and an association fed
/// a flood of ERROR chunks and of new source ports.
@Suite struct LogRateLimiterTests {
    @Test func letsTheBurstThroughPerIntervalAndCountsTheRest() {
        var limiter = LogRateLimiter(burst: 3, interval: .seconds(10))
        let start = SCTPTime(nanoseconds: 5_000_000_000)
        let first = (0..<10).map { limiter.admit(now: start + .milliseconds(Int64($0))) }
        #expect(first == [0, 0, 0, nil, nil, nil, nil, nil, nil, nil])
        // The next interval: the first line that passes says how many were held back.
        #expect(limiter.admit(now: start + .seconds(10)) == 7)
        #expect(limiter.admit(now: start + .seconds(11)) == 0)
        #expect(limiter.totalHeldBack == 7)
    }

    @Test func aClockThatGoesBackStartsANewInterval() {
        var limiter = LogRateLimiter(burst: 1, interval: .seconds(10))
        #expect(limiter.admit(now: SCTPTime(nanoseconds: 50_000_000_000)) == 0)
        #expect(limiter.admit(now: SCTPTime(nanoseconds: 51_000_000_000)) == nil)
        #expect(limiter.admit(now: SCTPTime(nanoseconds: 1_000_000_000)) == 1)
    }

    /// The lines a logger received, by message.
    final class Recorder: Sendable {
        let lines = Mutex<[String]>([])

        var logger: Logger {
            Logger(label: "test") { _ in Handler(recorder: self) }
        }

        func count(_ message: String) -> Int { lines.withLock { $0.filter { $0 == message }.count } }

        /// Appends every message to the recorder.
        struct Handler: LogHandler {
            let recorder: Recorder
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                recorder.lines.withLock { $0.append("\(event.message)") }
            }
        }
    }

    @Test func aFloodOfErrorCausesLogsAtMostTheBurstPerInterval() {
        let recorder = Recorder()
        let l = Lockstep()
        l.server.logger = recorder.logger
        _ = l.connect()
        l.exchange()
        let association = l.server.associations.values.first!
        for _ in 0..<200 {
            var builder = PacketBuilder(
                header: CommonHeader(
                    sourcePort: 5000, destinationPort: 5000, verificationTag: association.localTag, checksum: 0))
            builder.add(.error(ErrorChunk(causes: [.outOfResource, .invalidMandatoryParameter, .outOfResource])))
            let packet = SCTPDatagram(source: l.clientAddress, destination: l.serverAddress, payload: builder.finish())
            l.deliver([packet], to: l.server)
        }
        #expect(recorder.count("peer reported error") == LogRateLimiter().burst)
        #expect(association.logLimits.peerError.totalHeldBack == 600 - LogRateLimiter().burst)
        #expect(association.state.isEstablishedOrLater, "the association goes on")
    }

    @Test func aPeerChangingItsPortOnEveryPacketLogsAtMostTheBurstPerInterval() {
        let recorder = Recorder()
        let l = Lockstep()
        l.server.logger = recorder.logger
        _ = l.connect()
        l.exchange()
        let association = l.server.associations.values.first!
        for port in 0..<200 {
            var builder = PacketBuilder(
                header: CommonHeader(
                    sourcePort: 5000, destinationPort: 5000, verificationTag: association.localTag, checksum: 0))
            builder.add(.heartbeat(HeartbeatChunk(info: ByteBuffer(bytes: [1]))))
            let source = SCTPSocketAddress(ip: l.clientAddress.ip, port: UInt16(41000 + port))
            let packet = SCTPDatagram(source: source, destination: l.serverAddress, payload: builder.finish())
            l.deliver([packet], to: l.server)
        }
        #expect(recorder.count("path remote changed (NAT rebinding)") == LogRateLimiter().burst)
        #expect(association.paths[0].remoteAddress.port == 41199, "the path still follows every rebinding")
    }
}
