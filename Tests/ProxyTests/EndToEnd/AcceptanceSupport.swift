import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The request paths an origin answered, in order; shared between the origin's event loop and the test thread.
final class RequestLog: @unchecked Sendable {
    private let lock = NSLock()
    private var uris: [String] = []

    func append(_ uri: String) {
        lock.lock()
        defer { lock.unlock() }
        uris.append(uri)
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return uris
    }
}

/// A page with many sub-resources for the browser test: `/page.html` loads `images` SVG images and `scripts`
/// scripts, each with its own path, counts every load and, on `window.onload`, writes the count into
/// `<body data-loaded=… data-failed=…>` so `--dump-dom` shows it.
enum BrowserPage {
    static let images = 15
    static let scripts = 15
    static var count: Int { images + scripts }
    static var paths: [String] {
        (0..<images).map { "/img/\($0).svg" } + (0..<scripts).map { "/js/\($0).js" }
    }

    static var html: String {
        var page = """
            <!DOCTYPE html><html><head><title>agg</title>
            <script>
            var aggCount = 0, aggFailed = 0;
            function aggLoaded() { aggCount += 1; }
            function aggFailedOne() { aggFailed += 1; }
            window.onload = function () {
              document.body.setAttribute('data-loaded', String(aggCount));
              document.body.setAttribute('data-failed', String(aggFailed));
            };
            </script>

            """
        for index in 0..<scripts {
            page += "<script async src=\"/js/\(index).js\" onerror=\"aggFailedOne()\"></script>\n"
        }
        page += "</head><body>\n"
        for index in 0..<images {
            page += "<img src=\"/img/\(index).svg\" onload=\"aggLoaded()\" onerror=\"aggFailedOne()\">\n"
        }
        return page + "</body></html>\n"
    }

    /// The content type and body of a page resource; nil for other paths.
    static func resource(_ uri: String) -> (type: String, body: String)? {
        if uri == "/page.html" { return ("text/html; charset=utf-8", html) }
        if uri.hasPrefix("/img/"), uri.hasSuffix(".svg"), let index = Int(uri.dropFirst(5).dropLast(4)) {
            let svg = """
                <svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" \
                fill="#\(String(format: "%06x", index &* 0x10_3050))"/></svg>
                """
            return ("image/svg+xml", svg)
        }
        if uri.hasPrefix("/js/"), uri.hasSuffix(".js"), let index = Int(uri.dropFirst(4).dropLast(3)) {
            return ("application/javascript", "/* script \(index) */ aggLoaded();\n")
        }
        return nil
    }
}

/// A child process whose standard output and error go to files in `directory`; `stop()` kills its whole process
/// group (Foundation's `Process` starts every child as a group leader), so helpers it spawned (Chromium's zygote
/// and crashpad) go too.
final class ChildProcess {
    let process = Process()
    let outputFile: URL
    let errorFile: URL

    init(_ executable: String, _ arguments: [String], directory: URL, name: String) throws {
        outputFile = directory.appendingPathComponent("\(name).out")
        errorFile = directory.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for name in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "no_proxy"] {
            environment[name] = nil
        }
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: outputFile)
        process.standardError = try FileHandle(forWritingTo: errorFile)
        try process.run()
    }

    /// Waits for the exit; false if `timeout` passed first (the process is then still running).
    func wait(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return false }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return true
    }

    var output: String { (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOf: errorFile, encoding: .utf8)) ?? "" }

    /// SIGKILL to the process group; waits for the direct child.
    func stop() {
        let pid = process.processIdentifier
        if pid > 0 { kill(-pid, SIGKILL) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

extension EndToEndHarness {
    /// A TCP listener on 127.0.0.1 that accepts and never reads, with a small receive buffer: the server's writes to
    /// it stall. Its channels close with the harness's event loop group.
    func bindSink() throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.so_rcvbuf), value: 4096)
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes.
    static func eventually(timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try condition()
    }
}

extension RawSocket {
    /// Sends `chunk` repeatedly until a send fails (a send timeout once everything behind it is full, or an error);
    /// returns the bytes sent.
    func sendUntilBlocked(chunk: [UInt8], sendTimeout seconds: Int, limit: Int) -> Int {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var total = 0
        while total < limit {
            let n = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { break }
            total += n
        }
        return total
    }
}
