#if canImport(Glibc)
    import Glibc
#endif

/// An aggserver binary run as a child process for the scale benchmark, with what the benchmark reads about it from
/// outside: CPU time (/proc/PID/stat), memory (/proc/PID/status) and the driver's datagram counters (its Prometheus
/// endpoint). Its output goes to files in the stage's directory; `stop()` (and deinit) end it.
final class ServerProcess {
    let pid: pid_t
    let metricsPort: Int
    let directory: String
    private var hasExited = false

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `binary` with `arguments`; `metricsPort` must be the port its `--metrics` serves.
    init(binary: String, arguments: [String], metricsPort: Int, directory: String) throws {
        guard access(binary, X_OK) == 0 else {
            throw Failure(
                description: "no aggserver at \(binary): build it (swift build -c release --build-path .build-release)"
                    + " or give --server / AGG_SERVER")
        }
        self.metricsPort = metricsPort
        self.directory = directory
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory + "/server.out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, directory + "/server.err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        // No NOTIFY_SOCKET, LISTEN_FDS or proxy variables from the caller's environment: a plain process.
        let environment: [String] = ["PATH=/usr/bin:/bin", "HOME=/tmp"]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, binary, &actions, nil, argv, envp)
        guard result == 0 else {
            throw Failure(description: "posix_spawn \(binary): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    deinit { stop() }

    /// Waits until the metrics endpoint answers (the server is bound and serving), or fails with its stderr.
    func waitUntilServing(within seconds: Double) throws {
        let deadline = Self.now() + seconds
        while Self.now() < deadline {
            if !isRunning {
                throw Failure(description: "aggserver exited at start: \(lastLines(of: directory + "/server.err"))")
            }
            if (try? scrape()) != nil { return }
            usleep(50_000)
        }
        throw Failure(description: "aggserver did not serve its metrics within \(Int(seconds)) s")
    }

    /// False once the child has exited (and been reaped).
    var isRunning: Bool {
        guard !hasExited else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { hasExited = true }
        return !hasExited
    }

    /// SIGTERM, then SIGKILL after two seconds; reaps the child.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Self.now() + 2
        while isRunning, Self.now() < deadline { usleep(20_000) }
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            hasExited = true
        }
    }

    // MARK: - What /proc says

    /// User plus system CPU seconds the process has used (/proc/PID/stat fields 14 and 15), all threads.
    func cpuSeconds() throws -> Double {
        let time = try cpuTime()
        return time.user + time.system
    }

    /// User and system CPU seconds the process has used (/proc/PID/stat fields 14 and 15), all threads.
    func cpuTime() throws -> (user: Double, system: Double) {
        let stat = try Self.read("/proc/\(pid)/stat")
        // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { throw Failure(description: "unreadable /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw Failure(description: "unreadable /proc/\(pid)/stat")
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user / ticks, system / ticks)
    }

    /// The process's memory now, in KiB.
    struct Memory {
        /// Resident set (VmRSS): anonymous memory, file-backed pages touched (the binary) and shared memory.
        var rss: Int
        /// Anonymous resident memory (RssAnon): the heap and the stacks, what associations allocate.
        var anonymous: Int
    }

    func memory() throws -> Memory { try Self.memory(of: pid) }

    static func memory(of pid: pid_t) throws -> Memory {
        let status = try read("/proc/\(pid)/status")
        func field(_ name: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else {
                return nil
            }
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
        }
        guard let rss = field("VmRSS"), let anonymous = field("RssAnon") else {
            throw Failure(description: "no VmRSS/RssAnon in /proc/\(pid)/status")
        }
        return Memory(rss: rss, anonymous: anonymous)
    }

    /// The server's threads (/proc/PID/status Threads).
    func threads() -> Int {
        let status = (try? Self.read("/proc/\(pid)/status")) ?? ""
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Threads:") })
        return line.flatMap { $0.split(separator: "\t").last.flatMap { Int($0) } } ?? 0
    }

    // MARK: - The metrics endpoint

    /// The driver's UDP datagram counters (`agg_udp_datagrams_total`), sent and received. The server refreshes
    /// them from a sample once a second.
    func datagrams() throws -> (sent: Double, received: Double) {
        let text = try scrape()
        var sent: Double?
        var received: Double?
        for line in text.split(separator: "\n") where line.hasPrefix("agg_udp_datagrams_total{") {
            let value = line.split(separator: " ").last.flatMap { Double($0) }
            if line.contains("direction=\"sent\"") { sent = value }
            if line.contains("direction=\"received\"") { received = value }
        }
        guard let sent, let received else { throw Failure(description: "no agg_udp_datagrams_total in /metrics") }
        return (sent, received)
    }

    /// GET /metrics over a blocking socket; the body.
    private func scrape() throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(metricsPort).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect to the metrics port failed") }
        let request = Array("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200") || text.hasPrefix("HTTP/1.0 200") else {
            throw Failure(description: "metrics endpoint answered: \(text.prefix(40))")
        }
        return text
    }

    // MARK: - Helpers

    static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func lastLines(of path: String) -> String {
        let text = (try? Self.read(path)) ?? ""
        return text.split(separator: "\n").suffix(3).joined(separator: " | ")
    }

    /// Monotonic seconds.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// CPU seconds this process (the benchmark: clients, source, downloads) has used.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ value: timeval) -> Double { Double(value.tv_sec) + Double(value.tv_usec) * 1e-6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// A port free on 127.0.0.1 for `type` (SOCK_STREAM or SOCK_DGRAM) at the time of asking.
    static func freePort(type: Int32) -> Int {
        let fd = socket(AF_INET, type, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
