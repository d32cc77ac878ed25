import NIOCore
import NIOPosix
import SCTPEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One UDP datagram nftables `tproxy` sent to aggclient: who sent it, and where it was going.
package struct TransparentDatagram: Sendable {
    package var source: SCTPSocketAddress
    package var destination: SCTPSocketAddress
    package var payload: ByteBuffer

    package init(source: SCTPSocketAddress, destination: SCTPSocketAddress, payload: ByteBuffer) {
        self.source = source
        self.destination = destination
        self.payload = payload
    }
}

/// The UDP side of router mode: a UDP socket with IP_TRANSPARENT (so nftables `tproxy` may hand it datagrams for
/// any address) and IP_RECVORIGDSTADDR (so each datagram says where it was going: tproxy rewrites nothing, and the
/// original destination's port is in no other field a UDP socket reports). NIO has no way to read that control
/// message, so one thread reads the socket with `recvmsg` and hands the event loop batches of up to 64 datagrams.
/// Replies do not leave through this socket: `ClientUDPRelays` sends them from a socket bound to the original
/// destination, which is what the LAN device expects to hear from.
package final class TransparentDatagramSocket: Sendable {
    /// `IP_RECVORIGDSTADDR` (linux/in.h), at level `SOL_IP`; its control message has the same number
    /// (`IP_ORIGDSTADDR`) and carries a `sockaddr_in`.
    static let ipRecvOriginalDestination: CInt = 20
    /// `IPV6_RECVORIGDSTADDR` (linux/in6.h), at level `SOL_IPV6`; control message `IPV6_ORIGDSTADDR`, a
    /// `sockaddr_in6`.
    static let ipv6RecvOriginalDestination: CInt = 74
    /// Datagrams handed to the event loop at once.
    static let batchSize = 64

    let descriptor: CInt
    /// The bound address (the port the kernel chose for port 0).
    package let local: SCTPSocketAddress
    private let isStopped = Atomic<Bool>(false)
    private let pool: NIOThreadPool

    package enum OpenError: Error, CustomStringConvertible {
        case socket(String, errno: CInt)

        package var description: String {
            switch self {
            case .socket(let step, let code): "\(step): \(String(cString: strerror(code)))"
            }
        }

        /// The process lacks CAP_NET_RAW or CAP_NET_ADMIN, which IP_TRANSPARENT takes.
        package var isPermissionDenied: Bool {
            if case .socket(_, let code) = self { return code == EPERM }
            return false
        }
    }

    /// Binds `address` with IP_TRANSPARENT and IP_RECVORIGDSTADDR; throws `OpenError` (EPERM without the
    /// capability).
    package init(address: SCTPSocketAddress, receiveBufferSize: CInt = 4 << 20) throws(OpenError) {
        let isIPv6: Bool
        if case .v6 = address.ip { isIPv6 = true } else { isIPv6 = false }
        let fd = socket(isIPv6 ? AF_INET6 : AF_INET, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket("socket", errno: errno) }
        func option(_ level: CInt, _ name: CInt, _ step: String) throws(OpenError) {
            var one: CInt = 1
            guard setsockopt(fd, level, name, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                let code = errno
                close(fd)
                throw .socket(step, errno: code)
            }
        }
        let solIP = CInt(TransparentDestination.solIP)
        let solIPv6 = CInt(TransparentDestination.solIPv6)
        try option(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR")
        if isIPv6 {
            try option(solIPv6, TransparentDestination.ipv6Transparent, "IPV6_TRANSPARENT")
            try option(solIPv6, Self.ipv6RecvOriginalDestination, "IPV6_RECVORIGDSTADDR")
            // A dual-stack socket also takes IPv4 datagrams: their control message is the IPv4 one.
            var one: CInt = 1
            _ = setsockopt(fd, solIP, Self.ipRecvOriginalDestination, &one, socklen_t(MemoryLayout<CInt>.size))
            _ = setsockopt(fd, solIP, TransparentDestination.ipTransparent, &one, socklen_t(MemoryLayout<CInt>.size))
        } else {
            try option(solIP, TransparentDestination.ipTransparent, "IP_TRANSPARENT")
            try option(solIP, Self.ipRecvOriginalDestination, "IP_RECVORIGDSTADDR")
        }
        var size = receiveBufferSize
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        let bound = SocketAddress(address).withSockAddr { pointer, length in Glibc.bind(fd, pointer, socklen_t(length))
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw .socket("bind \(address)", errno: code)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let local = withUnsafeBytes(of: &storage) { raw in
            named == 0
                ? TransparentDestination.parse(sockaddr: UnsafeRawBufferPointer(rebasing: raw[..<Int(length)])) : nil
        }
        self.descriptor = fd
        self.local = local ?? address
        self.pool = NIOThreadPool(numberOfThreads: 1)
    }

    /// Starts the reading thread: every batch of datagrams goes to `onBatch` on `eventLoop`.
    package func start(on eventLoop: any EventLoop, onBatch: @escaping @Sendable ([TransparentDatagram]) -> Void) {
        pool.start()
        pool.submit { [self] state in
            guard state == .active else { return }
            readLoop(eventLoop: eventLoop, onBatch: onBatch)
        }
    }

    /// Stops the thread (within 200 ms) and closes the socket.
    package func stop() {
        guard !isStopped.exchange(true, ordering: .relaxed) else { return }
        pool.shutdownGracefully { _ in close(self.descriptor) }
    }

    private func readLoop(eventLoop: any EventLoop, onBatch: @escaping @Sendable ([TransparentDatagram]) -> Void) {
        let capacity = 65_536
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        let control = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)
        defer {
            data.deallocate()
            control.deallocate()
        }
        var name = sockaddr_storage()
        while !isStopped.load(ordering: .relaxed) {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            var batch: [TransparentDatagram] = []
            while batch.count < Self.batchSize {
                var vector = iovec(iov_base: data.baseAddress, iov_len: capacity)
                let received = withUnsafeMutablePointer(to: &name) { namePointer in
                    withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_name = UnsafeMutableRawPointer(namePointer)
                        message.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = control.baseAddress
                        message.msg_controllen = control.count
                        let count = recvmsg(descriptor, &message, CInt(MSG_DONTWAIT))
                        return (count, Int(message.msg_namelen), Int(message.msg_controllen))
                    }
                }
                guard received.0 >= 0 else { break }
                let source = withUnsafeBytes(of: &name) {
                    TransparentDestination.parse(
                        sockaddr: UnsafeRawBufferPointer(rebasing: $0[..<min($0.count, received.1)]))
                }
                let destination = Self.originalDestination(
                    control: UnsafeRawBufferPointer(rebasing: control[..<min(control.count, received.2)]))
                guard let source, let destination else { continue }
                let payload = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: data[..<received.0]))
                batch.append(TransparentDatagram(source: source, destination: destination, payload: payload))
            }
            if !batch.isEmpty {
                let ready = batch
                eventLoop.execute { onBatch(ready) }
            }
        }
    }

    /// The original destination in a `recvmsg` control buffer (`IP_ORIGDSTADDR` or `IPV6_ORIGDSTADDR`), or nil.
    /// Walks the control messages as CMSG_FIRSTHDR/CMSG_NXTHDR do on Linux: a header of `size_t` length, `int`
    /// level and `int` type, data after the header aligned to `size_t`, the next message at the length aligned.
    static func originalDestination(control: UnsafeRawBufferPointer) -> SCTPSocketAddress? {
        let word = MemoryLayout<Int>.size
        func aligned(_ n: Int) -> Int { (n + word - 1) & ~(word - 1) }
        let header = aligned(word + 2 * MemoryLayout<CInt>.size)
        var offset = 0
        while offset + header <= control.count {
            let length = control.loadUnaligned(fromByteOffset: offset, as: Int.self)
            let level = control.loadUnaligned(fromByteOffset: offset + word, as: CInt.self)
            let type = control.loadUnaligned(fromByteOffset: offset + word + MemoryLayout<CInt>.size, as: CInt.self)
            guard length >= header, offset + length <= control.count else { return nil }
            let isV4 = level == CInt(TransparentDestination.solIP) && type == ipRecvOriginalDestination
            let isV6 = level == CInt(TransparentDestination.solIPv6) && type == ipv6RecvOriginalDestination
            if isV4 || isV6 {
                return TransparentDestination.parse(
                    sockaddr: UnsafeRawBufferPointer(rebasing: control[(offset + header)..<(offset + length)]))
            }
            offset += aligned(length)
        }
        return nil
    }
}
