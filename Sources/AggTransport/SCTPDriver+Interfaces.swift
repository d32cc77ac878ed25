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
