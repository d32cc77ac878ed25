import Foundation
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real aggserver and aggclient binaries when the server is killed and started again (a crash, an upgrade, a
/// reboot). The new server knows none of the client's sessions and drops its datagrams unanswered; the client must
/// find out and set up a new association within 3 s of the server being back, its streams must end with a reset
/// rather than hang, and new connections must work.
@Suite(
    "A server restart", .serialized, .timeLimit(.minutes(2)),
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct ServerRestartTests {
    static func startServer(
        keyPath: String, port: UInt16, directory: TemporaryDirectory, run: Int
    ) throws
        -> DaemonProcess
    {
        let server = try DaemonProcess(
            "aggserver",
            arguments: [
                "--listen", "127.0.0.1:\(port)", "--psk-file", keyPath, "--egress-allow", "127.0.0.0/8",
                "--shutdown-timeout", "0",
            ],
            environment: [:], directory: try DaemonSystemdTests.makeSubdirectory(directory, "server\(run)"))
        guard server.waitForOutput(containing: "listening on UDP", within: 10) != nil else {
            throw DaemonTestError("aggserver did not start: \(server.standardError)")
        }
        return server
    }

    @Test func theClientFindsARestartedServerWithinThreeSecondsAndItsStreamsEndCleanly() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let origin = try OriginServer.bind(on: group.next())
        defer { try? origin.close().wait() }
        let originURL = "http://127.0.0.1:\(origin.localAddress!.port!)"
        let udpPort = try EndToEndHarness.freeUDPPort()
        let socksPort = try EndToEndHarness.freeTCPPort()

        var server = try Self.startServer(keyPath: keyPath, port: udpPort, directory: directory, run: 1)
        defer { server.terminate() }
        let client = try DaemonProcess(
            "aggclient",
            arguments: [
                "--server", "127.0.0.1:\(udpPort)", "--path", "127.0.0.1", "--socks", "127.0.0.1:\(socksPort)",
                "--http", "off", "--psk-file", keyPath,
            ],
            environment: [:], directory: try DaemonSystemdTests.makeSubdirectory(directory, "client"))
        defer { client.terminate() }
        let proxy = "socks5h://127.0.0.1:\(socksPort)"
        func fetch(_ size: Int, maxTime: Int) throws -> Int32 {
            try Curl(arguments: ["-x", proxy, "-o", "/dev/null", "\(originURL)/blob/\(size)"], maxTime: maxTime)
                .run().status
        }
        var ready = false
        for _ in 0..<50 where !ready {
            ready = try fetch(1000, maxTime: 2) == 0
            if !ready { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(ready, "\(client.standardError)")

        // A download without end is running when the server dies.
        let longDownload = try Curl(
            arguments: ["-x", proxy, "-o", "/dev/null", "--limit-rate", "1M", "\(originURL)/stream"], maxTime: 90
        ).start()
        Thread.sleep(forTimeInterval: 1)
        server.send(SIGKILL)
        _ = server.waitForExit(within: 5)
        Thread.sleep(forTimeInterval: 2)

        server = try Self.startServer(keyPath: keyPath, port: udpPort, directory: directory, run: 2)
        let back = Date()
        // New connections, as a user would retry them: the first that works must be within 3 s.
        var recovered: TimeInterval?
        while Date().timeIntervalSince(back) < 15, recovered == nil {
            if try fetch(1000, maxTime: 2) == 0 { recovered = Date().timeIntervalSince(back) }
        }
        let took = try #require(
            recovered, "no connection worked within 15 s: \(client.standardError)\nserver: \(server.standardError)")
        #expect(took < 3, "a new association took \(took) s")
        // The download that ran over the old association ended with an error, not a hang.
        let deadline = Date().addingTimeInterval(10)
        while longDownload.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(!longDownload.isRunning, "the old association's stream still hangs")
        if longDownload.isRunning { longDownload.terminate() }
        longDownload.waitUntilExit()
        #expect(longDownload.terminationStatus != 0)
        #expect(client.standardError.contains("the server no longer knows this client's session"))
        // More new connections keep working.
        #expect(try fetch(200_000, maxTime: 5) == 0)
    }
}
