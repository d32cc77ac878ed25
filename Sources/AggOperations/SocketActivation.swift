import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Finds the listening sockets systemd passed to this process (sd_listen_fds(3)) with the names their `.socket` unit
/// gave them (`FileDescriptorName=`), so the daemon adopts them (`ServerBootstrap.withBoundSocket(_:)`) instead of
/// binding its own.
public enum SocketActivation {
    /// The environment variables of the protocol, as read from the process or given by a test.
    public struct Environment: Sendable, Equatable {
        public var listenPID: String?
        public var listenFDs: String?
        public var listenFDNames: String?

        public init(listenPID: String?, listenFDs: String?, listenFDNames: String?) {
            self.listenPID = listenPID
            self.listenFDs = listenFDs
            self.listenFDNames = listenFDNames
        }

        /// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` of this process.
        public static func process() -> Environment {
            func read(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
            return Environment(
                listenPID: read("LISTEN_PID"), listenFDs: read("LISTEN_FDS"),
                listenFDNames: read("LISTEN_FDNAMES"))
        }
    }

    /// One inherited socket.
    public struct ListenFD: Sendable, Equatable {
        public var descriptor: CInt
        /// `FileDescriptorName=` of the socket unit, or `"unknown"` when systemd passed no names (sd_listen_fds(3)).
        public var name: String

        public init(descriptor: CInt, name: String) {
            self.descriptor = descriptor
            self.name = name
        }

        /// Throws unless the descriptor is a stream socket in the listening state, the only kind a `ServerBootstrap`
        /// adopts.
        public func checkIsListeningStreamSocket() throws(SocketActivationError) {
            let result = csystemd_is_listening_stream_socket(descriptor)
            guard result > 0 else {
                throw .notAListeningStreamSocket(
                    name: name, descriptor: descriptor, errno: result < 0 ? -result : 0)
            }
        }
    }

    /// The sockets passed to this process, from its environment, starting at `SD_LISTEN_FDS_START` (3). Like
    /// `sd_listen_fds(1)` it then removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` so child processes do not
    /// mistake them for theirs, and marks each descriptor close-on-exec. Empty when the process was not
    /// socket-activated. Call it once, early in `main`.
    public static func listenFDs() throws(SocketActivationError) -> [ListenFD] {
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        let fds = try parse(Environment.process(), pid: getpid(), fdStart: csystemd_listen_fds_start)
        for fd in fds {
            let flags = fcntl(fd.descriptor, F_GETFD)
            guard flags >= 0 else { throw .badDescriptor(fd.descriptor, errno: errno) }
            if flags & FD_CLOEXEC == 0 {
                guard fcntl(fd.descriptor, F_SETFD, flags | FD_CLOEXEC) == 0 else {
                    throw .badDescriptor(fd.descriptor, errno: errno)
                }
            }
        }
        return fds
    }

    /// The sockets `environment` describes for process `pid`, numbered from `fdStart`; touches no descriptor.
    ///
    /// As sd_listen_fds(3): no `LISTEN_PID`, or one naming another process, means nothing was passed to us; a
    /// malformed count is an error; without `LISTEN_FDNAMES` every socket is named `unknown`, and with it there must be
    /// one colon-separated name per socket.
    public static func parse(_ environment: Environment, pid: pid_t, fdStart: CInt)
        throws(SocketActivationError)
        -> [ListenFD]
    {
        guard let pidText = environment.listenPID else { return [] }
        guard let listenPID = pid_t(pidText), listenPID > 0 else {
            throw .malformed("LISTEN_PID", pidText)
        }
        guard listenPID == pid else { return [] }
        guard let countText = environment.listenFDs else { return [] }
        guard let count = Int(countText), count >= 0, count <= Int(CInt.max - fdStart) else {
            throw .malformed("LISTEN_FDS", countText)
        }
        guard count > 0 else { return [] }

        let names: [String]
        if let namesText = environment.listenFDNames {
            names = namesText.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard names.count == count else {
                throw .nameCountMismatch(descriptors: count, names: names.count)
            }
        } else {
            names = Array(repeating: "unknown", count: count)
        }
        return names.enumerated().map { index, name in
            ListenFD(descriptor: fdStart + CInt(index), name: name)
        }
    }
}

extension Array where Element == SocketActivation.ListenFD {
    /// The first inherited socket named `name` (`FileDescriptorName=`), if systemd passed one.
    public func first(named name: String) -> SocketActivation.ListenFD? {
        first { $0.name == name }
    }
}

/// Why the inherited sockets could not be used.
public enum SocketActivationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A variable of the protocol did not hold what it must.
    case malformed(String, String)
    /// `LISTEN_FDNAMES` did not name every descriptor.
    case nameCountMismatch(descriptors: Int, names: Int)
    /// fcntl(2) failed on an inherited descriptor.
    case badDescriptor(CInt, errno: CInt)
    /// A socket given for a TCP listener is not a listening stream socket.
    case notAListeningStreamSocket(name: String, descriptor: CInt, errno: CInt)

    public var description: String {
        switch self {
        case .malformed(let variable, let value):
            return "socket activation: \(variable)=\"\(value)\" is not a valid number"
        case .nameCountMismatch(let descriptors, let names):
            return "socket activation: LISTEN_FDS=\(descriptors) but LISTEN_FDNAMES holds \(names) names"
        case .badDescriptor(let descriptor, let error):
            return
                "socket activation: descriptor \(descriptor) is unusable: \(String(cString: strerror(error)))"
        case .notAListeningStreamSocket(let name, let descriptor, let error):
            let reason = error == 0 ? "" : ": \(String(cString: strerror(error)))"
            return
                "socket activation: \"\(name)\" (descriptor \(descriptor)) is not a listening stream socket\(reason)"
        }
    }
}
