import NIOCore
import NIOHTTP1

/// Pure pieces of the HTTP proxy: request-target parsing, header rewriting, serialization, response-head parsing.
enum HTTPProxyMessages {
    /// RFC 9110 §7.6.1 and RFC 9112 §9.6: headers that describe one connection, never forwarded. `Proxy-Connection`
    /// is the non-standard HTTP/1.0 spelling; `Proxy-Authorization` is meant for us; `Transfer-Encoding` and
    /// `Content-Length` are re-derived from the framing we choose.
    static let hopByHopHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer",
        "upgrade", "transfer-encoding", "content-length",
    ]

    /// Why a request head is refused before any upstream is opened.
    enum RequestError: Error, Equatable {
        /// 400: malformed target, smuggling attempt, unsupported framing.
        case badRequest(String)
        /// 407: missing or wrong `Proxy-Authorization`.
        case authenticationRequired
    }

    /// How a request body is framed (RFC 9112 §6.3).
    enum BodyFraming: Equatable {
        case none
        case contentLength(Int)
        case chunked
    }

    /// A request head checked and rewritten for the origin.
    struct ForwardRequest: Equatable {
        var target: ProxyTarget
        var framing: BodyFraming
        var isHEAD: Bool
        /// The head in origin-form, ready to send.
        var head: [UInt8]
    }

    // MARK: - Requests

    /// Checks the framing headers the way RFC 9112 §6.3 asks of a proxy: "If a message is received with both a
    /// Transfer-Encoding and a Content-Length header field, the Transfer-Encoding overrides the Content-Length. Such a
    /// message might indicate an attempt to perform request smuggling (Section 11.2) ... and ought to be handled as an
    /// error." We treat it as an error, and so are several differing Content-Length values and any transfer coding
    /// other than a final `chunked`.
    static func framing(of head: HTTPRequestHead) throws(RequestError) -> BodyFraming {
        let lengths = head.headers[canonicalForm: "content-length"]
        let codings = head.headers[canonicalForm: "transfer-encoding"].map { $0.lowercased() }
        if !codings.isEmpty {
            guard lengths.isEmpty else { throw .badRequest("both Content-Length and Transfer-Encoding") }
            guard codings == ["chunked"] else { throw .badRequest("unsupported Transfer-Encoding") }
            return .chunked
        }
        guard let first = lengths.first else { return .none }
        guard lengths.allSatisfy({ $0 == first }), let length = Int(first), length >= 0,
            first.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { throw .badRequest("invalid Content-Length") }
        return length == 0 ? .none : .contentLength(length)
    }

    /// `http://authority/path?query` → the target and the origin-form path. RFC 9112 §3.2.2: absolute-form is what a
    /// client sends to a proxy. `https` goes through CONNECT; userinfo is refused (RFC 9110 §4.2.4 deprecates it).
    static func parseAbsoluteForm(_ uri: String) throws(RequestError) -> (target: ProxyTarget, path: String) {
        let scheme = "http://"
        guard uri.utf8.count > scheme.utf8.count, uri.prefix(scheme.count).lowercased() == scheme else {
            throw .badRequest("request target is not an absolute http URI")
        }
        let rest = uri.dropFirst(scheme.count)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@") else { throw .badRequest("userinfo in request target") }
        guard let target = ProxyTarget(authority: authority, defaultPort: 80) else {
            throw .badRequest("invalid authority")
        }
        var path = String(rest[authorityEnd...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        return (target, path)
    }

    /// Checks `Proxy-Authorization: Basic …` against the configured credentials (RFC 9110 §11.7.2, RFC 7617).
    static func isAuthorized(_ head: HTTPRequestHead, users: [ProxyIngressConfiguration.Credentials]) -> Bool {
        guard !users.isEmpty else { return true }
        let expected = users.map { Array(base64("\($0.username):\($0.password)").utf8) }
        return head.headers["proxy-authorization"].contains { value in
            let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "basic" else { return false }
            let presented = Array(parts[1].trimmingSpaces().utf8)
            // Every user is compared in full: the time taken does not tell which one matched.
            var matched = false
            for credentials in expected {
                matched = SOCKS5Handshake.constantTimeEqual(presented, credentials) || matched
            }
            return matched
        }
    }

    /// Builds the head sent to the origin: origin-form target, `Host` from the target URI (RFC 9112 §3.2.2: the
    /// proxy "MUST ignore the received Host header field ... and instead replace it with the host information of the
    /// request-target"), hop-by-hop headers and those named in `Connection` dropped, our own framing, and
    /// `Connection: close`, so that the end of the upstream marks the end of the response.
    static func forwardRequest(_ head: HTTPRequestHead) throws(RequestError) -> ForwardRequest {
        let framing = try self.framing(of: head)
        let (target, path) = try self.parseAbsoluteForm(head.uri)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512)
        bytes += "\(head.method.rawValue) \(path) HTTP/1.1\r\n".utf8
        bytes += "Host: \(self.hostHeader(target))\r\n".utf8
        let dropped = self.connectionTokens(head.headers).union(self.hopByHopHeaders).union(["host"])
        for (name, value) in head.headers where !dropped.contains(name.lowercased()) {
            bytes += "\(name): \(value)\r\n".utf8
        }
        switch framing {
        case .none: break
        case .contentLength(let length): bytes += "Content-Length: \(length)\r\n".utf8
        case .chunked: bytes += "Transfer-Encoding: chunked\r\n".utf8
        }
        bytes += "Connection: close\r\n\r\n".utf8
        return ForwardRequest(target: target, framing: framing, isHEAD: head.method == .HEAD, head: bytes)
    }

    /// `Host` for a target: the port is left out when it is 80.
    static func hostHeader(_ target: ProxyTarget) -> String {
        guard target.port == 80 else { return target.description }
        let full = target.description
        return String(full.dropLast(":80".count))
    }

    /// The lower-cased header names listed in `Connection` (RFC 9110 §7.6.1).
    static func connectionTokens(_ headers: HTTPHeaders) -> Set<String> {
        var tokens: Set<String> = []
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                tokens.insert(token.trimmingSpaces().lowercased())
            }
        }
        return tokens
    }

    // MARK: - Responses

    /// A response head as received from the origin.
    struct ResponseHead: Equatable {
        var status: Int
        var reason: String
        var headers: [(name: String, value: String)]

        static func == (lhs: ResponseHead, rhs: ResponseHead) -> Bool {
            lhs.status == rhs.status && lhs.reason == rhs.reason
                && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
        }

        func values(_ name: String) -> [String] {
            self.headers.filter { $0.name.lowercased() == name }.map(\.value)
        }
    }

    /// Parses a response head ending in CRLF CRLF. Nil when it is malformed.
    static func parseResponseHead(_ bytes: ByteBufferView) -> ResponseHead? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard lines.count >= 3, lines.removeLast().isEmpty, lines.removeLast().isEmpty else { return nil }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), statusLine[1].count == 3,
            let status = Int(statusLine[1]), status >= 100
        else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            // RFC 9112 §5.2: obsolete line folding is refused, like any line without a colon.
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix(" "), !line.hasPrefix("\t") else { return nil }
            let name = line[..<colon]
            guard !name.isEmpty, !name.contains(" ") else { return nil }
            headers.append((String(name), String(line[line.index(after: colon)...].trimmingSpaces())))
        }
        let reason = statusLine.count > 2 ? String(statusLine[2]) : ""
        return ResponseHead(status: status, reason: reason, headers: headers)
    }

    /// Whether the client learns where the body ends from the head alone (RFC 9112 §6.3); when not, the body runs
    /// to the end of the connection and the client's connection must close after it.
    static func isSelfDelimiting(_ head: ResponseHead, requestWasHEAD: Bool) -> Bool {
        if requestWasHEAD || head.status < 200 || head.status == 204 || head.status == 304 { return true }
        if let coding = head.values("transfer-encoding").last {
            return coding.lowercased().split(separator: ",").last?.trimmingSpaces() == "chunked"
        }
        return !head.values("content-length").isEmpty
    }

    /// The head relayed to the client: hop-by-hop headers dropped, framing headers kept (the body is passed through
    /// untouched), and our own `Connection`.
    static func clientResponseHead(_ head: ResponseHead, keepAlive: Bool) -> [UInt8] {
        var bytes: [UInt8] = Array("HTTP/1.1 \(head.status) \(head.reason)\r\n".utf8)
        var connectionTokens: Set<String> = []
        for value in head.values("connection") {
            for token in value.split(separator: ",") { connectionTokens.insert(token.trimmingSpaces().lowercased()) }
        }
        let framing: Set<String> = ["transfer-encoding", "content-length"]
        for (name, value) in head.headers {
            let lower = name.lowercased()
            if framing.contains(lower) || !(self.hopByHopHeaders.contains(lower) || connectionTokens.contains(lower)) {
                bytes += "\(name): \(value)\r\n".utf8
            }
        }
        if head.status >= 200 {
            bytes += (keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n").utf8
        }
        bytes += "\r\n".utf8
        return bytes
    }

    /// A complete response of our own, always with `Connection: close`.
    static func errorResponse(_ status: HTTPStatusLine, extraHeaders: [String] = []) -> [UInt8] {
        let body = "\(status.code) \(status.reason)\n"
        var text = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        for header in extraHeaders { text += header + "\r\n" }
        text += "Content-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        return Array((text + body).utf8)
    }

    // MARK: - Helpers

    /// RFC 4648 §4 base64 with padding.
    static func base64(_ text: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let input = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        while index < input.count {
            let chunk = input[index..<min(index + 3, input.count)]
            let b0 = chunk[chunk.startIndex]
            let b1 = chunk.count > 1 ? chunk[chunk.startIndex + 1] : 0
            let b2 = chunk.count > 2 ? chunk[chunk.startIndex + 2] : 0
            output.append(alphabet[Int(b0 >> 2)])
            output.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            output.append(chunk.count > 1 ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            output.append(chunk.count > 2 ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}

extension StringProtocol {
    /// Drops leading and trailing spaces and tabs (HTTP's OWS).
    func trimmingSpaces() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let string = Substring(self)
        guard let start = string.firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = string.lastIndex(where: { !isSpace($0) })!
        return string[start...end]
    }
}
