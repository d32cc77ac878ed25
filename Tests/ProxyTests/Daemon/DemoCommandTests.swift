import Foundation
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The README's first command, `aggclient demo`, run as the built binary: it measures itself, prints both proxies
/// and its status address, and curl gets through both proxies. The ports are moved to free ones (the defaults may
/// be taken on a machine that runs other tests); everything else is the command as the README gives it.
@Suite("aggclient demo", .serialized, .timeLimit(.minutes(2)))
struct DemoCommandTests {
    @Test func demoMeasuresItselfServesBothProxiesAndItsStatus() throws {
        let directory = try TemporaryDirectory()
        let socksPort = try EndToEndHarness.freeTCPPort()
        var httpPort = try EndToEndHarness.freeTCPPort()
        while httpPort == socksPort { httpPort = try EndToEndHarness.freeTCPPort() }
        let demo = try DaemonProcess(
            "aggclient",
            arguments: [
                "demo", "--server-port", "0", "--socks-port", "\(socksPort)", "--http-port", "\(httpPort)",
                "--metrics-port", "0",
            ],
            environment: [:], directory: directory.path)
        defer { demo.terminate() }
        let ready = demo.waitForOutput(containing: "Press Ctrl-C to stop.", within: 60)
        try #require(ready != nil, "the demo never got ready:\n\(demo.standardOutput)\n\(demo.standardError)")
        let output = demo.standardOutput

        // The self-test: a goodput and both paths' shares, before the banner.
        let measured = try #require(
            output.split(separator: "\n").first { $0.contains(" goodput (") }, "no measurement in:\n\(output)")
        #expect(!measured.contains(" 0 bit/s goodput"), "\(measured)")
        for path in ["path1", "path2"] {
            let share = measured.range(of: "\(path) ").map { measured[$0.upperBound...].prefix { $0 != "%" } }
            #expect(share.flatMap { Double($0) }.map { $0 > 0 } == true, "\(path) carried nothing: \(measured)")
        }

        // The proxies as printed, used as printed, against a local origin.
        let socksProxy = try #require(Self.word(after: "curl -x ", startingWith: "socks5h://", in: output))
        let httpProxy = try #require(Self.word(after: "curl -x ", startingWith: "http://", in: output))
        #expect(socksProxy == "socks5h://127.0.0.1:\(socksPort)")
        #expect(httpProxy == "http://127.0.0.1:\(httpPort)")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let origin = try OriginServer.bind(on: group.next())
        defer { try? origin.close().wait() }
        let size = 1_000_000
        let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
        for proxy in [socksProxy, httpProxy] {
            let file = URL(fileURLWithPath: directory.path + "/download")
            let curl = try Curl(
                arguments: [
                    "-x", proxy, "-o", file.path, "http://127.0.0.1:\(origin.localAddress!.port!)/blob/\(size)",
                ],
                maxTime: 30
            ).start()
            curl.waitUntilExit()
            #expect(curl.terminationStatus == 0, "curl through \(proxy) exited with \(curl.terminationStatus)")
            #expect(try EndToEndHarness.sha256(file: file) == expected, "through \(proxy)")
        }

        // The status address it printed answers, with the two named paths.
        let metrics = try #require(
            Self.word(after: "aggclient status --metrics ", startingWith: "127.0.0.1:", in: output))
        let exposition = try Curl(arguments: ["http://\(metrics)/metrics"], maxTime: 10).run()
        #expect(exposition.status == 0)
        let parsed = try PrometheusTextParser(exposition.output)
        #expect(parsed.values("agg_build_info", ["role": "aggclient"]) == [1])
        #expect(
            Set(parsed.samples.filter { $0.name == "agg_path_state" }.compactMap { $0.labels["path"] }) == [
                "path1", "path2",
            ])
        #expect(parsed.values("agg_proxy_connections_total", ["outcome": "success"]).reduce(0, +) >= 3)

        demo.send(SIGINT)
        #expect(demo.waitForExit(within: 15) == 0, "\(demo.standardError)")
    }

    /// The first whitespace-separated word after `marker` that starts with `prefix`, in any line of `text`.
    static func word(after marker: String, startingWith prefix: String, in text: String) -> String? {
        for line in text.split(separator: "\n") {
            guard let range = line.range(of: marker + prefix) else { continue }
            return String(line[range.lowerBound...].dropFirst(marker.count).prefix { $0 != " " })
        }
        return nil
    }
}
