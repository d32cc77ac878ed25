import AggObservability
import Foundation
import NIOCore
import SCTPEngine
import Testing

@testable import Proxy

/// Per-path policy on a real pair over loopback: a backup path carries next to nothing of an upload or (the server
/// having been asked over ASCONF) a download, and `aggclient path NAME active` (the status endpoint's control
/// request) puts it to work without a reconnection.
/// Part of the serialized `EndToEnd` suite, like the other transfers.
extension EndToEndTests {
    @Test(.timeLimit(.minutes(2))) func aBackupPathIdlesUntilItIsMadeActiveAtRunTime() throws {
        let harness = try EndToEndHarness { configuration in
            configuration.paths[0].name = "one"
            configuration.paths[1].name = "two"
            configuration.paths[1].policy = SCTPPathPolicy(mode: .backup)
        }
        let status = try StatusEndpoint.start(host: "127.0.0.1", port: 0, client: harness.client).wait()
        defer {
            try? status.close().wait()
            harness.shutdown()
        }
        try harness.client.whenReady().wait()
        let port = status.localAddress!.port!
        func snapshot() throws -> StatusSnapshot {
            try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) {
                try StatusSnapshot(json: try $0.fetch("/status.json?history=0"))
            }
        }
        func path(_ name: String) throws -> StatusSnapshot.Path {
            try #require(try snapshot().paths.first { $0.name == name })
        }
        let ready = try EndToEndHarness.eventually(timeout: .seconds(10)) {
            try snapshot().paths.filter { $0.state == "active" }.count == 2
        }
        try #require(ready, "the client never had two active paths")

        let directory = try TemporaryDirectory()
        let file = directory.path + "/upload"
        try Data(repeating: 0x61, count: 6 * 1024 * 1024).write(to: URL(fileURLWithPath: file))
        func upload() throws {
            let (status, output) = try Curl(
                arguments: [
                    "-x", "socks5h://127.0.0.1:\(harness.proxyPort)", "--data-binary", "@\(file)",
                    "http://127.0.0.1:\(harness.originPort)/upload",
                ], maxTime: 60
            ).run()
            try #require(status == 0, "curl exited with \(status)")
            #expect(output.hasPrefix("\(6 * 1024 * 1024) "))
        }

        let before = (one: try path("one").bytesSent, two: try path("two").bytesSent)
        try upload()
        let backup = try path("two")
        #expect(backup.mode == "backup")
        #expect(backup.standby == true)
        let sentOne = try path("one").bytesSent - before.one
        let sentTwo = backup.bytesSent - before.two
        #expect(sentOne > 6 * 1024 * 1024)
        #expect(Double(sentTwo) < 0.01 * Double(sentOne), "the backup sent \(sentTwo) B")

        // Downloads too: the client asked the server (Path Policy ASCONF) to keep path two as a backup.
        let received = (one: try path("one").bytesReceived, two: try path("two").bytesReceived)
        let size = 6 * 1024 * 1024
        let download = try Curl(
            arguments: [
                "-x", "socks5h://127.0.0.1:\(harness.proxyPort)", "-o", "/dev/null",
                "http://127.0.0.1:\(harness.originPort)/blob/\(size)",
            ]
        ).run()
        #expect(download.status == 0)
        let receivedOne = try path("one").bytesReceived - received.one
        let receivedTwo = try path("two").bytesReceived - received.two
        #expect(receivedOne > size)
        #expect(Double(receivedTwo) < 0.01 * Double(receivedOne), "the backup received \(receivedTwo) B")

        let answer = try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) {
            try $0.control("/path?name=two&mode=active")
        }
        #expect(answer == "path two is now active\n")
        #expect(throws: StatusFetchError.self) {
            try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) {
                try $0.control("/path?name=three&mode=active")
            }
        }
        let established = harness.client.associationsEstablished
        let switched = try path("two").bytesSent
        try upload()
        let active = try path("two")
        #expect(active.mode == "active")
        #expect(active.standby == false)
        // As a backup it sent heartbeats only (a few hundred bytes). Joining late, next to a path whose window grew
        // to megabytes (and its RTT on loopback to hundreds of ms), it starts from the initial window and takes
        // only tens of KB of one short upload; the simulator shows it taking its share of a long transfer.
        let sentActive = active.bytesSent - switched
        #expect(sentActive > 8 * 1024 && sentActive > 10 * max(sentTwo, 1), "path two sent \(sentActive) B once active")
        #expect(harness.client.associationsEstablished == established, "the association was set up again")

        // A cap and a priority at run time, then the cap lifted: the status shows what the engine has.
        let capped = try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) {
            try $0.control("/path?name=one&rate=8mbit")
        }
        #expect(capped == "path one is now active, 1000000 B/s\n")
        #expect(try path("one").rateLimitBitsPerSecond == 8_000_000)
        #expect(throws: StatusFetchError.self) {
            try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) { try $0.control("/path?name=one&rate=fast") }
        }
        let demoted = try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) {
            try $0.control("/path?name=two&mode=backup&priority=4")
        }
        #expect(demoted == "path two is now backup priority 4\n")
        let lifted = try StatusFetcher.withFetcher(host: "127.0.0.1", port: port) {
            try $0.control("/path?name=one&rate=off")
        }
        #expect(lifted == "path one is now active\n")
        #expect(try path("one").rateLimitBitsPerSecond == nil)
        #expect(try path("two").mode == "backup")
        #expect(harness.client.associationsEstablished == established)
    }
}
