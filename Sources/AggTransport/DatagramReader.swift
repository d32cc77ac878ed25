import CUDPRead
import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Reads a UDP socket's datagrams itself, with `recvmmsg` into buffers it reuses, its source address taken from
/// the kernel's `sockaddr` as the engine's address, the UDP_GRO segment size and the packet-info destination from
/// the control messages: no allocation per read while one of its buffers is unique again. NIO's vector read costs two or
/// three per slot (its text `SocketAddress`, boxed; the envelope array), about four fifths of aggclient's allocations
/// once everything else was pooled. NIO still watches the socket for readability (it has no public way to report
/// readiness without reading) and reads one datagram per wake-up; the driver drains the rest with this.
final class DatagramReader {
    /// One datagram read, or a run of them when `segmentSize` is above zero (UDP_GRO: each `segmentSize` bytes but
    /// the last, which may be shorter).
    struct Datagram {
        var payload: ByteBuffer
        var source: SCTPSocketAddress
        /// The packet's destination address (IP_PKTINFO / IPV6_PKTINFO), when the socket asked for it.
        var destination: SCTPIPAddress?
        var segmentSize: Int
    }

    enum Result: Equatable {
        /// `count` slots were filled (datagrams handed over, truncated ones counted in `truncated`).
        case read(count: Int)
        /// Nothing to read.
        case wouldBlock
        case failed(errno: CInt)
    }

    let slots: Int
    let slotSize: Int
    /// The control buffer per slot: room for UDP_GRO's and a packet info's messages (CMSG_SPACE(4) +
    /// CMSG_SPACE(20) is 56 bytes).
    static let controlSize = 128
    /// Datagrams dropped because they did not fit their slot (or their control messages did not fit theirs).
    private(set) var truncated = 0

    /// The buffers read into, up to `maximumBuffers`: the engine keeps slices of the last datagrams it parsed
    /// until it parses the next (its chunk array is reused), so the buffer of the read before is seldom free yet;
    /// with one buffer every read took a new one (512 KiB with offload: mmap, page faults and munmap each time).
    private var buffers: [ByteBuffer] = []
    /// The buffer after the one read into last: tried first.
    private var next = 0
    static let maximumBuffers = 4
    private let headers: UnsafeMutablePointer<cudpread_message>
    private let vectors: UnsafeMutablePointer<iovec>
    private let addresses: UnsafeMutablePointer<sockaddr_storage>
    private let controls: UnsafeMutableRawPointer

    init(slots: Int, slotSize: Int) {
        self.slots = slots
        self.slotSize = slotSize
        headers = .allocate(capacity: slots)
        vectors = .allocate(capacity: slots)
        addresses = .allocate(capacity: slots)
        controls = .allocate(byteCount: slots * Self.controlSize, alignment: 8)
    }

    deinit {
        headers.deallocate()
        vectors.deallocate()
        addresses.deallocate()
        controls.deallocate()
    }

    /// A buffer nobody else holds, cleared: the first free one from `next` on, else a new one (added while there
    /// are fewer than `maximumBuffers`, else in place of `next`'s, which its holders keep).
    private func freeBuffer() -> Int {
        for step in 0..<buffers.count {
            let index = (next + step) % buffers.count
            if buffers[index].modifyIfUniquelyOwned({ $0.clear() }) != nil { return index }
        }
        let fresh = ByteBufferAllocator().buffer(capacity: slots * slotSize)
        if buffers.count < Self.maximumBuffers {
            buffers.append(fresh)
            return buffers.count - 1
        }
        buffers[next] = fresh
        return next
    }

    /// One `recvmmsg` on `descriptor`: each datagram read goes to `body`, as a slice of one of the reader's buffers
    /// (which it may keep: that buffer is then not read into again while it does).
    func read(_ descriptor: CInt, _ body: (Datagram) -> Void) -> Result {
        let index = freeBuffer()
        next = (index + 1) % Self.maximumBuffers
        let count = buffers[index].withUnsafeMutableWritableBytes { bytes -> Int in
            let base = bytes.baseAddress!
            for slot in 0..<slots {
                vectors[slot] = iovec(iov_base: base + slot * slotSize, iov_len: slotSize)
                var header = msghdr()
                header.msg_name = UnsafeMutableRawPointer(addresses + slot)
                header.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                header.msg_iov = vectors + slot
                header.msg_iovlen = 1
                header.msg_control = controls + slot * Self.controlSize
                header.msg_controllen = Self.controlSize
                headers[slot] = cudpread_message(header: header, length: 0)
            }
            while true {
                let result = cudpread_recvmmsg(descriptor, headers, UInt32(slots), 0)
                if result >= 0 { return Int(result) }
                if errno != EINTR { return -Int(errno) }
            }
        }
        if count < 0 {
            let code = CInt(-count)
            return code == EAGAIN || code == EWOULDBLOCK ? .wouldBlock : .failed(errno: code)
        }
        buffers[index].moveWriterIndex(to: slots * slotSize)
        let buffer = buffers[index]
        for slot in 0..<count {
            let header = headers[slot].header
            let length = Int(headers[slot].length)
            guard header.msg_flags & CInt(MSG_TRUNC | MSG_CTRUNC) == 0, length <= slotSize else {
                truncated += 1
                continue
            }
            guard let source = Self.address(addresses + slot) else { continue }
            var datagram = Datagram(
                payload: buffer.getSlice(at: slot * slotSize, length: length)!, source: source, destination: nil,
                segmentSize: 0)
            Self.parseControl(
                UnsafeRawBufferPointer(start: header.msg_control, count: Int(header.msg_controllen)), into: &datagram)
            body(datagram)
        }
        return .read(count: count)
    }

    /// The engine's form of a `sockaddr_in` or `sockaddr_in6`; nil for any other family.
    static func address(_ storage: UnsafePointer<sockaddr_storage>) -> SCTPSocketAddress? {
        let raw = UnsafeRawPointer(storage)
        switch CInt(storage.pointee.ss_family) {
        case AF_INET:
            let v4 = raw.load(as: sockaddr_in.self)
            return SCTPSocketAddress(
                ip: .v4(UInt32(bigEndian: v4.sin_addr.s_addr)), port: UInt16(bigEndian: v4.sin_port))
        case AF_INET6:
            let v6 = raw.load(as: sockaddr_in6.self)
            return SCTPSocketAddress(
                ip: address6(UnsafeRawPointer(raw + MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!)),
                port: UInt16(bigEndian: v6.sin6_port))
        default:
            return nil
        }
    }

    /// The 16 network-order bytes at `bytes` as the engine's IPv6 address.
    private static func address6(_ bytes: UnsafeRawPointer) -> SCTPIPAddress {
        .v6(
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    /// Walks the control messages (each a header of length, level and type, then its data, padded to 8 bytes) for
    /// UDP_GRO's segment size and the packet info's destination address.
    static func parseControl(_ control: UnsafeRawBufferPointer, into datagram: inout Datagram) {
        let headerSize = MemoryLayout<Int>.size + 2 * MemoryLayout<CInt>.size
        var offset = 0
        while offset + headerSize <= control.count, let base = control.baseAddress {
            let length = base.loadUnaligned(fromByteOffset: offset, as: Int.self)
            let level = base.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size, as: CInt.self)
            let type = base.loadUnaligned(fromByteOffset: offset + MemoryLayout<Int>.size + 4, as: CInt.self)
            guard length >= headerSize, offset + length <= control.count else { return }
            let data = base + offset + headerSize
            let dataLength = length - headerSize
            switch (level, type) {
            case (solUDP, udpGRO) where dataLength >= 4:
                datagram.segmentSize = Int(data.loadUnaligned(as: CInt.self))
            case (CInt(IPPROTO_IP), CInt(IP_PKTINFO)) where dataLength >= MemoryLayout<in_pktinfo>.size:
                // struct in_pktinfo: the interface index, the local address routed to, the header's destination.
                let address = data.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
                datagram.destination = .v4(UInt32(bigEndian: address))
            case (CInt(IPPROTO_IPV6), ipv6PacketInfo) where dataLength >= 20:
                // struct in6_pktinfo: the header's destination, then the interface index.
                datagram.destination = address6(data)
            default:
                break
            }
            offset += (length + 7) & ~7
        }
    }

    static let solUDP: CInt = 17
    static let udpGRO: CInt = 104
    static let ipv6PacketInfo: CInt = 50
}
