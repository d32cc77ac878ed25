import NIOCore
import NIOPosix

/// The driver's share of sharding: attaching the steering program to its sockets' SO_REUSEPORT groups.
extension SCTPDriver {
    /// Linux's `struct sock_fprog`: the length and address of a classic BPF program, for setsockopt.
    private struct FilterProgram: @unchecked Sendable {
        var length: UInt16
        var filter: UnsafeRawPointer?
    }

    /// SO_ATTACH_REUSEPORT_CBPF (Linux 4.5).
    static let soAttachReusePortCBPF: CInt = 51

    /// Attaches `program` (`ReusePortSteering`) to the SO_REUSEPORT group of every bound socket: from now on it
    /// chooses which socket of each group, in the order they were bound, receives a datagram. Fails when the
    /// kernel refuses (no SO_REUSEPORT, an old kernel, a seccomp filter). Call on the event loop.
    package func attachSteering(_ program: [ReusePortSteering.Instruction]) throws {
        eventLoop.preconditionInEventLoop()
        for socket in sockets {
            guard let provider = socket.channel as? any SocketOptionProvider else {
                throw ChannelError.operationUnsupported
            }
            // On its own loop the option is set at once (the future is complete when returned) and the kernel copies
            // the program during that call: the pointer outlives it.
            var failure: (any Error)?
            program.withUnsafeBytes { bytes in
                let argument = FilterProgram(length: UInt16(program.count), filter: bytes.baseAddress)
                provider.unsafeSetSocketOption(
                    level: NIOBSDSocket.OptionLevel(rawValue: 1),  // SOL_SOCKET
                    name: NIOBSDSocket.Option(rawValue: Self.soAttachReusePortCBPF), value: argument
                ).assumeIsolated().whenFailure { failure = $0 }
            }
            if let failure { throw failure }
        }
    }
}
