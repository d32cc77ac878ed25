import NIOCore
import SCTPEngine

/// Where a stream should be relayed: an IP address or a domain name, and a TCP port.
public struct StreamTarget: Hashable, Sendable, CustomStringConvertible {
    /// The host part of a target.
    public enum Host: Hashable, Sendable {
        case ip(SCTPIPAddress)
        /// A name to resolve. It may still be an IP literal in an odd spelling; egress checks for that.
        case domain(String)
    }

    public var host: Host
    public var port: UInt16

    public init(host: Host, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// A target from text as a client typed it: an IP literal (IPv6 may be bracketed) becomes `.ip`, anything
    /// else `.domain`.
    public init(host text: String, port: UInt16) {
        var trimmed = Substring(text)
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]") { trimmed = trimmed.dropFirst().dropLast() }
        if let ip = SCTPIPAddress(trimmed) {
            self.init(host: .ip(ip), port: port)
        } else {
            self.init(host: .domain(text), port: port)
        }
    }

    /// The host as text for a resolver or a log line (IPv6 without brackets).
    public var hostText: String {
        switch host {
        case .ip(let ip): return ip.description
        case .domain(let name): return name
        }
    }

    public var description: String {
        switch host {
        case .ip(.v6): return "[\(hostText)]:\(port)"
        case .ip(.v4), .domain: return "\(hostText):\(port)"
        }
    }
}

extension StreamTarget {
    /// Writes the target as OPEN and UDP-DATAGRAM carry it: SOCKS5's ATYP, the address, the port.
    package func encode(into buffer: inout ByteBuffer) {
        switch host {
        case .ip(.v4(let address)):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(address)
        case .ip(let address):
            buffer.writeInteger(UInt8(4))
            buffer.writeBytes(address.bytes)
        case .domain(let name):
            let bytes = Array(name.utf8.prefix(AggLimits.maxDomainLength))
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(UInt8(bytes.count))
            buffer.writeBytes(bytes)
        }
        buffer.writeInteger(port)
    }
}
