#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SCTPEngine

/// One UDP datagram found in a capture, with the capture timestamp.
public struct PcapRecord: Sendable {
    /// The capture time, from the file's epoch.
    public var timestamp: SCTPTime
    /// Addresses and ports from the IP and UDP headers; the payload is the UDP payload.
    public var datagram: SCTPDatagram
    /// The length of the frame on the wire, as the capture recorded it.
    public var originalLength: Int
}

/// Reads the UDP datagrams out of a classic libpcap file: raw IP, IPv4, IPv6, Ethernet (with VLAN tags), Linux
/// cooked (SLL and SLL2) and BSD loopback link types, either byte order, micro- or nanosecond timestamps.
/// Packets that are not complete unfragmented UDP are counted in `skippedCount` and left out.
public struct PcapReader {
    public enum LinkType: UInt32, Sendable {
        case null = 0
        case ethernet = 1
        case raw = 101
        case linuxSLL = 113
        case ipv4 = 228
        case ipv6 = 229
        case linuxSLL2 = 276
    }

    public let linkType: LinkType
    public let snapLength: Int
    public private(set) var records: [PcapRecord] = []
    /// Frames that held no complete UDP datagram (other protocols, fragments, truncated by the snap length).
    public private(set) var skippedCount = 0

    /// Reads a whole capture file.
    public init(path: String) throws {
        guard let file = fopen(path, "rb") else { throw PcapError.cannotOpen(path: path, errno: errno) }
        defer { fclose(file) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            contents.append(contentsOf: chunk[0..<count])
        }
        try self.init(bytes: contents)
    }

    /// Parses a capture held in memory.
    public init(bytes: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: bytes)
        guard let magic = buffer.readInteger(endianness: .little, as: UInt32.self) else {
            throw PcapError.truncated(offset: 0)
        }
        let endianness: Endianness
        let nanosecondResolution: Bool
        switch magic {
        case PcapWriter.microsecondMagic: (endianness, nanosecondResolution) = (.little, false)
        case PcapWriter.nanosecondMagic: (endianness, nanosecondResolution) = (.little, true)
        case PcapWriter.microsecondMagic.byteSwapped: (endianness, nanosecondResolution) = (.big, false)
        case PcapWriter.nanosecondMagic.byteSwapped: (endianness, nanosecondResolution) = (.big, true)
        case 0x0A0D_0D0A: throw PcapError.pcapngNotSupported
        default: throw PcapError.badMagic(magic)
        }
        // Version (2 + 2), thiszone, sigfigs, then snaplen and the link type.
        guard buffer.readSlice(length: 12) != nil, let snapLength = buffer.readInteger(endianness: endianness, as: UInt32.self),
            let rawLinkType = buffer.readInteger(endianness: endianness, as: UInt32.self)
        else { throw PcapError.truncated(offset: buffer.readerIndex) }
        // The upper bits of the link type field may carry FCS information; the type is the low 16 bits.
        guard let linkType = LinkType(rawValue: rawLinkType & 0xFFFF) else {
            throw PcapError.unsupportedLinkType(rawLinkType)
        }
        self.linkType = linkType
        self.snapLength = Int(snapLength)

        while buffer.readableBytes > 0 {
            let recordStart = buffer.readerIndex
            guard let seconds = buffer.readInteger(endianness: endianness, as: UInt32.self),
                let fraction = buffer.readInteger(endianness: endianness, as: UInt32.self),
                let capturedLength = buffer.readInteger(endianness: endianness, as: UInt32.self),
                let originalLength = buffer.readInteger(endianness: endianness, as: UInt32.self),
                var frame = buffer.readSlice(length: Int(capturedLength))
            else { throw PcapError.truncated(offset: recordStart) }
            let nanoseconds = Int64(seconds) * 1_000_000_000 + Int64(fraction) * (nanosecondResolution ? 1 : 1_000)
            if let datagram = Self.udpDatagram(in: &frame, linkType: linkType, fileEndianness: endianness) {
                records.append(
                    PcapRecord(timestamp: SCTPTime(nanoseconds: nanoseconds), datagram: datagram,
                               originalLength: Int(originalLength)))
            } else {
                skippedCount += 1
            }
        }
    }

    /// The UDP datagram in one frame, or nil if the frame holds anything else.
    static func udpDatagram(in frame: inout ByteBuffer, linkType: LinkType, fileEndianness: Endianness)
        -> SCTPDatagram?
    {
        let etherType: UInt16?
        switch linkType {
        case .raw, .ipv4, .ipv6:
            etherType = nil
        case .null:
            // The address family, in the byte order of the machine that captured (which wrote the file).
            guard let family = frame.readInteger(endianness: fileEndianness, as: UInt32.self) else { return nil }
            switch family {
            case 2: etherType = 0x0800
            case 10, 24, 28, 30: etherType = 0x86DD
            default: return nil
            }
        case .ethernet:
            guard frame.readSlice(length: 12) != nil, var type = frame.readInteger(as: UInt16.self) else { return nil }
            // 802.1Q and 802.1ad tags: skip the tag control information and read the inner type.
            while type == 0x8100 || type == 0x88A8 {
                guard frame.readSlice(length: 2) != nil, let inner = frame.readInteger(as: UInt16.self) else {
                    return nil
                }
                type = inner
            }
            etherType = type
        case .linuxSLL:
            guard frame.readSlice(length: 14) != nil, let type = frame.readInteger(as: UInt16.self) else { return nil }
            etherType = type
        case .linuxSLL2:
            guard let type = frame.readInteger(as: UInt16.self), frame.readSlice(length: 18) != nil else { return nil }
            etherType = type
        }
        switch etherType {
        case nil, 0x0800?, 0x86DD?: return ipPacket(in: &frame)
        default: return nil
        }
    }

    /// Parses an IPv4 or IPv6 packet carrying a whole UDP datagram.
    static func ipPacket(in packet: inout ByteBuffer) -> SCTPDatagram? {
        guard let first = packet.getInteger(at: packet.readerIndex, as: UInt8.self) else { return nil }
        let sourceIP: SCTPIPAddress
        let destinationIP: SCTPIPAddress
        switch first >> 4 {
        case 4:
            let headerLength = Int(first & 0x0F) * 4
            guard headerLength >= 20, let header = packet.readSlice(length: headerLength),
                let totalLength = header.getInteger(at: header.readerIndex + 2, as: UInt16.self),
                let fragment = header.getInteger(at: header.readerIndex + 6, as: UInt16.self),
                let protocolNumber = header.getInteger(at: header.readerIndex + 9, as: UInt8.self),
                let source = header.getInteger(at: header.readerIndex + 12, as: UInt32.self),
                let destination = header.getInteger(at: header.readerIndex + 16, as: UInt32.self),
                protocolNumber == 17,
                // More fragments, or a non-zero offset: not a whole datagram.
                fragment & 0x3FFF == 0,
                Int(totalLength) >= headerLength,
                let body = packet.readSlice(length: Int(totalLength) - headerLength)
            else { return nil }
            packet = body
            sourceIP = .v4(source)
            destinationIP = .v4(destination)
        case 6:
            guard let header = packet.readSlice(length: 40),
                let payloadLength = header.getInteger(at: header.readerIndex + 4, as: UInt16.self),
                var nextHeader = header.getInteger(at: header.readerIndex + 6, as: UInt8.self),
                let sourceBytes = header.getBytes(at: header.readerIndex + 8, length: 16),
                let destinationBytes = header.getBytes(at: header.readerIndex + 24, length: 16),
                let source = SCTPIPAddress(bytes: sourceBytes),
                let destination = SCTPIPAddress(bytes: destinationBytes),
                var body = packet.readSlice(length: Int(payloadLength))
            else { return nil }
            // Hop-by-hop, routing and destination options; a fragment header means not a whole datagram.
            while nextHeader == 0 || nextHeader == 43 || nextHeader == 60 {
                guard let next = body.readInteger(as: UInt8.self), let length = body.readInteger(as: UInt8.self),
                    body.readSlice(length: 6 + Int(length) * 8) != nil
                else { return nil }
                nextHeader = next
            }
            guard nextHeader == 17 else { return nil }
            packet = body
            sourceIP = source
            destinationIP = destination
        default:
            return nil
        }
        guard let sourcePort = packet.readInteger(as: UInt16.self),
            let destinationPort = packet.readInteger(as: UInt16.self),
            let udpLength = packet.readInteger(as: UInt16.self), udpLength >= 8,
            packet.readInteger(as: UInt16.self) != nil,
            let payload = packet.readSlice(length: Int(udpLength) - 8)
        else { return nil }
        return SCTPDatagram(
            source: SCTPSocketAddress(ip: sourceIP, port: sourcePort),
            destination: SCTPSocketAddress(ip: destinationIP, port: destinationPort),
            payload: payload)
    }
}
