import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A UDP socket of the driver's own making: created, given its options and bound here, then handed to NIO
/// (`DatagramBootstrap.withBoundSocket`), which reads it and owns its closing. The driver writes to it itself:
/// one `sendmsg` per batch, with the UDP_SEGMENT control message when the batch holds several datagrams. NIO's
/// write path costs about 11,000 instructions per flush (its pending-write queue, a promise, an envelope, address
/// conversion, `sendmmsg` set-up), about a tenth of each daemon's CPU when every SACK is a flush; this costs a few
/// hundred. A send the kernel cannot take now (EAGAIN: the socket's send buffer is full) goes through the channel
/// instead, which waits for the socket to become writable.
struct UDPSocket {
    let descriptor: CInt

    enum SendResult: Equatable {
        case sent
        /// The send buffer is full: try again when the socket is writable.
        case wouldBlock
        case failed(errno: CInt)
    }

    /// Creates a non-blocking UDP socket for `address`'s family, sets what must precede bind(2) (SO_REUSEPORT,
    /// SO_BINDTODEVICE, IPV6_V6ONLY for the IPv6 wildcard), and binds it to `address`.
    static func bound(
        to address: SCTPSocketAddress, interface: String?, reusePort: Bool
    ) throws -> UDPSocket {
        if let interface, !InterfaceAddresses.isValidName(interface) {
            throw SCTPDriver.InterfaceBindingError(interface: interface, reason: "not a valid interface name")
        }
        let family = address.ip.isIPv4 ? AF_INET : AF_INET6
        let type = CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        let descriptor = socket(family, type, 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        let socket = UDPSocket(descriptor: descriptor)
        do {
            if reusePort { try socket.setOption(level: SOL_SOCKET, name: SO_REUSEPORT, value: CInt(1)) }
            if let interface {
                // IFNAMSIZ bytes, zero-terminated. Since Linux 5.7 an unprivileged process may set this once per
                // socket; older kernels need CAP_NET_RAW.
                var name = [UInt8](repeating: 0, count: Int(IFNAMSIZ))
                name.replaceSubrange(0..<interface.utf8.count, with: interface.utf8)
                let result = name.withUnsafeBytes { bytes in
                    setsockopt(descriptor, SOL_SOCKET, SO_BINDTODEVICE, bytes.baseAddress, socklen_t(bytes.count))
                }
                guard result == 0 else {
                    let error = IOError(errnoCode: errno, reason: "setsockopt(SO_BINDTODEVICE)")
                    throw SCTPDriver.InterfaceBindingError(interface: interface, reason: "\(error)")
                }
            }
            // The IPv6 wildcard socket binds next to one on 0.0.0.0 with the same port (the server's default listens
            // on both): with net.ipv6.bindv6only at its default of 0 it would also claim the port's IPv4 side, and
            // the second bind would fail with EADDRINUSE.
            if address.ip == .anyV6 {
                try socket.setOption(level: CInt(IPPROTO_IPV6), name: IPV6_V6ONLY, value: CInt(1))
            }
            let local = RawSocketAddress(address)
            let result = local.withSockAddr { bind(descriptor, $0, $1) }
            guard result == 0 else { throw IOError(errnoCode: errno, reason: "bind(\(address))") }
        } catch {
            close(descriptor)
            throw error
        }
        return socket
    }

    private func setOption(level: CInt, name: CInt, value: CInt) throws {
        var value = value
        guard setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            throw IOError(errnoCode: errno, reason: "setsockopt(\(level), \(name))")
        }
    }

    /// Sends `buffer`'s readable bytes to `destination`: one datagram, or with `segmentSize` above zero a run of
    /// datagrams of that size (the last may be shorter) that the kernel splits (UDP_SEGMENT).
    func send(_ buffer: ByteBuffer, to destination: RawSocketAddress, segmentSize: Int) -> SendResult {
        buffer.withUnsafeReadableBytes { bytes in
            destination.withSockAddr { address, addressLength in
                var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                var control = SegmentControl(segmentSize: UInt16(truncatingIfNeeded: segmentSize))
                return withUnsafeMutablePointer(to: &vector) { vector in
                    withUnsafeMutableBytes(of: &control) { control in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(mutating: address)
                        message.msg_namelen = addressLength
                        message.msg_iov = vector
                        message.msg_iovlen = 1
                        if segmentSize > 0 {
                            message.msg_control = control.baseAddress
                            message.msg_controllen = control.count
                        }
                        while true {
                            if sendmsg(descriptor, &message, 0) >= 0 { return .sent }
                            switch errno {
                            case EINTR: continue
                            case EAGAIN, EWOULDBLOCK: return .wouldBlock
                            case let code: return .failed(errno: code)
                            }
                        }
                    }
                }
            }
        }
    }

    /// One control message carrying UDP_SEGMENT's 16-bit segment size, laid out as CMSG_SPACE(2) bytes on a 64-bit
    /// Linux: the header (length, level, type) then the value, padded to 8 bytes.
    private struct SegmentControl {
        var length: Int = MemoryLayout<Int>.size + 2 * MemoryLayout<CInt>.size + 2  // CMSG_LEN(2)
        var level: CInt = 17  // SOL_UDP
        var type: CInt = 103  // UDP_SEGMENT
        var segmentSize: UInt16
        var padding: (UInt16, UInt16, UInt16) = (0, 0, 0)

        init(segmentSize: UInt16) { self.segmentSize = segmentSize }
    }
}

/// A socket address in the kernel's form (`sockaddr_in` or `sockaddr_in6`), made once per destination.
struct RawSocketAddress {
    private var storage = sockaddr_in6()
    private let length: socklen_t

    init(_ address: SCTPSocketAddress) {
        switch address.ip {
        case .v4(let ip):
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = address.port.bigEndian
            raw.sin_addr.s_addr = ip.bigEndian
            withUnsafeMutableBytes(of: &storage) { target in
                withUnsafeBytes(of: raw) { target.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6(let high, let low):
            storage.sin6_family = sa_family_t(AF_INET6)
            storage.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &storage.sin6_addr) { target in
                target.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
                target.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: storage) { bytes in
            body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}
