import AggProtocol
import Foundation
import NIOCore
import Testing

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// The proxy issue's acceptance items: a headless browser through the pair, the issue's figures (100 MB, 200
/// concurrent transfers, a 50 MB upload), CONNECT to a TLS server, and the association limits. Part of the
/// serialized `EndToEnd` suite so heavy tests never overlap.
extension EndToEndTests {
    // MARK: - Headless Chromium

    /// Chromium (Debian package `chromium`) loads a page of 30 sub-resources through the SOCKS5 listener; loopback
    /// is forced through the proxy with `<-loopback>`. Fails, not skips, when Chromium is missing.
    @Test(.timeLimit(.minutes(3))) func headlessChromiumLoadsEverySubresource() throws {
        let chromium = "/usr/bin/chromium"
        try #require(
            FileManager.default.isExecutableFile(atPath: chromium), "Chromium is missing: apt-get install chromium")
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = ContinuousClock.now
        let browser = try ChildProcess(
            chromium,
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-breakpad",
                "--user-data-dir=\(directory.appendingPathComponent("profile").path)",
                "--proxy-server=socks5://127.0.0.1:\(harness.proxyPort)", "--proxy-bypass-list=<-loopback>",
                "--dump-dom", "http://127.0.0.1:\(harness.originPort)/page.html",
            ], directory: directory, name: "chromium")
        defer { browser.stop() }
        let exited = browser.wait(timeout: .seconds(120))
        #expect(exited, "Chromium did not finish in 120 s")
        let dom = browser.output
        let requested = Set(harness.requests.all)
        print("chromium: \(ContinuousClock.now - start), \(requested.count) distinct requests at the origin")
        #expect(browser.process.terminationStatus == 0, "\(browser.errors.suffix(2000))")
        #expect(dom.contains("data-loaded=\"\(BrowserPage.count)\""), "DOM: \(dom.prefix(600))")
        #expect(dom.contains("data-failed=\"0\""))
        #expect(requested.contains("/page.html"))
        let missing = BrowserPage.paths.filter { !requested.contains($0) }
        #expect(missing.isEmpty, "the origin never saw \(missing)")
    }

    // MARK: - The issue's figures

    /// 100 MB through `socks5h://` with the right SHA-256.
    @Test(.timeLimit(.minutes(3))) func hundredMegabytesThroughSOCKS5h() throws {
        let size = 100 * 1024 * 1024
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
        let output = directory.appendingPathComponent("download")
        let start = ContinuousClock.now
        let process = try Curl(
            arguments: [
                "-x", "socks5h://127.0.0.1:\(harness.proxyPort)",
                "http://127.0.0.1:\(harness.originPort)/blob/\(size)",
            ],
            maxTime: 150
        ).start(output: output)
        defer { if process.isRunning { process.terminate() } }
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        print("100 MB through socks5h: \(elapsed)")
        #expect(process.terminationStatus == 0)
        #expect(try EndToEndHarness.sha256(file: output) == expected)
    }

    /// 200 transfers at once from one curl (`--parallel --parallel-max 200`), every body checked.
    @Test(.timeLimit(.minutes(3))) func twoHundredConcurrentTransfersComplete() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sizes = (0..<200).map { 32 * 1024 + $0 * 331 }
        var arguments = [
            "--parallel", "--parallel-max", "200", "--parallel-immediate", "-x",
            "socks5h://127.0.0.1:\(harness.proxyPort)",
        ]
        for (index, size) in sizes.enumerated() {
            arguments += [
                "-o", directory.appendingPathComponent("out-\(index)").path,
                "http://127.0.0.1:\(harness.originPort)/blob/\(size)",
            ]
        }
        let start = ContinuousClock.now
        let process = try Curl(arguments: arguments, maxTime: 150).start()
        defer { if process.isRunning { process.terminate() } }
        process.waitUntilExit()
        print("200 concurrent transfers: \(ContinuousClock.now - start)")
        #expect(process.terminationStatus == 0)
        var wrong: [Int] = []
        for (index, size) in sizes.enumerated() {
            let expected = EndToEndHarness.sha256(EndToEndHarness.blob(size).readableBytesView)
            let file = directory.appendingPathComponent("out-\(index)")
            if (try? EndToEndHarness.sha256(file: file)) != expected { wrong.append(index) }
        }
        #expect(wrong.isEmpty, "transfers with a wrong or missing body: \(wrong)")
        #expect(harness.requests.all.count == sizes.count)
    }

    /// A 50 MB POST arrives intact: the origin answers with the length and SHA-256 it received.
    @Test(.timeLimit(.minutes(3))) func fiftyMegabyteUploadArrivesIntact() throws {
        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let body = EndToEndHarness.blob(50 * 1024 * 1024)
        let file = directory.appendingPathComponent("upload")
        try Data(body.readableBytesView).write(to: file)
        let expected = "\(body.readableBytes) \(EndToEndHarness.sha256(body.readableBytesView))"
        let start = ContinuousClock.now
        let (status, output) = try Curl(
            arguments: [
                "-x", "socks5h://127.0.0.1:\(harness.proxyPort)", "-H", "Expect:", "--data-binary",
                "@\(file.path)", "http://127.0.0.1:\(harness.originPort)/upload",
            ],
            maxTime: 150
        ).run()
        print("50 MB upload through socks5h: \(ContinuousClock.now - start)")
        #expect(status == 0)
        #expect(output == expected)
    }

    // MARK: - CONNECT to TLS

    /// A self-signed TLS server (Python's `ssl` + `http.server`) fetched through the HTTP proxy's CONNECT and through
    /// SOCKS5 with remote and local name resolution; curl verifies the certificate against it.
    @Test(.timeLimit(.minutes(3))) func tlsThroughCONNECTAndSOCKS() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = try ChildProcess(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-addext",
                "subjectAltName=DNS:localhost", "-days", "1", "-keyout", key, "-out", cert,
            ], directory: directory, name: "openssl")
        defer { openssl.stop() }
        #expect(openssl.wait(timeout: .seconds(60)))
        try #require(openssl.process.terminationStatus == 0, "openssl: \(openssl.errors)")

        let root = directory.appendingPathComponent("www")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let token = "agg tls \(UUID().uuidString)\n"
        try Data(token.utf8).write(to: root.appendingPathComponent("hello.txt"))
        let script = """
            import http.server, ssl, sys
            handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=sys.argv[1])
            httpd = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), handler)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[3], sys.argv[4])
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            httpd.serve_forever()
            """
        let tlsPort = try EndToEndHarness.freeTCPPort()
        let server = try ChildProcess(
            "/usr/bin/python3", ["-c", script, root.path, String(tlsPort), cert, key], directory: directory,
            name: "tls")
        defer { server.stop() }
        let listening = EndToEndHarness.eventually(timeout: .seconds(15)) { (try? RawSocket(port: tlsPort)) != nil }
        try #require(listening, "the TLS server did not listen: \(server.errors)")

        let harness = try EndToEndHarness()
        defer { harness.shutdown() }
        let proxy = "127.0.0.1:\(harness.proxyPort)"
        let url = "https://localhost:\(tlsPort)/hello.txt"
        let variants: [(String, [String])] = [
            ("http-connect", ["-x", "http://\(proxy)"]),
            ("socks5h", ["-x", "socks5h://\(proxy)"]),
            ("socks5", ["-x", "socks5://\(proxy)", "--resolve", "localhost:\(tlsPort):127.0.0.1"]),
        ]
        for (name, arguments) in variants {
            let (status, output) = try Curl(arguments: arguments + ["--cacert", cert, url]).run()
            #expect(status == 0, "\(name)")
            #expect(output == token, "\(name)")
        }
    }

    // MARK: - Limits

    /// `associationIdleTimeout`: a stream keeps the association up past the timeout; once no stream is left for
    /// that long the server aborts the association, and the client connects a new one.
    @Test(.timeLimit(.minutes(3))) func idleAssociationsAreClosed() throws {
        var limits = StreamLimits()
        limits.associationIdleTimeout = .seconds(1)
        let harness = try EndToEndHarness(serverLimits: limits)
        defer { harness.shutdown() }
        let server = try #require(harness.server)
        try harness.client.whenReady().wait()
        func authenticated() throws -> Int { try server.eventLoop.submit { server.associationsAuthenticated }.wait() }
        func clientAssociations() throws -> Int {
            try harness.client.eventLoop.submit { harness.client.associationsEstablished }.wait()
        }

        // A stream that moves data for three seconds holds the association up.
        let socket = try RawSocket(port: harness.proxyPort, receiveTimeout: 10)
        #expect(socket.socks5Connect(host: "127.0.0.1", port: UInt16(harness.originPort)) == 0)
        socket.send(Array("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let until = ContinuousClock.now + .seconds(3)
        var received = 0
        while ContinuousClock.now < until, socket.receive(16 * 1024) != nil { received += 16 * 1024 }
        #expect(ContinuousClock.now >= until, "the stream ended early after \(received) bytes")
        #expect(try authenticated() == 1)
        #expect(try clientAssociations() == 1)

        // Without streams the association goes within about two sweeps, and the client reconnects.
        socket.shutdownBoth()
        let replaced = try EndToEndHarness.eventually(timeout: .seconds(10)) {
            try authenticated() >= 2 && clientAssociations() >= 2
        }
        #expect(replaced)
        let (status, output) = try Curl(arguments: [
            "-o", "/dev/null", "-w", "%{size_download}", "-x", "socks5h://127.0.0.1:\(harness.proxyPort)",
            "http://127.0.0.1:\(harness.originPort)/blob/1000",
        ]).run()
        #expect(status == 0)
        #expect(output == "1000")
    }
}

extension RawSocket {
    /// Shuts the connection both ways (the socket closes at deinit).
    func shutdownBoth() {
        shutdown(fd, Int32(SHUT_RDWR))
    }
}
