#if canImport(Glibc)
    import Glibc
#endif

/// A cgroup that caps the CPU time of the processes moved into it: `cpus` of one CPU, over all their threads
/// (cgroup v2's `cpu.max`, else cgroup v1's CFS quota). `agg-bench scale --server-cpu-share` puts aggserver in one,
/// so that the server and not the clients in this process is the bottleneck on a machine with few cores: a server
/// with N threads gets N times the share, as N slower cores would give it.
///
/// The period is 50 ms: Linux hands out CFS bandwidth to each CPU in slices of 5 ms
/// (`sched_cfs_bandwidth_slice_us`), so a quota of a few milliseconds per period would let one thread take all of it
/// and the second thread would find none.
final class CPULimit {
    static let periodMicroseconds = 50_000

    let path: String
    let description: String

    /// A fresh cgroup limited to `cpus` CPUs (> 0).
    init(cpus: Double, name: String) throws {
        let quota = max(1_000, Int((cpus * Double(Self.periodMicroseconds)).rounded()))
        let period = Self.periodMicroseconds
        let mounts = (try? ServerProcess.read("/proc/mounts")) ?? ""
        var v2: String?
        var v1: String?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            if fields[2] == "cgroup2", v2 == nil { v2 = String(fields[1]) }
            if fields[2] == "cgroup", v1 == nil, fields[3].split(separator: ",").contains("cpu") {
                v1 = String(fields[1])
            }
        }
        if let v2, let controllers = try? ServerProcess.read(v2 + "/cgroup.controllers"),
            controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("cpu")
        {
            let enabled = (try? ServerProcess.read(v2 + "/cgroup.subtree_control")) ?? ""
            if !enabled.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("cpu") {
                try Self.write("+cpu", to: v2 + "/cgroup.subtree_control")
            }
            path = v2 + "/\(name)"
            try Self.makeDirectory(path)
            try Self.write("\(quota) \(period)", to: path + "/cpu.max")
            description = "cgroup v2 cpu.max \"\(quota) \(period)\""
        } else if let v1 {
            path = v1 + "/\(name)"
            try Self.makeDirectory(path)
            try Self.write(String(period), to: path + "/cpu.cfs_period_us")
            try Self.write(String(quota), to: path + "/cpu.cfs_quota_us")
            description = "cgroup v1 cpu.cfs_quota_us \(quota) per cpu.cfs_period_us \(period)"
        } else {
            throw ServerProcess.Failure(description: "no cgroup hierarchy with the cpu controller is mounted")
        }
    }

    /// Moves a process (all its threads) into the cgroup.
    func add(_ pid: pid_t) throws { try Self.write(String(pid), to: path + "/cgroup.procs") }

    /// Removes the cgroup once its processes have exited.
    func remove() { rmdir(path) }

    private static func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw ServerProcess.Failure(description: "cannot create cgroup \(path): errno \(errno)")
        }
    }

    private static func write(_ text: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY)
        guard descriptor >= 0 else { throw ServerProcess.Failure(description: "cannot open \(path): errno \(errno)") }
        defer { close(descriptor) }
        let written = text.withCString { Glibc.write(descriptor, $0, strlen($0)) }
        guard written >= 0 else { throw ServerProcess.Failure(description: "cannot write \(path): errno \(errno)") }
    }
}
