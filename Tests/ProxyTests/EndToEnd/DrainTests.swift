import Foundation
import NIOCore
import Testing

@testable import Proxy

/// Graceful stop is driven by events: the daemon stops as soon as its last stream ends (not at the next poll, not
/// at the deadline), and a stream that never ends is cut at the deadline.
@Suite("Drain", .serialized, .timeLimit(.minutes(2)))
struct DrainTests {
    static func temporaryFile() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("agg-drain-\(UUID().uuidString)")
    }

    /// A download runs (rate-limited so it lasts about two seconds) when the server is asked to stop with a
    /// 60-second deadline: the download completes intact, and the stop follows it (the association's SHUTDOWN,
    /// bounded by the 2-second close timeout), long before the deadline. On a quiet machine the stop takes well
    /// under a second after the download; the bound is a quarter of the deadline so that a machine starved by a
    /// parallel test run (this test took 163 s in one) still tells a stop driven by the last stream's end from one
    /// that waited for the deadline.
    @Test func aServerStopLetsARunningDownloadFinishThenStopsAtOnce() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let size = 4 * 1024 * 1024
        let output = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(at: output) }
        let download = try Curl(
            arguments: [
                "--limit-rate", "2M", "-x", "socks5h://127.0.0.1:\(harness.proxyPort)",
                "http://127.0.0.1:\(harness.originPort)/blob/\(size)",
            ]
        ).start(output: output)
        // The download is under way.
        let server = try #require(harness.server)
        let started = try AttackHarness.wait(seconds: 10) {
            try server.eventLoop.submit { server.activeStreams }.wait() == 1
        }
        #expect(started)
        let stopAsked = ContinuousClock.now
        let stop = server.drainAndStop(deadline: .now() + .seconds(60))
        download.waitUntilExit()
        let downloadEnded = ContinuousClock.now
        try stop.wait()
        let stopped = ContinuousClock.now
        #expect(download.terminationStatus == 0)
        let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
        #expect(try EndToEndHarness.sha256(file: output) == expected)
        #expect(downloadEnded - stopAsked > .milliseconds(500), "the download was still running when asked to stop")
        #expect(stopped - downloadEnded < .seconds(15), "stopped \(stopped - downloadEnded) after the last stream")
    }

    /// A stream that never ends (the origin streams without end to a reader that does not read) is cut at the
    /// deadline: the client's stop completes about then, not later.
    @Test func aClientStopCutsAStreamThatNeverEndsAtTheDeadline() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let socket = try RawSocket(port: harness.proxyPort)
        #expect(socket.socks5Connect(host: "127.0.0.1", port: UInt16(harness.originPort)) == 0)
        socket.send(Array("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let open = try AttackHarness.wait(seconds: 10) {
            try harness.client.eventLoop.submit { harness.client.summary().streams }.wait() == 1
        }
        #expect(open)
        let asked = ContinuousClock.now
        try harness.client.drainAndStop(deadline: .now() + .seconds(2), closeTimeout: .seconds(1)).wait()
        let took = ContinuousClock.now - asked
        #expect(took >= .milliseconds(1900) && took < .seconds(6), "stopped after \(took)")
        withExtendedLifetime(socket) {}
    }

    /// Nothing open: the stop does not wait for the deadline.
    @Test func aServerWithoutStreamsStopsAtOnce() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        try harness.client.whenReady().wait()
        let asked = ContinuousClock.now
        try harness.server!.drainAndStop(deadline: .now() + .seconds(30)).wait()
        #expect(ContinuousClock.now - asked < .seconds(5))
    }
}
