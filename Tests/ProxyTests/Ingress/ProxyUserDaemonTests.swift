import AggConfig
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Proxy

/// `--proxy-user-file` and `--proxy-user` reach the real aggclient's listeners: curl authenticates through SOCKS5
/// (`socks5h://user:pass@`) and HTTP (`--proxy-user`), wrong or missing credentials and SOCKS4 are refused and
/// counted, no password shows in the daemon's output, and a listener beyond loopback without users is warned about.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct ProxyUserDaemonTests {
    /// The address ("HOST:PORT") of the proxy listener `daemon` announced as "aggclient: `name` proxy on ...".
    static func waitForListener(_ daemon: DaemonProcess, _ name: String) throws -> String {
        guard let line = daemon.waitForOutput(containing: "aggclient: \(name) proxy on", within: 15),
            let address = line.split(separator: " ").last
        else { throw DaemonTestError("no \(name) listener: \(daemon.standardOutput) \(daemon.standardError)") }
        return String(address)
    }

    @Test(.timeLimit(.minutes(2))) func curlAuthenticatesAndEveryRefusalIsCounted() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let usersPath = directory.path + "/users"
        try ServiceSetup.writePrivateFile("# proxy users\nalice:correct horse\n", path: usersPath)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let origin = try IngressCurlTests.startOrigin(group: group)
        defer {
            try? origin.close().wait()
            try? group.syncShutdownGracefully()
        }
        let originPort = origin.localAddress!.port!
        let udpPort = try EndToEndHarness.freeUDPPort()
        let metricsPort = try EndToEndHarness.freeTCPPort()
        let (socksPort, httpPort) = (try EndToEndHarness.freeTCPPort(), try EndToEndHarness.freeTCPPort())
        let server = try DaemonProcess(
            "aggserver",
            arguments: ["--listen", "127.0.0.1:\(udpPort)", "--psk-file", keyPath, "--egress-allow", "127.0.0.0/8"],
            environment: [:], directory: try DaemonSystemdTests.makeSubdirectory(directory, "server"))
        defer { server.terminate() }
        let client = try DaemonProcess(
            "aggclient",
            arguments: [
                "--server", "127.0.0.1:\(udpPort)", "--path", "127.0.0.1", "--socks", "127.0.0.1:\(socksPort)",
                "--http", "127.0.0.1:\(httpPort)", "--psk-file", keyPath, "--proxy-user-file", usersPath,
                "--proxy-user", "bob:pa:ss",
                "--metrics", "127.0.0.1:\(metricsPort)", "--verbose",
            ],
            environment: [:], directory: try DaemonSystemdTests.makeSubdirectory(directory, "client"))
        defer { client.terminate() }
        let socks = try Self.waitForListener(client, "SOCKS5")
        let http = try Self.waitForListener(client, "HTTP")
        let url = "http://127.0.0.1:\(originPort)"

        // The association may still be coming up: the first request waits for it (serverWait).
        let socks5 = try IngressCurlTests.curl(["-x", "socks5h://alice:correct%20horse@\(socks)", url + "/s5"])
        #expect(socks5.status == 0 && socks5.output.hasPrefix("GET /s5 0"), "\(socks5)")
        let basic = try IngressCurlTests.curl(["-x", "http://\(http)", "--proxy-user", "bob:pa:ss", url + "/h"])
        #expect(basic.status == 0 && basic.output.hasPrefix("GET /h 0"), "\(basic)")
        let tunnel = try IngressCurlTests.curl([
            "-p", "-x", "http://\(http)", "--proxy-user", "alice:correct horse", url + "/t",
        ])
        #expect(tunnel.status == 0 && tunnel.output.hasPrefix("GET /t 0"), "\(tunnel)")

        let wrong = try IngressCurlTests.curl(["-x", "socks5h://alice:wrong@\(socks)", url + "/x"])
        #expect(wrong.status != 0)
        let none = try IngressCurlTests.curl(["-x", "socks5h://\(socks)", url + "/x"])
        #expect(none.status != 0)
        let socks4 = try IngressCurlTests.curl(["-x", "socks4a://alice@\(socks)", url + "/x"])
        #expect(socks4.status != 0)
        let missing = try IngressCurlTests.curl(["-o", "/dev/null", "-w", "%{http_code}", "-x", "http://\(http)", url])
        #expect(missing.output == "407")

        let metrics = try IngressCurlTests.curl(["http://127.0.0.1:\(metricsPort)/metrics"])
        let parsed = try PrometheusTextParser(metrics.output)
        #expect(parsed.sum("agg_refusals_total", ["reason": "proxy_authentication"]) == 3, "wrong, none, 407")
        #expect(parsed.sum("agg_refusals_total", ["reason": "socks4_without_password"]) == 1)

        for secret in ["correct horse", "correct%20horse", "pa:ss"] {
            #expect(!client.standardOutput.contains(secret) && !client.standardError.contains(secret), "\(secret)")
        }
    }

    @Test(.timeLimit(.minutes(3))) func aListenerBeyondLoopbackWithoutUsersIsWarnedAbout() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        func start(_ extra: [String], _ name: String) throws -> DaemonProcess {
            try DaemonProcess(
                "aggclient",
                arguments: [
                    "--server", "127.0.0.1:9", "--path", "127.0.0.1", "--socks", "0.0.0.0:0", "--http", "off",
                    "--psk-file", keyPath,
                ] + extra,
                environment: [:], directory: try DaemonSystemdTests.makeSubdirectory(directory, name))
        }
        let open = try start([], "open")
        defer { open.terminate() }
        _ = try Self.waitForListener(open, "SOCKS5/SOCKS4a")
        // The warning goes to standard error, which may be read a moment after the listener's line on standard
        // output (a CI run read it before the warning had arrived).
        let deadline = Date().addingTimeInterval(10)
        while !open.standardError.contains("requires no credentials"), Date() < deadline { usleep(20_000) }
        #expect(open.standardError.contains("requires no credentials"), "\(open.standardError)")

        let closed = try start(["--proxy-user", "alice:pw"], "closed")
        defer { closed.terminate() }
        _ = try Self.waitForListener(closed, "SOCKS5")
        #expect(!closed.standardError.contains("requires no credentials"), "\(closed.standardError)")
    }

    @Test func checkConfigHidesPasswordsAndWarnsAboutAnOpenListener() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let config = try ConfigCommandTests.write(
            "server = \"127.0.0.1:9899\"\npsk-file = \"\(keyPath)\"\nproxy-user = [\"alice:s3cret-word\"]\n",
            to: "client.toml", in: directory)
        let hidden = try ConfigCommandTests.run("aggclient", ["check-config", "--config", config], in: directory)
        #expect(hidden.code == 0, "\(hidden.errors)")
        #expect(hidden.output.contains("proxy-user = [\"alice:<hidden>\"]"))
        #expect(hidden.output.contains("# proxy users (SOCKS4 refused): alice"))
        #expect(!hidden.output.contains("s3cret") && !hidden.errors.contains("s3cret"))

        let open = try ConfigCommandTests.run(
            "aggclient",
            ["check-config", "--server", "127.0.0.1:9899", "--psk-file", keyPath, "--socks", "0.0.0.0:1080"],
            in: directory)
        #expect(open.code == 0, "\(open.errors)")
        #expect(open.output.contains("# warning: socks listens on 0.0.0.0:1080 without credentials"))
    }
}
