import AggIngress
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// Real clients against a real listener: curl through `ProxyListener` and `DirectProxyConnector` to a tiny local
/// NIO HTTP server.
@Suite("Ingress curl", .serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
struct IngressCurlTests {
    /// Answers every request with `<method> <uri> <body length>`.
    final class EchoHTTPHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private var head: HTTPRequestHead?
        private var bodyLength = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                self.bodyLength = 0
            case .body(let bytes):
                self.bodyLength += bytes.readableBytes
            case .end:
                guard let head = self.head else { return }
                let text =
                    "\(head.method.rawValue) \(head.uri) \(self.bodyLength) host=\(head.headers["host"].first ?? "")"
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: String(text.utf8.count))
                headers.add(name: "Connection", value: head.isKeepAlive ? "keep-alive" : "close")
                context.write(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                let keepAlive = head.isKeepAlive
                let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if !keepAlive { loopBoundContext.value.close(promise: nil) }
                }
            }
        }
    }

    static func startOrigin(group: any EventLoopGroup) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHTTPHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    static func curl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-S", "--max-time", "10", "--noproxy", ""] + arguments
        var environment = ProcessInfo.processInfo.environment
        for name in [
            "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
        ] {
            environment[name] = nil
        }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func curlThroughSOCKSAndHTTP() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let origin = try Self.startOrigin(group: group)
        let listener = try ProxyListener(port: 0, connector: DirectProxyConnector()).bind(group: group).wait()
        let originPort = origin.localAddress!.port!
        let proxyPort = listener.localAddress!.port!
        defer {
            try? listener.close().wait()
            try? origin.close().wait()
            try? group.syncShutdownGracefully()
        }

        let socks5 = try Self.curl(["-x", "socks5h://127.0.0.1:\(proxyPort)", "http://localhost:\(originPort)/s5"])
        #expect(socks5.status == 0)
        #expect(socks5.output == "GET /s5 0 host=localhost:\(originPort)")

        let socks4a = try Self.curl(["-x", "socks4a://127.0.0.1:\(proxyPort)", "http://localhost:\(originPort)/s4"])
        #expect(socks4a.status == 0)
        #expect(socks4a.output == "GET /s4 0 host=localhost:\(originPort)")

        let http = try Self.curl([
            "-x", "http://127.0.0.1:\(proxyPort)",
            "http://127.0.0.1:\(originPort)/one", "http://127.0.0.1:\(originPort)/two",
        ])
        #expect(http.status == 0)
        #expect(http.output == "GET /one 0 host=127.0.0.1:\(originPort)GET /two 0 host=127.0.0.1:\(originPort)")

        let post = try Self.curl([
            "-x", "http://127.0.0.1:\(proxyPort)", "--data-binary", "hello world", "http://127.0.0.1:\(originPort)/p",
        ])
        #expect(post.status == 0)
        #expect(post.output == "POST /p 11 host=127.0.0.1:\(originPort)")

        let chunked = try Self.curl([
            "-x", "http://127.0.0.1:\(proxyPort)", "-H", "Transfer-Encoding: chunked", "--data-binary", "abcdef",
            "http://127.0.0.1:\(originPort)/c",
        ])
        #expect(chunked.status == 0)
        #expect(chunked.output == "POST /c 6 host=127.0.0.1:\(originPort)")

        let tunnel = try Self.curl(["-p", "-x", "http://127.0.0.1:\(proxyPort)", "http://127.0.0.1:\(originPort)/t"])
        #expect(tunnel.status == 0)
        #expect(tunnel.output == "GET /t 0 host=127.0.0.1:\(originPort)")

        let refused = try Self.curl(["-x", "socks5h://127.0.0.1:\(proxyPort)", "http://127.0.0.1:1/"])
        #expect(refused.status != 0)
    }
}
