import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A minimal HTTP/1.1 client for the status endpoint: one GET per connection, the whole body collected, a deadline
/// on everything. What `aggclient status` reads the running daemon with.
public final class StatusFetcher: Sendable {
    let group: any EventLoopGroup
    let host: String
    let port: Int
    let timeout: TimeAmount

    public init(group: any EventLoopGroup, host: String, port: Int, timeout: TimeAmount = .seconds(5)) {
        self.group = group
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    /// Runs `body` with a fetcher on an event loop of its own, which is shut down afterwards.
    public static func withFetcher<Result>(
        host: String, port: Int, timeout: TimeAmount = .seconds(5), _ body: (StatusFetcher) throws -> Result
    ) throws -> Result {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        return try body(StatusFetcher(group: group, host: host, port: port, timeout: timeout))
    }

    /// `get(path)`, waiting for the answer. Not on an event loop of the fetcher's group.
    public func fetch(_ path: String) throws -> [UInt8] {
        try get(path).wait()
    }

    /// GETs `path` and returns the body of a 200 answer; anything else fails with a `StatusFetchError` that says
    /// what happened and where.
    public func get(_ path: String) -> EventLoopFuture<[UInt8]> {
        request(.GET, path)
    }

    /// A control request (`POST /path?...`), with the header the endpoint asks of one; waits for the answer's
    /// body, which says what was done or, with the status, why not.
    public func control(_ path: String) throws -> String {
        String(decoding: try request(.POST, path, control: true).wait(), as: UTF8.self)
    }

    private func request(_ method: HTTPMethod, _ path: String, control: Bool = false) -> EventLoopFuture<[UInt8]> {
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: [UInt8].self)
        let url = "http://\(host):\(port)\(path)"
        let timeoutTask = eventLoop.scheduleTask(in: timeout) {
            promise.fail(
                StatusFetchError(url: url, reason: "no answer within \(self.timeout.nanoseconds / 1_000_000) ms"))
        }
        promise.futureResult.whenComplete { _ in timeoutTask.cancel() }
        let host = self.host
        let collector = { ResponseCollector(url: url, promise: promise, keepsErrorBody: control) }
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector())
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "\(host):\(self.port)")
                    headers.add(name: "Accept", value: "application/json, text/plain")
                    headers.add(name: "Connection", value: "close")
                    if control {
                        headers.add(name: "X-Agg-Control", value: "1")
                        headers.add(name: "Content-Length", value: "0")
                    }
                    let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                case .failure(let error):
                    promise.fail(StatusFetchError(url: url, reason: "cannot connect: \(Self.describe(error))"))
                }
            }
        return promise.futureResult
    }

    /// A connection error as a person reads it: "Connection refused" rather than NIO's nested dump.
    static func describe(_ error: any Error) -> String {
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first {
            return describe(first.error)
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        return "\(error)"
    }

    /// Collects one response and completes the promise with its body.
    final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart

        let url: String
        let promise: EventLoopPromise<[UInt8]>
        /// Put the body of an answer other than 200 in the error (a control request's answer says why).
        let keepsErrorBody: Bool
        private var status: HTTPResponseStatus?
        private var body: [UInt8] = []

        init(url: String, promise: EventLoopPromise<[UInt8]>, keepsErrorBody: Bool = false) {
            self.url = url
            self.promise = promise
            self.keepsErrorBody = keepsErrorBody
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = head.status
            case .body(let bytes):
                body += bytes.readableBytesView
            case .end:
                if status == .ok {
                    promise.succeed(body)
                } else {
                    var reason = "HTTP " + (status.map { "\($0.code) \($0.reasonPhrase)" } ?? "no status")
                    if keepsErrorBody, !body.isEmpty, body.count < 1024 {
                        let text = String(decoding: body, as: UTF8.self)
                        reason += ": " + (text.hasSuffix("\n") ? String(text.dropLast()) : text)
                    }
                    promise.fail(StatusFetchError(url: url, reason: reason))
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(StatusFetchError(url: url, reason: "the connection closed before the answer was complete"))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(StatusFetchError(url: url, reason: "\(error)"))
            context.close(promise: nil)
        }
    }
}
