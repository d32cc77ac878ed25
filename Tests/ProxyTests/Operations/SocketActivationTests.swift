import AggOperations
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension OperationsTests {
    /// sd_listen_fds(3) semantics on an injected environment, and a real listening socket adopted by NIO.
    @Suite struct SocketActivationTests {
        typealias Environment = SocketActivation.Environment

        @Test func namedSocketsStartAtTheGivenDescriptor() throws {
            let environment = Environment(listenPID: "4242", listenFDs: "2", listenFDNames: "socks:http")
            let fds = try SocketActivation.parse(environment, pid: 4242, fdStart: 3)
            #expect(fds == [.init(descriptor: 3, name: "socks"), .init(descriptor: 4, name: "http")])
            #expect(fds.first(named: "http")?.descriptor == 4)
            #expect(fds.first(named: "metrics") == nil)
        }

        @Test func withoutNamesEverySocketIsUnknown() throws {
            let environment = Environment(listenPID: "7", listenFDs: "2", listenFDNames: nil)
            let fds = try SocketActivation.parse(environment, pid: 7, fdStart: 3)
            #expect(fds.map(\.name) == ["unknown", "unknown"])
        }

        @Test func socketsForAnotherProcessOrNoneAtAllAreIgnored() throws {
            #expect(
                try SocketActivation.parse(
                    Environment(listenPID: nil, listenFDs: "2", listenFDNames: nil), pid: 7,
                    fdStart: 3
                ).isEmpty)
            #expect(
                try SocketActivation.parse(
                    Environment(listenPID: "8", listenFDs: "2", listenFDNames: "a:b"), pid: 7,
                    fdStart: 3
                ).isEmpty)
            #expect(
                try SocketActivation.parse(
                    Environment(listenPID: "7", listenFDs: nil, listenFDNames: nil), pid: 7,
                    fdStart: 3
                ).isEmpty)
            #expect(
                try SocketActivation.parse(
                    Environment(listenPID: "7", listenFDs: "0", listenFDNames: nil), pid: 7,
                    fdStart: 3
                ).isEmpty)
        }

        @Test func malformedVariablesAreErrors() {
            #expect(throws: SocketActivationError.malformed("LISTEN_PID", "x")) {
                try SocketActivation.parse(
                    Environment(listenPID: "x", listenFDs: "1", listenFDNames: nil), pid: 7,
                    fdStart: 3)
            }
            #expect(throws: SocketActivationError.malformed("LISTEN_FDS", "-1")) {
                try SocketActivation.parse(
                    Environment(listenPID: "7", listenFDs: "-1", listenFDNames: nil), pid: 7,
                    fdStart: 3)
            }
            #expect(throws: SocketActivationError.malformed("LISTEN_FDS", "two")) {
                try SocketActivation.parse(
                    Environment(listenPID: "7", listenFDs: "two", listenFDNames: nil), pid: 7,
                    fdStart: 3)
            }
        }

        @Test func namesMustCoverEveryDescriptor() {
            #expect(throws: SocketActivationError.nameCountMismatch(descriptors: 2, names: 1)) {
                try SocketActivation.parse(
                    Environment(listenPID: "7", listenFDs: "2", listenFDNames: "socks"), pid: 7,
                    fdStart: 3)
            }
            #expect(throws: SocketActivationError.nameCountMismatch(descriptors: 1, names: 3)) {
                try SocketActivation.parse(
                    Environment(listenPID: "7", listenFDs: "1", listenFDNames: "a::b"), pid: 7,
                    fdStart: 3)
            }
        }

        @Test func aDatagramSocketIsNotAcceptedAsAListener() throws {
            let udp = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
            try #require(udp >= 0)
            defer { close(udp) }
            let fd = SocketActivation.ListenFD(descriptor: udp, name: "socks")
            #expect(
                throws: SocketActivationError.notAListeningStreamSocket(
                    name: "socks", descriptor: udp, errno: 0)
            ) {
                try fd.checkIsListeningStreamSocket()
            }
        }

        @Test func anInheritedListenerIsAdoptedByServerBootstrapAndAccepts() async throws {
            // A listener as systemd would create it, at whatever descriptor the kernel picks; the parsed environment
            // points there instead of at 3, so the test's own descriptors are left alone.
            let listener = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            try #require(listener >= 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            try #require(bound == 0)
            try #require(listen(listener, 16) == 0)

            let environment = Environment(
                listenPID: "\(getpid())", listenFDs: "1", listenFDNames: "socks")
            let fds = try SocketActivation.parse(environment, pid: getpid(), fdStart: listener)
            let socks = try #require(fds.first(named: "socks"))
            try socks.checkIsListeningStreamSocket()

            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let accepted = group.next().makePromise(of: Void.self)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { _ in
                    accepted.succeed(())
                    return group.next().makeSucceededVoidFuture()
                }
                .withBoundSocket(socks.descriptor)
                .get()
            let port = try #require(server.localAddress?.port)
            let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port)
                .get()
            try await accepted.futureResult.get()

            try await client.close()
            try await server.close()  // Closes the adopted descriptor too.
            try await group.shutdownGracefully()
        }
    }
}
