#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A stand-in for systemd's notification socket: an AF_UNIX datagram socket bound in a fresh temporary directory
/// (or in the abstract namespace) that hands back each datagram as text.
final class FakeNotifySocket {
    let descriptor: CInt
    /// The address as `NOTIFY_SOCKET` spells it.
    let address: String
    private let directory: String?

    /// Binds a socket file in a new temporary directory, or the abstract name `@agg-test-<pid>-<n>` when `abstract`.
    init(abstract: Bool = false) throws {
        descriptor = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw FakeSocketError.failed("socket", errno) }
        var pathBytes: [UInt8]
        if abstract {
            address = "@agg-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            directory = nil
            pathBytes = [0] + Array(address.utf8.dropFirst())
        } else {
            var template = Array("/tmp/agg-notify-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw FakeSocketError.failed("mkdtemp", errno) }
            directory = String(cString: made)
            address = directory! + "/notify"
            pathBytes = Array(address.utf8) + [0]
        }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in
            raw.copyBytes(from: pathBytes.prefix(raw.count))
        }
        let length = socklen_t(
            MemoryLayout.offset(of: \sockaddr_un.sun_path)! + pathBytes.count - (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw FakeSocketError.failed("bind", errno) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next datagram, or nil when none arrives within five seconds.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// The next datagram's bytes, or nil when none arrives within five seconds.
    func receiveBytes() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return Array(buffer[0..<count])
    }

    /// A datagram already waiting, without blocking.
    func receiveIfReady() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, CInt(MSG_DONTWAIT))
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    deinit {
        close(descriptor)
        if let directory {
            unlink(address)
            rmdir(directory)
        }
    }
}

struct FakeSocketError: Error {
    let call: String
    let code: CInt
    static func failed(_ call: String, _ code: CInt) -> FakeSocketError {
        FakeSocketError(call: call, code: code)
    }
}
