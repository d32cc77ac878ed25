import NIOCore
import NIOHTTP1

/// What the status endpoint serves, read on `eventLoop`: the monitor in the daemons, a fixed stand-in in the
/// fuzzer (`StatusRequestFuzzTarget` in ProxyFuzzSupport).
package protocol StatusResponder: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// The Prometheus text exposition.
    func prometheusText() -> String
    /// The JSON snapshot with the newest `historySeconds` samples (all when nil).
    func snapshotJSON(historySeconds: Int?) throws -> [UInt8]
    /// The plain-text status lines.
    func statusLines() -> [String]
    /// A request the endpoint refused (malformed, too large, too slow, a method other than GET or HEAD).
    func recordRefusedRequest()
    /// `POST /path?name=NAME&mode=MODE&priority=N&rate=RATE`: changes a path's policy at run time (`aggclient
    /// path`); `query` is the request's.
    func changePath(name: String, query: [String: String]) -> StatusRequestHandler.Response
    /// A future that succeeds once what the responder shows is current, when reading it takes a round of other
    /// loops (a sharded server); nil when it is current at once. On `eventLoop`.
    func freshen() -> EventLoopFuture<Void>?
}

extension StatusResponder {
    package func freshen() -> EventLoopFuture<Void>? { nil }

    package func changePath(name: String, query: [String: String]) -> StatusRequestHandler.Response {
        .text(.notFound, "this daemon has no run-time path control")
    }
}

/// Answers one HTTP request of the status endpoint and closes the connection; every request gets a reply. The
/// answer is built on the responder's event loop (the driver's), where the engine may be read, and written back on
/// the connection's. A request must arrive whole within `requestTimeout` (else 408) with a body of at most
/// `maxBodySize` bytes (else 413); other methods than GET and HEAD get 405, malformed requests 400 (NIO's
/// `HTTPServerProtocolErrorHandler`, ahead of this handler, writes it). Once answered, the connection reads
/// nothing more, and one that has not taken its answer within another `requestTimeout` is closed.
/// One request changes state, `POST /path` (`aggclient path NAME MODE`), and only from this host: from a loopback
/// address, to a loopback or `localhost` Host (no DNS rebinding), with an `X-Agg-Control` header and no `Origin`
/// (so no web page can send it: a browser would need a CORS preflight the endpoint never answers); else 403.
package final class StatusRequestHandler: ChannelDuplexHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTPServerResponsePart

    /// A response before it is written.
    package struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]

        package static func text(_ status: HTTPResponseStatus, _ message: String) -> Response {
            Response(status: status, contentType: StatusRequestHandler.text, body: Array((message + "\n").utf8))
        }
    }

    /// Where the connection is: before or within its one request, or answered (everything after is ignored).
    enum State {
        case waiting
        case reading(HTTPRequestHead, bodyBytes: Int)
        case answered
    }

    /// Largest request body read (GET and HEAD need none); a larger one gets 413.
    static let maxBodySize = 16 * 1024
    /// Largest request head (request line and headers); a larger one gets 400 from the decoder.
    static let maxHeadSize = 16 * 1024

    let responder: any StatusResponder
    let requestTimeout: TimeAmount
    private var state = State.waiting
    private var timer: Scheduled<Void>?

    init(responder: any StatusResponder, requestTimeout: TimeAmount = .seconds(10)) {
        self.responder = responder
        self.requestTimeout = requestTimeout
    }

    /// Installs the endpoint's pipeline on an accepted `channel`: NIO's HTTP/1.1 server handlers with bounded
    /// heads, then this handler. On the channel's event loop. No pipelining assistance: one request is answered
    /// and the connection closed, so nothing waits behind it (and NIO's pipelining handler would trap on the 408
    /// answered before a request head).
    package static func configure(
        _ channel: any Channel, responder: any StatusResponder, requestTimeout: TimeAmount = .seconds(10)
    ) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = maxHeadSize
        limits.maxHeaderFieldSize = maxHeadSize
        limits.maxHeaderFieldCount = 128
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits)
        try channel.pipeline.syncOperations.addHandler(
            StatusRequestHandler(responder: responder, requestTimeout: requestTimeout))
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        armTimer(context: context)
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: requestTimeout) {
            let (handler, context) = loopBound.value
            handler.timedOut(context: context)
        }
    }

    /// Reads stop once the request is answered: whatever a client sends after it is never parsed.
    package func read(context: ChannelHandlerContext) {
        if !isAnswered { context.read() }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.waiting, .head(let head)):
            state = .reading(head, bodyBytes: 0)
        case (.reading(let head, let bodyBytes), .body(let bytes)):
            let total = bodyBytes + bytes.readableBytes
            guard total <= Self.maxBodySize else {
                refuse(.text(.payloadTooLarge, "request body too large"), head: head, context: context)
                return
            }
            state = .reading(head, bodyBytes: total)
        case (.reading(let head, _), .end):
            answer(head, context: context)
        case (.answered, _):
            break
        case (.waiting, .body), (.waiting, .end), (.reading, .head):
            // The decoder never delivers these; close rather than guess.
            state = .answered
            context.close(promise: nil)
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request: NIO's error handler has written 400, and the decoder closes the connection.
        if !isAnswered { responder.recordRefusedRequest() }
        state = .answered
        context.close(promise: nil)
    }

    private var isAnswered: Bool {
        if case .answered = state { return true }
        return false
    }

    private func timedOut(context: ChannelHandlerContext) {
        switch state {
        case .waiting:
            // No complete head yet (RFC 9110 §15.5.9: 408 is for a request not received in time, whole or part).
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            refuse(.text(.requestTimeout, "request not complete in time"), head: head, context: context)
        case .reading(let head, _):
            refuse(.text(.requestTimeout, "request not complete in time"), head: head, context: context)
        case .answered:
            // The answer was not taken in time (a client that does not read).
            context.close(promise: nil)
        }
    }

    // MARK: - Answering

    private func refuse(_ response: Response, head: HTTPRequestHead, context: ChannelHandlerContext) {
        responder.recordRefusedRequest()
        state = .answered
        armTimer(context: context)
        Self.write(response, head: head, context: context)
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        state = .answered
        armTimer(context: context)
        let isControl = head.method == .POST && Self.split(head.uri).path == "/path"
        guard head.method == .GET || head.method == .HEAD || isControl else {
            responder.recordRefusedRequest()
            Self.write(.text(.methodNotAllowed, "only GET"), head: head, context: context, allow: "GET, HEAD")
            return
        }
        if isControl, !Self.isLocalControl(head, from: context.channel.remoteAddress) {
            responder.recordRefusedRequest()
            Self.write(.text(.forbidden, "path control only from this host"), head: head, context: context)
            return
        }
        let responder = self.responder
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        if responder.eventLoop.inEventLoop {
            // The daemons serve the endpoint on the driver's loop: answer at once, before any bytes that followed
            // the request in the same read are parsed (the state is `answered` already: nothing more is read).
            guard let fresh = responder.freshen() else {
                Self.write(Self.respond(to: head, responder: responder), head: head, context: context)
                return
            }
            fresh.whenComplete { _ in
                Self.write(Self.respond(to: head, responder: responder), head: head, context: loopBound.value)
            }
            return
        }
        responder.eventLoop.flatSubmit {
            let answer = { Self.respond(to: head, responder: responder) }
            return responder.freshen()?.map(answer) ?? responder.eventLoop.makeSucceededFuture(answer())
        }
        .hop(to: context.eventLoop)
        .whenComplete { result in
            let response = (try? result.get()) ?? .text(.internalServerError, "failed")
            Self.write(response, head: head, context: loopBound.value)
        }
    }

    static let text = "text/plain; charset=utf-8"

    /// Whether a control request comes from this host and not from a web page: a loopback peer, a loopback or
    /// `localhost` Host header, an `X-Agg-Control` header and no `Origin`.
    static func isLocalControl(_ head: HTTPRequestHead, from remote: SocketAddress?) -> Bool {
        guard let remote, isLoopback(remote.ipAddress ?? "") else { return false }
        guard head.headers.contains(name: "X-Agg-Control"), !head.headers.contains(name: "Origin") else { return false }
        guard let host = head.headers.first(name: "Host") else { return false }
        // "127.0.0.1:9101", "[::1]:9101", "localhost".
        var name = Substring(host)
        if name.hasPrefix("["), let close = name.firstIndex(of: "]") {
            name = name[name.index(after: name.startIndex)..<close]
        } else if let colon = name.lastIndex(of: ":"), name.firstIndex(of: ":") == colon {
            name = name[..<colon]
        }
        return name.lowercased() == "localhost" || isLoopback(String(name))
    }

    static func isLoopback(_ ip: String) -> Bool {
        ip == "::1" || ip.hasPrefix("127.") || ip.hasPrefix("::ffff:127.")
    }

    /// Routes a GET or HEAD request, or the local `POST /path`. On the responder's event loop.
    static func respond(to head: HTTPRequestHead, responder: any StatusResponder) -> Response {
        let (path, query) = split(head.uri)
        if head.method == .POST {
            guard path == "/path", let name = query["name"] else {
                return .text(.badRequest, "POST /path?name=NAME[&mode=active|backup][&priority=N][&rate=RATE|off]")
            }
            return responder.changePath(name: name, query: query)
        }
        switch path {
        case "/metrics":
            return Response(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: Array(responder.prometheusText().utf8))
        case "/status.json":
            let seconds = query["history"].flatMap { Int($0) }
            do {
                return Response(
                    status: .ok, contentType: "application/json",
                    body: try responder.snapshotJSON(historySeconds: seconds))
            } catch {
                return .text(.internalServerError, "\(error)")
            }
        case "/" where head.headers[canonicalForm: "accept"].contains { $0.lowercased().contains("text/html") }:
            return Response(status: .ok, contentType: "text/html; charset=utf-8", body: StatusPage.html)
        case "/", "/status.txt":
            let lines = responder.statusLines().joined(separator: "\n") + "\n"
            return Response(status: .ok, contentType: text, body: Array(lines.utf8))
        default:
            return .text(.notFound, "not found: try /, /metrics, /status.json or /status.txt")
        }
    }

    /// The path and the query's `name=value` pairs of a request target. Any text is a target: an empty name
    /// (`?=`, `?=x`), a pair without `=`, empty pairs (`?&&`) and a repeated name (the last wins) are all fine.
    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            if let equals = pair.firstIndex(of: "=") {
                query[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            } else {
                query[String(pair)] = ""
            }
        }
        return (String(uri[..<mark]), query)
    }

    private static func write(
        _ response: Response, head request: HTTPRequestHead, context: ChannelHandlerContext, allow: String? = nil
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: "close")
        if let allow { headers.add(name: "Allow", value: allow) }
        // An HTTP/0.9 or 2.x request line gets a 1.1 answer: the encoder speaks no other.
        let version = request.version.major == 1 ? request.version : .http1_1
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
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
