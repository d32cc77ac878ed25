import AggProtocol
import NIOCore
import SCTPEngine

/// The header of a SOCKS5 UDP relay datagram (RFC 1928 §7): `RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA`. Parses a
/// client's datagram and writes the header of a reply, as pure functions.
package struct SOCKS5UDPHeader: Equatable {
    /// Where the datagram goes (from the client) or came from (to the client).
    package var target: StreamTarget

    package init(target: StreamTarget) {
        self.target = target
    }

    /// Why a client's datagram was dropped.
    package enum DecodingError: Error, Equatable, CustomStringConvertible {
        case truncated
        case nonZeroReserved
        /// RFC 1928 §7: "An implementation that does not support fragmentation MUST drop any datagram whose FRAG
        /// field is other than X'00'." We do not reassemble.
        case fragmented(UInt8)
        case unknownAddressType(UInt8)
        case invalidDomain
        case zeroPort

        package var description: String {
            switch self {
            case .truncated: return "truncated SOCKS5 UDP header"
            case .nonZeroReserved: return "SOCKS5 UDP header with a non-zero RSV"
            case .fragmented(let frag): return "SOCKS5 UDP fragment \(frag) (fragmentation is not supported)"
            case .unknownAddressType(let type): return "unknown address type \(type)"
            case .invalidDomain: return "empty domain name or a byte outside printable ASCII"
            case .zeroPort: return "port 0"
            }
        }
    }

    /// Reads the header off `buffer`, leaving the reader index at DATA. Nothing is read when it throws.
    package static func read(from buffer: inout ByteBuffer) throws(DecodingError) -> SOCKS5UDPHeader {
        var view = buffer
        guard let reserved = view.readInteger(as: UInt16.self), let frag = view.readInteger(as: UInt8.self),
            let type = view.readInteger(as: UInt8.self)
        else { throw .truncated }
        guard reserved == 0 else { throw .nonZeroReserved }
        guard frag == 0 else { throw .fragmented(frag) }
        let host: StreamTarget.Host
        switch type {
        case 0x01:
            guard let address = view.readInteger(as: UInt32.self) else { throw .truncated }
            host = .ip(.v4(address))
        case 0x04:
            guard let bytes = view.readBytes(length: 16), let address = SCTPIPAddress(bytes: bytes) else {
                throw .truncated
            }
            host = .ip(address)
        case 0x03:
            guard let length = view.readInteger(as: UInt8.self) else { throw .truncated }
            guard let bytes = view.readBytes(length: Int(length)) else { throw .truncated }
            guard length > 0, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw .invalidDomain }
            let name = String(decoding: bytes, as: UTF8.self)
            host = SCTPIPAddress(name).map { .ip($0) } ?? .domain(name)
        default:
            throw .unknownAddressType(type)
        }
        guard let port = view.readInteger(as: UInt16.self) else { throw .truncated }
        guard port != 0 else { throw .zeroPort }
        buffer = view
        return SOCKS5UDPHeader(target: StreamTarget(host: host, port: port))
    }

    /// Writes the header (RSV 0, FRAG 0) for a datagram from `target` back to the client.
    package func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt8(0))
        target.encode(into: &buffer)
    }

    /// The header's size in bytes.
    package var size: Int {
        switch target.host {
        case .ip(.v4): return 10
        case .ip(.v6): return 22
        case .domain(let name): return 7 + min(name.utf8.count, AggLimits.maxDomainLength)
        }
    }
}
