import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One UDP datagram found in a capture, with the capture timestamp.
public struct PcapRecord: Sendable {
    /// The capture time, from the file's epoch.
    public var timestamp: SCTPTime
    /// Addresses and ports from the IP and UDP headers; the payload is the UDP payload.
    public var datagram: SCTPDatagram
    /// The length of the frame on the wire, as the capture recorded it.
    public var originalLength: Int
}

/// Reads the UDP datagrams out of a capture file, classic libpcap (either byte order, micro- or nanosecond
/// timestamps) or pcapng (section, interface, enhanced and simple packet blocks; other blocks are skipped), with raw
/// IP, IPv4, IPv6, Ethernet (with VLAN tags), Linux cooked (SLL and SLL2) or BSD loopback link types.
/// Frames that are not complete unfragmented UDP are counted in `skippedCount` and left out.
public struct PcapReader {
    public enum LinkType: UInt32, Sendable {
        case null = 0
        case ethernet = 1
        case raw = 101
        case linuxSLL = 113
        case ipv4 = 228
        case ipv6 = 229
        case linuxSLL2 = 276

        /// The link type of a header field: the low 16 bits (the rest may carry FCS information), with the BSD
        /// values of DLT_RAW (12, 14) taken as raw IP.
        init?(field: UInt32) {
            let value = field & 0xFFFF
            self.init(rawValue: value == 12 || value == 14 ? 101 : value)
        }
    }

    /// The link type of the file, or of its first interface for pcapng.
    public private(set) var linkType: LinkType = .raw
    public private(set) var snapLength = 0
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
        guard let magic = buffer.getInteger(at: 0, endianness: .little, as: UInt32.self) else {
            throw PcapError.truncated(offset: 0)
        }
        if magic == Self.sectionHeaderBlock {
            try readPcapng(&buffer)
        } else {
            try readClassic(&buffer, magic: magic)
        }
    }

    // MARK: - Classic pcap

    private mutating func readClassic(_ buffer: inout ByteBuffer, magic: UInt32) throws {
        let endianness: Endianness
        let nanosecondResolution: Bool
        switch magic {
        case PcapWriter.microsecondMagic: (endianness, nanosecondResolution) = (.little, false)
        case PcapWriter.nanosecondMagic: (endianness, nanosecondResolution) = (.little, true)
        case PcapWriter.microsecondMagic.byteSwapped: (endianness, nanosecondResolution) = (.big, false)
        case PcapWriter.nanosecondMagic.byteSwapped: (endianness, nanosecondResolution) = (.big, true)
        default: throw PcapError.badMagic(magic)
        }
        // Magic, version (2 + 2), thiszone, sigfigs, then snaplen and the link type.
        guard buffer.readSlice(length: 16) != nil,
            let snapLength = buffer.readInteger(endianness: endianness, as: UInt32.self),
            let rawLinkType = buffer.readInteger(endianness: endianness, as: UInt32.self)
        else { throw PcapError.truncated(offset: buffer.readerIndex) }
        guard let linkType = LinkType(field: rawLinkType) else { throw PcapError.unsupportedLinkType(rawLinkType) }
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
            append(
                &frame, linkType: linkType, endianness: endianness, nanoseconds: nanoseconds,
                originalLength: Int(originalLength))
        }
    }

    private mutating func append(
        _ frame: inout ByteBuffer, linkType: LinkType, endianness: Endianness,
        nanoseconds: Int64, originalLength: Int
    ) {
        if let datagram = Self.udpDatagram(in: &frame, linkType: linkType, fileEndianness: endianness) {
            records.append(
                PcapRecord(
                    timestamp: SCTPTime(nanoseconds: nanoseconds), datagram: datagram,
                    originalLength: originalLength))
        } else {
            skippedCount += 1
        }
    }

    // MARK: - pcapng

    static let sectionHeaderBlock: UInt32 = 0x0A0D_0D0A
    private static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    /// One interface of a pcapng section: its link type and timestamp unit.
    private struct Interface {
        var linkType: LinkType?
        var rawLinkType: UInt32
        var snapLength: Int
        /// if_tsresol: the exponent, and whether it is a power of two rather than of ten.
        var resolution: (exponent: UInt8, binary: Bool) = (6, false)

        func nanoseconds(_ units: UInt64) -> Int64 {
            if resolution.binary {
                let shift = UInt64(resolution.exponent)
                let whole = units >> shift
                let fraction = units & ((1 << shift) &- 1)
                return Int64(truncatingIfNeeded: whole &* 1_000_000_000 &+ (fraction &* 1_000_000_000) >> shift)
            }
            var value = units
            if resolution.exponent <= 9 {
                for _ in resolution.exponent..<9 { value &*= 10 }
            } else {
                for _ in 9..<resolution.exponent { value /= 10 }
            }
            return Int64(truncatingIfNeeded: value)
        }
    }

    private mutating func readPcapng(_ buffer: inout ByteBuffer) throws {
        var endianness = Endianness.little
        var interfaces: [Interface] = []
        var sawFirstInterface = false
        while buffer.readableBytes > 0 {
            let blockStart = buffer.readerIndex
            guard let type = buffer.getInteger(at: blockStart, endianness: endianness, as: UInt32.self) else {
                throw PcapError.truncated(offset: blockStart)
            }
            if type == Self.sectionHeaderBlock {
                // The byte-order magic after the length says how to read the rest of the section.
                guard let order = buffer.getInteger(at: blockStart + 8, endianness: .little, as: UInt32.self) else {
                    throw PcapError.truncated(offset: blockStart)
                }
                switch order {
                case Self.byteOrderMagic: endianness = .little
                case Self.byteOrderMagic.byteSwapped: endianness = .big
                default: throw PcapError.badMagic(order)
                }
                interfaces = []
            }
            guard let length = buffer.getInteger(at: blockStart + 4, endianness: endianness, as: UInt32.self),
                length >= 12, length % 4 == 0, buffer.readSlice(length: 8) != nil,
                var body = buffer.readSlice(length: Int(length) - 12), buffer.readSlice(length: 4) != nil
            else { throw PcapError.truncated(offset: blockStart) }
            switch type {
            case 1:
                // Interface description: link type, reserved, snaplen, options.
                guard let rawLinkType = body.readInteger(endianness: endianness, as: UInt16.self),
                    body.readSlice(length: 2) != nil,
                    let snapLength = body.readInteger(endianness: endianness, as: UInt32.self)
                else { throw PcapError.truncated(offset: blockStart) }
                var interface = Interface(
                    linkType: LinkType(field: UInt32(rawLinkType)),
                    rawLinkType: UInt32(rawLinkType), snapLength: Int(snapLength))
                while let code = body.readInteger(endianness: endianness, as: UInt16.self),
                    let optionLength = body.readInteger(endianness: endianness, as: UInt16.self), code != 0,
                    var value = body.readSlice(length: (Int(optionLength) + 3) & ~3)
                {
                    if code == 9, optionLength == 1, let resolution = value.readInteger(as: UInt8.self) {
                        interface.resolution = (resolution & 0x7F, resolution & 0x80 != 0)
                    }
                }
                if !sawFirstInterface {
                    sawFirstInterface = true
                    guard let linkType = interface.linkType else {
                        throw PcapError.unsupportedLinkType(interface.rawLinkType)
                    }
                    self.linkType = linkType
                    self.snapLength = interface.snapLength
                }
                interfaces.append(interface)
            case 6:
                // Enhanced packet: interface, timestamp (high, low), captured and original length, data.
                guard let interfaceID = body.readInteger(endianness: endianness, as: UInt32.self),
                    let high = body.readInteger(endianness: endianness, as: UInt32.self),
                    let low = body.readInteger(endianness: endianness, as: UInt32.self),
                    let capturedLength = body.readInteger(endianness: endianness, as: UInt32.self),
                    let originalLength = body.readInteger(endianness: endianness, as: UInt32.self),
                    Int(interfaceID) < interfaces.count,
                    var frame = body.readSlice(length: Int(capturedLength))
                else { throw PcapError.truncated(offset: blockStart) }
                let interface = interfaces[Int(interfaceID)]
                guard let linkType = interface.linkType else {
                    skippedCount += 1
                    continue
                }
                append(
                    &frame, linkType: linkType, endianness: endianness,
                    nanoseconds: interface.nanoseconds(UInt64(high) << 32 | UInt64(low)),
                    originalLength: Int(originalLength))
            case 3:
                // Simple packet: original length, then the data up to the snap length; no timestamp.
                guard let interface = interfaces.first, let linkType = interface.linkType,
                    let originalLength = body.readInteger(endianness: endianness, as: UInt32.self)
                else {
                    skippedCount += 1
                    continue
                }
                let captured = min(Int(originalLength), interface.snapLength == 0 ? .max : interface.snapLength)
                guard var frame = body.readSlice(length: captured) else {
                    throw PcapError.truncated(offset: blockStart)
                }
                append(
                    &frame, linkType: linkType, endianness: endianness, nanoseconds: 0,
                    originalLength: Int(originalLength))
            default:
                continue
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
