import AggConfig
import Foundation
import Proxy

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A daemon binary (`aggserver`, `aggclient`) run as a child process with an environment of the test's choosing,
/// optionally with a socket placed at descriptor 3 as systemd's socket activation does; its output goes to files in
/// a temporary directory. `terminate()` (and deinit) kill it and remove the directory, so a failing test leaves
/// nothing behind.
final class DaemonProcess {
    let pid: pid_t
    let directory: String
    private(set) var exitStatus: Int32?

    /// The directory holding the binaries built next to the test bundle.
    static var binaries: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// Starts `binary` (a name in `binaries`, or an absolute path) with `arguments` and exactly `environment`.
    /// `socketAtFD3` is duplicated onto descriptor 3 of the child.
    init(
        _ binary: String, arguments: [String], environment: [String: String], directory: String,
        socketAtFD3: CInt? = nil
    ) throws {
        let path = binary.hasPrefix("/") ? binary : Self.binaries.appendingPathComponent(binary).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw DaemonTestError("build \(binary) first: \(path) is missing")
        }
        self.directory = directory
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory + "/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, directory + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let socketAtFD3 {
            // dup2 onto 3 clears close-on-exec on the copy; the original keeps it and stays in the parent.
            posix_spawn_file_actions_adddup2(&actions, socketAtFD3, 3)
        }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard result == 0 else { throw DaemonTestError("posix_spawn \(path): \(String(cString: strerror(result)))") }
        self.pid = pid
    }

    /// Sends `signal` to the child.
    func send(_ signal: Int32) {
        kill(pid, signal)
    }

    /// The exit code once the child exits within `seconds` (negative: killed by that signal); nil on timeout.
    func waitForExit(within seconds: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7f
                exitStatus = signal == 0 ? (status >> 8) & 0xff : -signal
                return exitStatus
            }
            usleep(20_000)
        }
        return nil
    }

    /// What the child wrote to standard output so far.
    var standardOutput: String { (try? String(contentsOfFile: directory + "/stdout", encoding: .utf8)) ?? "" }
    /// What the child wrote to standard error so far.
    var standardError: String { (try? String(contentsOfFile: directory + "/stderr", encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for a line of standard output containing `text`.
    func waitForOutput(containing text: String, within seconds: Double) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if let line = standardOutput.split(separator: "\n").first(where: { $0.contains(text) }) {
                return String(line)
            }
            usleep(20_000)
        } while Date() < deadline
        return nil
    }

    /// Kills the child if it still runs and reaps it.
    func terminate() {
        guard exitStatus == nil else { return }
        kill(pid, SIGKILL)
        _ = waitForExit(within: 5)
    }

    deinit { terminate() }
}

/// A fresh temporary directory removed with everything in it when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/agg-daemon-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw DaemonTestError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// Writes a fresh client key (`NAME HEX`, mode 600) and returns its path.
    func makeKeyFile(name: String = "daemon-test") throws -> String {
        let keyPath = path + "/keys"
        try ServiceSetup.writePrivateFile(ServiceSetup.makeKeyLine(name: name), path: keyPath)
        return keyPath
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Collects the notifications a daemon sends to a `FakeNotifySocket`.
final class NotificationLog {
    let socket: FakeNotifySocket
    private(set) var received: [String] = []

    init(socket: FakeNotifySocket) { self.socket = socket }

    /// Receives until a datagram holding the line `line` arrives (true) or `seconds` pass (false).
    func waitFor(_ line: String, within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard let message = socket.receive() else { continue }
            received.append(message)
            if message.split(separator: "\n").contains(where: { $0 == line }) { return true }
        }
        return false
    }
}

/// A listening TCP socket on 127.0.0.1 with a kernel-chosen port, as a systemd `.socket` unit would create it.
func makeListeningSocket() throws -> (descriptor: CInt, port: UInt16) {
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw DaemonTestError("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0, listen(fd, 16) == 0 else {
        close(fd)
        throw DaemonTestError("bind/listen: \(String(cString: strerror(errno)))")
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// Connects to 127.0.0.1:`port`, sends `bytes` and returns up to `count` bytes of the answer (2 s timeout).
func exchange(port: UInt16, sending bytes: [UInt8], receiving count: Int) throws -> [UInt8] {
    let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw DaemonTestError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw DaemonTestError("connect: \(String(cString: strerror(errno)))") }
    guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else {
        throw DaemonTestError("send: \(String(cString: strerror(errno)))")
    }
    var answer = [UInt8](repeating: 0, count: count)
    let received = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, CInt(MSG_WAITALL)) }
    return Array(answer.prefix(max(received, 0)))
}

struct DaemonTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
