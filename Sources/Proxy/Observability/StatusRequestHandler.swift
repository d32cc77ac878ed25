import NIOCore
import NIOHTTP1

/// Answers one HTTP request of the status endpoint and closes the connection. The answer is built on the monitor's
/// event loop (the driver's), where the engine may be read, and written back on the connection's.
final class StatusRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// A response before it is written.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
    }

    let monitor: StatusMonitor
    private var head: HTTPRequestHead?

    init(monitor: StatusMonitor) {
        self.monitor = monitor
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let monitor = self.monitor
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            monitor.eventLoop.submit { Self.respond(to: head, monitor: monitor) }
                .hop(to: context.eventLoop)
                .whenComplete { result in
                    let response =
                        (try? result.get())
                        ?? Response(status: .internalServerError, contentType: Self.text, body: Array("failed\n".utf8))
                    Self.write(response, head: head, context: loopBound.value)
                }
        }
    }

    static let text = "text/plain; charset=utf-8"

    /// Routes a request. On the monitor's event loop.
    static func respond(to head: HTTPRequestHead, monitor: StatusMonitor) -> Response {
        guard head.method == .GET || head.method == .HEAD else {
            return Response(status: .methodNotAllowed, contentType: text, body: Array("only GET\n".utf8))
        }
        let (path, query) = split(head.uri)
        switch path {
        case "/metrics":
            return Response(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: Array(monitor.prometheusText().utf8))
        case "/status.json":
            let seconds = query["history"].flatMap { Int($0) }
            do {
                return Response(
                    status: .ok, contentType: "application/json",
                    body: try monitor.snapshot(historySeconds: seconds).jsonBytes())
            } catch {
                return Response(status: .internalServerError, contentType: text, body: Array("\(error)\n".utf8))
            }
        case "/" where head.headers[canonicalForm: "accept"].contains { $0.lowercased().contains("text/html") }:
            return Response(status: .ok, contentType: "text/html; charset=utf-8", body: Array(StatusPage.html.utf8))
        case "/", "/status.txt":
            let lines = monitor.source.statusLines().joined(separator: "\n") + "\n"
            return Response(status: .ok, contentType: text, body: Array(lines.utf8))
        default:
            return Response(
                status: .notFound, contentType: text,
                body: Array("not found: try /, /metrics, /status.json or /status.txt\n".utf8))
        }
    }

    /// The path and the query's `name=value` pairs of a request target.
    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return (String(uri[..<mark]), query)
    }

    private static func write(_ response: Response, head request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: request.version, status: response.status, headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        if request.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            loopBound.value.close(promise: nil)
        }
    }
}
