import ArgumentParser
import SCTPEngine

/// What a session needs, parsed and checked from the command line.
struct CatSettings: Sendable {
    enum Mode: Sendable {
        case connect(remote: SCTPIPAddress, sctpPort: UInt16)
        case listen(local: SCTPIPAddress, sctpPort: UInt16, echo: Bool)
    }

    var mode: Mode
    /// Local addresses to bind, with the UDP port (0: any).
    var localAddresses: [SCTPSocketAddress]
    var peerUDPPort: UInt16
    var stream: StreamID
    var messageSize: Int
    var linger: SCTPDuration
    var connectTimeout: SCTPDuration
    var unordered: Bool
    var reliability: SCTPReliability
    var printsPartialReliabilityStats: Bool

    init(_ command: SCTPCat) throws {
        let locals = try command.local.map { text in
            guard let ip = SCTPIPAddress(Self.unbracketed(text)) else {
                throw ValidationError("--local \(text): not an IP address")
            }
            return ip
        }
        if let connect = command.connect {
            let (ip, port) = try Self.hostPort(connect, option: "--connect")
            mode = .connect(remote: ip, sctpPort: port)
            let udpPort = command.udpPort ?? 0
            let ips = locals.isEmpty ? [ip.isIPv4 ? SCTPIPAddress.anyV4 : .anyV6] : locals
            localAddresses = ips.map { SCTPSocketAddress(ip: $0, port: udpPort) }
        } else {
            let (ip, port) = try Self.hostPort(command.listen ?? "", option: "--listen")
            mode = .listen(local: ip, sctpPort: port, echo: command.echo)
            let udpPort = command.udpPort ?? SCTPConfiguration.defaultUDPPort
            localAddresses = ([ip] + locals.filter { $0 != ip }).map { SCTPSocketAddress(ip: $0, port: udpPort) }
        }
        peerUDPPort = command.peerUDPPort
        stream = StreamID(command.stream)
        messageSize = command.messageSize
        linger = .nanoseconds(Int64(command.linger * 1e9))
        connectTimeout = .nanoseconds(Int64(command.connectTimeout * 1e9))
        unordered = command.unordered
        reliability = command.lifetimeMs.map { .timed(lifetime: .milliseconds(Int64($0))) } ?? .reliable
        printsPartialReliabilityStats = command.prStats
    }

    /// Parses `1.2.3.4:5000`, `[::1]:5000` or `localhost:5000` (no name resolution beyond localhost).
    static func hostPort(_ text: String, option: String) throws -> (SCTPIPAddress, UInt16) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port != 0
        else {
            throw ValidationError("\(option) \(text): expected HOST:PORT with a non-zero SCTP port")
        }
        let host = unbracketed(String(text[..<colon]))
        if host == "localhost" { return (SCTPIPAddress(v4: 127, 0, 0, 1), port) }
        if host == "*" || host.isEmpty { return (.anyV4, port) }
        guard let ip = SCTPIPAddress(host) else {
            throw ValidationError("\(option) \(text): \(host) is not an IP address")
        }
        return (ip, port)
    }

    static func unbracketed(_ text: String) -> String {
        text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
    }
}
