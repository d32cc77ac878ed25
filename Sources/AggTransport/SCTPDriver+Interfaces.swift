import NIOCore
import NIOPosix
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Channels bound to an interface as well as to an address (SO_BINDTODEVICE), and channels opened and retired
/// while the driver runs, when an interface's address changes.
extension SCTPDriver {
    /// An interface the driver could not bind a channel to.
    public struct InterfaceBindingError: Error, CustomStringConvertible {
        public var interface: String
        public var reason: String

        public var description: String { "cannot bind a UDP socket to interface \(interface): \(reason)" }
    }

    /// IFNAMSIZ bytes, the size of the name SO_BINDTODEVICE takes.
    private typealias InterfaceName = (
        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
    )

    /// Sets SO_BINDTODEVICE on a channel that is not bound yet: its datagrams then leave by `interface` whatever
    /// the routing table says (the kernel looks routes up with that interface as the output interface), and it
    /// receives only what arrives on that interface. Nothing happens when `interface` is nil. Since Linux 5.7 an
    /// unprivileged process may do this once per socket; older kernels need CAP_NET_RAW.
    static func bindToInterface(_ channel: any Channel, _ interface: String?) -> EventLoopFuture<Void> {
        guard let interface else { return channel.eventLoop.makeSucceededVoidFuture() }
        guard InterfaceAddresses.isValidName(interface) else {
            return channel.eventLoop.makeFailedFuture(
                InterfaceBindingError(interface: interface, reason: "not a valid interface name"))
        }
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(
                InterfaceBindingError(interface: interface, reason: "the channel has no socket options"))
        }
        var name: InterfaceName = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &name) { buffer in
            for (i, byte) in interface.utf8.enumerated() { buffer[i] = byte }
        }
        return provider.unsafeSetSocketOption(
            level: .socket, name: NIOBSDSocket.Option(rawValue: CInt(SO_BINDTODEVICE)), value: name
        ).flatMapErrorThrowing { error in
            throw InterfaceBindingError(interface: interface, reason: "\(error)")
        }
    }

    /// Binds one more UDP channel, to `address` (port 0: an ephemeral one) and `interface` if given, and returns
    /// the address it is bound to. The engine may then send from it (`addLocalAddress`).
    package func openLocalAddress(
        _ address: SCTPSocketAddress, interface: String?
    ) -> EventLoopFuture<SCTPSocketAddress> {
        eventLoop.preconditionInEventLoop()
        return openSocket(address, interface: interface).map { socket in
            self.sockets.append(socket)
            return socket.bound
        }
    }

    /// Closes the channel bound to `bound` for good (its address is gone from the host): it is not bound again,
    /// even if it closed under the driver already and is waiting to be bound again.
    package func retireSocket(bound: SCTPSocketAddress) {
        eventLoop.preconditionInEventLoop()
        for index in sockets.indices where sockets[index].bound == bound && !sockets[index].isRetired {
            sockets[index].isRetired = true
            if sockets[index].isOpen {
                sockets[index].isOpen = false
                sockets[index].channel.close(promise: nil)
            }
        }
    }
}
