import AggConfig
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// Revoking a key as docs/DEPLOY.md says: delete its line from the file the server reads and reload (SIGHUP, what
/// `systemctl reload` sends). The real aggserver under a fake systemd, one client encrypted and one plaintext, each
/// with its own key: both associations end within a second of the reload, and the clients cannot come back.
@Suite(
    "Key revocation", .serialized, .timeLimit(.minutes(2)),
    .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct KeyRevocationTests {
    @Test func deletingALineAndReloadingEndsThatKeysAssociationsWithinASecond() throws {
        let directory = try TemporaryDirectory()
        let lines = ["revoked-laptop", "revoked-plain", "kept"].map { ServiceSetup.makeKeyLine(name: $0) }
        let serverKeys = directory.path + "/server.keys"
        try ServiceSetup.writePrivateFile(lines.joined(), path: serverKeys)
        let laptopKey = directory.path + "/laptop.key"
        try ServiceSetup.writePrivateFile(lines[0], path: laptopKey)
        let plainKey = directory.path + "/plain.key"
        try ServiceSetup.writePrivateFile(lines[1], path: plainKey)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let origin = try OriginServer.bind(on: group.next())
        defer { try? origin.close().wait() }
        let originURL = "http://127.0.0.1:\(origin.localAddress!.port!)/blob/1000"
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let udpPort = try EndToEndHarness.freeUDPPort()
        let server = try DaemonProcess(
            "aggserver",
            arguments: [
                "--listen", "127.0.0.1:\(udpPort)", "--psk-file", serverKeys, "--egress-allow", "127.0.0.0/8",
                "--allow-plaintext", "--shutdown-timeout", "0",
            ],
            environment: ["NOTIFY_SOCKET": notify.address],
            directory: try DaemonSystemdTests.makeSubdirectory(directory, "server"))
        defer { server.terminate() }
        #expect(log.waitFor("READY=1", within: 10), "\(server.standardError)")

        var clients: [(DaemonProcess, Int)] = []
        defer { for (client, _) in clients { client.terminate() } }
        for (name, key, plaintext) in [("laptop", laptopKey, false), ("plain", plainKey, true)] {
            let socksPort = try EndToEndHarness.freeTCPPort()
            let client = try DaemonProcess(
                "aggclient",
                arguments: [
                    "--server", "127.0.0.1:\(udpPort)", "--path", "127.0.0.1", "--socks", "127.0.0.1:\(socksPort)",
                    "--http", "off", "--psk-file", key,
                ] + (plaintext ? ["--plaintext"] : []),
                environment: [:], directory: try DaemonSystemdTests.makeSubdirectory(directory, name))
            clients.append((client, socksPort))
        }
        func fetch(through port: Int) throws -> Bool {
            try Curl(arguments: ["-x", "socks5h://127.0.0.1:\(port)", "-o", "/dev/null", originURL], maxTime: 2)
                .run().status == 0
        }
        for (client, port) in clients {
            var ready = false
            for _ in 0..<50 where !ready {
                ready = try fetch(through: port)
                if !ready { Thread.sleep(forTimeInterval: 0.2) }
            }
            #expect(ready, "\(client.standardError)")
        }

        // Delete both clients' lines, as an operator edits the file, and reload.
        try ServiceSetup.writePrivateFile(lines[2], path: serverKeys + ".new")
        #expect(rename(serverKeys + ".new", serverKeys) == 0)
        let reloaded = Date()
        server.send(SIGHUP)
        #expect(log.waitFor("READY=1", within: 5), "\(log.received)")
        var ended = 0
        while Date().timeIntervalSince(reloaded) < 1, ended < 2 {
            ended = server.standardError.components(separatedBy: "reason=key revoked").count - 1
            if ended < 2 { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(ended == 2, "associations ended within 1 s of the reload: \(ended)\n\(server.standardError)")
        // The ABORT reaches each client, and neither gets a new association with its revoked key.
        Thread.sleep(forTimeInterval: 0.5)
        for (client, port) in clients {
            #expect(client.standardError.contains("association closed"), "\(client.standardError)")
            #expect(try !fetch(through: port))
        }
    }
}
