import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What went wrong reading or writing a capture file.
public enum PcapError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case writeFailed(path: String, errno: Int32)
    case badMagic(UInt32)
    case unsupportedLinkType(UInt32)
    /// The file ends inside a header, record or block.
    case truncated(offset: Int)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let errno): return "cannot open \(path): errno \(errno)"
        case .writeFailed(let path, let errno): return "cannot write \(path): errno \(errno)"
        case .badMagic(let magic): return "not a classic pcap file (magic 0x\(String(magic, radix: 16)))"
        case .unsupportedLinkType(let type): return "unsupported pcap link type \(type)"
        case .truncated(let offset): return "pcap file truncated at byte \(offset)"
        }
    }
}

/// Writes datagrams as a classic libpcap file with nanosecond timestamps, each wrapped in real IPv4 or IPv6 and
/// UDP headers with valid checksums, so Wireshark and tshark decode the SCTP inside (Decode As SCTP for ports
/// other than 9899). Writes to a file or, with `init(linkType:snapLength:)`, to memory.
public final class PcapWriter {
    /// The pcap link-layer header type: what each record starts with.
    public enum LinkType: UInt32, Sendable {
        /// Raw IP, version taken from the first nibble (LINKTYPE_RAW).
        case raw = 101
        /// IPv4 only (LINKTYPE_IPV4).
        case ipv4 = 228
        /// IPv6 only (LINKTYPE_IPV6).
        case ipv6 = 229
    }

    /// The nanosecond-resolution classic pcap magic number.
    static let nanosecondMagic: UInt32 = 0xA1B2_3C4D
    static let microsecondMagic: UInt32 = 0xA1B2_C3D4

    public let linkType: LinkType
    public let snapLength: Int
    public let path: String?
    /// Records written so far.
    public private(set) var packetCount = 0
    /// Datagrams not written because their address families differ or do not suit the link type.
    public private(set) var skippedCount = 0

    private var file: UnsafeMutablePointer<FILE>?
    private var pending = ByteBuffer()
    private var memory: [UInt8] = []
    private var scratch = ByteBuffer()
    private var identification: UInt16 = 0

    /// Creates (or truncates) a capture file at `path`.
    public init(path: String, linkType: LinkType = .raw, snapLength: Int = 262_144) throws {
        guard let file = fopen(path, "wb") else { throw PcapError.cannotOpen(path: path, errno: errno) }
        self.file = file
        self.path = path
        self.linkType = linkType
        self.snapLength = snapLength
        writeFileHeader()
        try flush()
    }

    /// Writes to memory; read the file's bytes from `bytes`.
    public init(linkType: LinkType = .raw, snapLength: Int = 262_144) {
        self.file = nil
        self.path = nil
        self.linkType = linkType
        self.snapLength = snapLength
        writeFileHeader()
    }

    deinit {
        if let file {
            pending.withUnsafeReadableBytes { _ = fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
    }

    /// The whole file so far (everything for an in-memory writer; flushed bytes are not kept for a file).
    public var bytes: [UInt8] {
        memory + pending.readableBytesView
    }

    /// Appends one record holding `datagram` as an IP packet captured at `time`.
    public func write(_ datagram: SCTPDatagram, at time: SCTPTime) {
        switch (linkType, datagram.destination.ip.isIPv4) {
        case (.ipv4, false), (.ipv6, true):
            skippedCount += 1
            return
        case (.raw, _), (.ipv4, true), (.ipv6, false):
            break
        }
        scratch.clear()
        identification &+= 1
        guard PacketHeaders.write(headersOf: datagram, identification: identification, into: &scratch) else {
            skippedCount += 1
            return
        }
        let originalLength = scratch.readableBytes + datagram.payload.readableBytes
        let capturedLength = min(originalLength, snapLength)
        let nanoseconds = max(time.nanoseconds, 0)
        pending.writeInteger(UInt32(truncatingIfNeeded: nanoseconds / 1_000_000_000), endianness: .little)
        pending.writeInteger(UInt32(nanoseconds % 1_000_000_000), endianness: .little)
        pending.writeInteger(UInt32(capturedLength), endianness: .little)
        pending.writeInteger(UInt32(originalLength), endianness: .little)
        if capturedLength == originalLength {
            pending.writeBuffer(&scratch)
            pending.writeImmutableBuffer(datagram.payload)
        } else {
            var all = scratch
            all.writeImmutableBuffer(datagram.payload)
            pending.writeImmutableBuffer(all.getSlice(at: all.readerIndex, length: capturedLength)!)
        }
        packetCount += 1
        if file != nil, pending.readableBytes >= 1 << 16 { try? flush() }
    }

    /// Hands buffered records to the file (or memory).
    public func flush() throws {
        guard let file else {
            memory.append(contentsOf: pending.readableBytesView)
            pending.clear()
            return
        }
        let count = pending.readableBytes
        let written = pending.withUnsafeReadableBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        pending.clear()
        guard written == count, fflush(file) == 0 else { throw PcapError.writeFailed(path: path ?? "", errno: errno) }
    }

    /// Flushes and closes the file; later writes are kept in memory only.
    public func close() throws {
        try flush()
        if let file {
            fclose(file)
            self.file = nil
        }
    }

    private func writeFileHeader() {
        pending.writeInteger(Self.nanosecondMagic, endianness: .little)
        pending.writeInteger(UInt16(2), endianness: .little)
        pending.writeInteger(UInt16(4), endianness: .little)
        pending.writeInteger(Int32(0), endianness: .little)
        pending.writeInteger(UInt32(0), endianness: .little)
        pending.writeInteger(UInt32(snapLength), endianness: .little)
        pending.writeInteger(linkType.rawValue, endianness: .little)
    }
}
