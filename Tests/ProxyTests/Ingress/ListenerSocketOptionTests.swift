import AggIngress
import AggProtocol
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import Proxy

#if canImport(Glibc)
    import Glibc
#endif

/// The socket options of a connection the proxy listener accepted, read back from the kernel.
@Suite struct ListenerSocketOptionTests {
    /// Records the options of the inbound channel it is handed, then refuses the connection.
    final class OptionProbe: ProxyConnector {
        let seen = Mutex<(noDelay: SocketOptionValue, debug: SocketOptionValue, readsPerWakeUp: UInt)?>(nil)

        func connect(to target: ProxyTarget, initialData: ByteBuffer?, inbound: any Channel) -> EventLoopFuture<Void> {
            let noDelay = inbound.getOption(.tcpOption(.tcp_nodelay))
            let debug = inbound.getOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG)))
            let reads = inbound.getOption(.maxMessagesPerRead)
            return noDelay.and(debug).and(reads).flatMapThrowing { values in
                self.seen.withLock { $0 = (values.0.0, values.0.1, values.1) }
                throw ProxyFailure.generalFailure
            }
        }
    }

    /// `.socketOption(.tcp_nodelay)` is SOL_SOCKET level with TCP_NODELAY's number, 1: SO_DEBUG. As root that set
    /// SO_DEBUG and left Nagle on; as the units' unprivileged user it failed with EACCES and every accepted
    /// connection was closed at once, so aggclient under systemd proxied nothing.
    @Test func acceptedConnectionsHaveNagleOffAndNotSocketDebugging() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let probe = OptionProbe()
        let listener = try ProxyListener(host: "127.0.0.1", port: 0, protocols: .socks, connector: probe)
            .bind(group: group).wait()
        defer { try? listener.close().wait() }
        let port = UInt16(listener.localAddress!.port!)
        // SOCKS5: no authentication, then CONNECT 127.0.0.1:80; the probe refuses it (reply code 1).
        let reply = try exchange(port: port, sending: [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80], receiving: 4)
        #expect(reply == [5, 0, 5, 1], "\(reply)")
        let seen = try #require(probe.seen.withLock { $0 })
        #expect(seen.noDelay != 0, "TCP_NODELAY is off")
        #expect(seen.debug == 0, "SO_DEBUG is on")
        // The relay reads up to 4 times per wake-up (NIO's default, which the listener relies on).
        #expect(seen.readsPerWakeUp == 4)
    }
}
