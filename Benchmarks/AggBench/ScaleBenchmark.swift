import AggConfig
import AggIngress
import AggProtocol
import Logging
import NIOCore
import NIOPosix
import Proxy
import SCTPEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the server costs as the number of clients grows (issue 18): a real aggserver process (release build) and,
/// in this process, 1, 16, 64, 256 ... aggclient services on one or two event loops, each with its own key, its own
/// association over loopback UDP (encrypted, as deployed) and one download through it from a local TCP source.
/// Every download's length and SHA-256 are checked against what the source sent.
///
/// Per stage (a fresh server for each client count, so one stage's freed memory does not hide the next's): the
/// server's resident memory before any client, with every association up and idle, and at its peak during the
/// downloads; its CPU seconds (/proc/PID/stat) and the datagrams its driver handled (its metrics) over the downloads.
enum ScaleBenchmark: Benchmark {
    static let name = "scale"
    static let summary = "server cost by client count: goodput, CPU per GiB, per datagram, memory per association"

    struct Settings {
        var server: String
        var clientCounts: [Int]
        /// `--threads` values for aggserver; nil runs it without the flag (a build that does not have it).
        var serverThreads: [Int?]
        var totalBytes: Int
        var benchThreads: Int
        var settleSeconds: Double
        /// More aggserver arguments, as given (an experiment: a limit, a congestion controller).
        var serverArguments: [String]
        /// The clients' stream credit (`limits.stream-credit`): how much of a download the server may hold.
        var streamCredit: Int?
        /// The server's CPU limit, as a share of one CPU per server thread (a cgroup); nil: no limit.
        var serverCPUShare: Double?

        /// The server's limit in CPUs with `threads` threads.
        func serverCPULimit(threads: Int?) -> Double? { serverCPUShare.map { $0 * Double(threads ?? 1) } }
    }

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(
            arguments,
            known: [
                "server", "clients", "server-threads", "mib", "bench-threads", "settle", "server-args", "stream-credit",
                "server-cpu-share",
            ])
        if options.wantsHelp {
            print(
                """
                usage: agg-bench scale [--server PATH] [--clients 1,16,64,256] [--server-threads 1,2] [--mib N]
                                       [--bench-threads N] [--settle SECONDS] [--server-args "ARGS"]
                                       [--stream-credit KIB] [--server-cpu-share CPUS]
                  --server          the aggserver binary (default: $AGG_SERVER, else aggserver beside agg-bench)
                  --clients         client counts, one stage each with a fresh server (default 1,16,64,256)
                  --server-threads  run every stage once per value with aggserver --threads N (default: no flag)
                  --mib             MiB downloaded per stage, split evenly over the clients (default 1024; 0:
                                    no downloads, idle memory only)
                  --bench-threads   event loops of this process for the clients and the source (default 2)
                  --settle          seconds the associations stay idle before memory is read (default 3)
                  --server-args     more aggserver arguments, split at spaces (e.g. "--congestion-control reno")
                  --stream-credit   the clients' credit per stream in KiB (default theirs: 4096)
                  --server-cpu-share  limit the server to CPUS of one CPU per server thread (a cgroup; e.g. 0.25:
                                    0.25 CPU with --threads 1, 0.5 with --threads 2), so that the server, not
                                    the clients in this process, is the bottleneck on a machine with few cores
                """
            )
            return
        }
        let counts = try list(options.string("clients") ?? "1,16,64,256", flag: "clients")
        var threads: [Int]?
        if let text = options.string("server-threads") { threads = try list(text, flag: "server-threads") }
        let share = try options.double("server-cpu-share")
        if let share, share > 64 { throw UsageError(description: "--server-cpu-share takes at most 64 CPUs") }
        let settings = Settings(
            server: options.string("server") ?? defaultServer(), clientCounts: counts,
            serverThreads: threads ?? [nil], totalBytes: try mebibytes(options.string("mib")),
            benchThreads: try options.int("bench-threads", default: 2),
            settleSeconds: try options.double("settle", default: 3),
            serverArguments: (options.string("server-args") ?? "").split(separator: " ").map(String.init),
            streamCredit: try options.int("stream-credit").map { $0 * 1024 }, serverCPUShare: share)
        do {
            try measure(settings)
        } catch let error as UsageError {
            throw error
        } catch {
            throw UsageError(description: "\(error)")
        }
    }

    /// `--mib`: 0 (idle associations only) or a positive count; 1024 when not given.
    private static func mebibytes(_ text: String?) throws(UsageError) -> Int {
        guard let text else { return 1024 * 1024 * 1024 }
        guard let value = Int(text), value >= 0 else {
            throw UsageError(description: "--mib needs 0 or a positive integer, got '\(text)'")
        }
        return value * 1024 * 1024
    }

    private static func list(_ text: String, flag: String) throws(UsageError) -> [Int] {
        let values = text.split(separator: ",").map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw UsageError(description: "--\(flag) needs positive integers separated by commas, got '\(text)'")
        }
        return values.map { $0! }
    }

    /// $AGG_SERVER, else the aggserver built beside this binary.
    private static func defaultServer() -> String {
        if let path = getenv("AGG_SERVER") { return String(cString: path) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "aggserver" }
        let exe = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            + "/aggserver"
    }

    // MARK: - The run

    private static func measure(_ settings: Settings) throws {
        raiseFileLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.benchThreads)
        defer { try? group.syncShutdownGracefully() }
        let digests = SentDigests()
        let source = try ByteSource.bind(on: group.next(), digests: digests)
        defer { try? source.close().wait() }
        let sourcePort = source.localAddress!.port!

        let load = (try? ServerProcess.read("/proc/loadavg"))?.split(separator: " ").prefix(3).joined(separator: " ")
        print(
            "scale: aggserver \(settings.server) \(settings.serverArguments.joined(separator: " ")); "
                + "clients in this process on \(settings.benchThreads) event loop(s); "
                + "\(settings.totalBytes >> 20) MiB per stage; \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, "
                + "load average \(load ?? "?")"
                + (settings.serverCPUShare.map { "; server limited to \($0) CPU per server thread" } ?? ""))
        print(Row.header)
        var rows: [Row] = []
        for threads in settings.serverThreads {
            for count in settings.clientCounts {
                let row = try stage(
                    clients: count, serverThreads: threads, settings: settings, group: group, sourcePort: sourcePort,
                    digests: digests)
                print(row.line)
                rows.append(row)
            }
        }
        printVerdicts(rows)
    }

    /// One client count against a fresh server.
    private static func stage(
        clients count: Int, serverThreads: Int?, settings: Settings, group: MultiThreadedEventLoopGroup,
        sourcePort: Int, digests: SentDigests
    ) throws -> Row {
        var template = Array("/tmp/agg-scale-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw DownloadFailure(description: "mkdtemp failed") }
        let directory = String(cString: made)
        defer { _ = system("rm -rf '\(directory)'") }

        // One key per client.
        var generator = SystemRandomNumberGenerator()
        let keys = (0..<count).map { index in
            PreSharedKey(
                name: "scale-\(index)",
                key: (0..<PreSharedKey.keyLength).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        let keyLines = keys.map { key in
            "\(key.name) " + key.key.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "\n"
        }
        try ServiceSetup.writePrivateFile(keyLines.joined(), path: directory + "/keys")
        try ServiceSetup.writePrivateFile("", path: directory + "/aggserver.toml")

        let udpPort = ServerProcess.freePort(type: Int32(SOCK_DGRAM.rawValue))
        let metricsPort = ServerProcess.freePort(type: Int32(SOCK_STREAM.rawValue))
        var arguments = [
            "--config", directory + "/aggserver.toml", "--listen", "127.0.0.1:\(udpPort)", "--psk-file",
            directory + "/keys", "--egress-allow", "127.0.0.0/8", "--metrics", "127.0.0.1:\(metricsPort)",
        ]
        if let serverThreads { arguments += ["--threads", String(serverThreads)] }
        arguments += settings.serverArguments
        let server = try ServerProcess(
            binary: settings.server, arguments: arguments, metricsPort: metricsPort, directory: directory)
        var limit: CPULimit?
        if let cpus = settings.serverCPULimit(threads: serverThreads) {
            let cgroup = try CPULimit(cpus: cpus, name: "agg-bench-scale.\(getpid()).\(server.pid)")
            limit = cgroup
            try cgroup.add(server.pid)
            if count == settings.clientCounts.first { print("server limit: \(cpus) CPU, \(cgroup.description)") }
        }
        defer {
            server.stop()
            limit?.remove()
        }
        try server.waitUntilServing(within: 15)
        usleep(500_000)
        let baseline = try server.memory()

        // Every client up, then idle.
        var quiet = Logger(label: "agg-bench")
        quiet.logLevel = .critical
        let address = SCTPSocketAddress(ip: SCTPIPAddress(v4: 127, 0, 0, 1), port: UInt16(udpPort))
        var services: [AggClientService] = []
        var socksPorts: [Int] = []
        defer {
            let stops = services.map { $0.stop() }
            for stop in stops { try? stop.wait() }
        }
        let setupStart = ServerProcess.now()
        for key in keys {
            var configuration = AggClientService.Configuration(
                servers: [address], paths: [SCTPIPAddress(v4: 127, 0, 0, 1)], key: key)
            if let credit = settings.streamCredit { configuration.limits.streamCredit = UInt32(credit) }
            let service = try AggClientService.start(configuration: configuration, on: group.next(), logger: quiet)
                .wait()
            services.append(service)
            socksPorts.append(
                try service.listen(host: "127.0.0.1", port: 0, protocols: .socks5).wait().localAddress!.port!)
        }
        for service in services { try service.whenReady().wait() }
        let setupSeconds = ServerProcess.now() - setupStart
        usleep(UInt32(settings.settleSeconds * 1e6))
        let idle = try server.memory()

        if settings.totalBytes == 0 {
            return Row(
                clients: count, serverThreads: serverThreads, serverThreadCount: server.threads(), bytes: 0,
                intact: count, setupSeconds: setupSeconds, seconds: .nan, wallSeconds: .nan, serverCPU: .nan,
                serverSystem: .nan,
                benchCPU: .nan, datagrams: .nan, baseline: baseline, idle: idle, peak: idle)
        }

        // The downloads, all at once.
        let length = max(256 * 1024, settings.totalBytes / count)
        digests.removeAll()
        let datagramsBefore = try server.datagrams()
        let sampler = PeakSampler(server: server)
        let cpuBefore = try server.cpuTime()
        let ownBefore = ServerProcess.ownCPUSeconds()
        let start = NIODeadline.now()
        let startSeconds = ServerProcess.now()
        let futures = services.enumerated().map { index, service in
            VerifiedDownload.start(
                socksPort: socksPorts[index], sourcePort: sourcePort, length: length, id: UInt64(index),
                on: service.eventLoop)
        }
        var results: [DownloadResult] = []
        for future in futures { results.append(try future.wait()) }
        let wallSeconds = ServerProcess.now() - startSeconds
        let cpuAfter = try server.cpuTime()
        let cpuSeconds = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system
        let systemSeconds = cpuAfter.system - cpuBefore.system
        let ownSeconds = ServerProcess.ownCPUSeconds() - ownBefore
        let peak = sampler.stop()
        // The metrics are refreshed from a sample once a second.
        usleep(1_200_000)
        let datagramsAfter = try server.datagrams()

        var intact = 0
        for (index, result) in results.enumerated() {
            if result.bytes == length, let sent = digests.digest(for: UInt64(index)), sent == result.digest {
                intact += 1
            }
        }
        let last = results.map(\.finished).max() ?? start
        let seconds = max(Double((last - start).nanoseconds) / 1e9, 1e-9)
        let bytes = length * count
        return Row(
            clients: count, serverThreads: serverThreads, serverThreadCount: server.threads(), bytes: bytes,
            intact: intact, setupSeconds: setupSeconds, seconds: seconds, wallSeconds: wallSeconds,
            serverCPU: cpuSeconds, serverSystem: systemSeconds, benchCPU: ownSeconds,
            datagrams: (datagramsAfter.sent - datagramsBefore.sent)
                + (datagramsAfter.received - datagramsBefore.received),
            baseline: baseline, idle: idle, peak: peak ?? idle,
            cpuLimit: settings.serverCPULimit(threads: serverThreads))
    }

    // MARK: - Report

    /// One stage's figures.
    struct Row {
        var clients: Int
        var serverThreads: Int?
        var serverThreadCount: Int
        var bytes: Int
        var intact: Int
        var setupSeconds: Double
        var seconds: Double
        var wallSeconds: Double
        var serverCPU: Double
        /// The kernel's part of `serverCPU` (system time: socket calls, copies, page faults).
        var serverSystem: Double
        var benchCPU: Double
        var datagrams: Double
        var baseline: ServerProcess.Memory
        var idle: ServerProcess.Memory
        var peak: ServerProcess.Memory
        /// The server's CPU limit in CPUs (`--server-cpu-share` times its threads), if any.
        var cpuLimit: Double? = nil

        /// The server's CPU time over the downloads' wall time, in CPUs.
        var busyCPUs: Double { serverCPU / wallSeconds }
        var goodputMbits: Double { Double(bytes) * 8 / seconds / 1e6 }
        var cpuPerGiB: Double { serverCPU / (Double(bytes) / 1_073_741_824) }
        var microsecondsPerDatagram: Double { datagrams > 0 ? serverCPU / datagrams * 1e6 : .nan }
        var idleKiB: Double { Double(idle.rss - baseline.rss) / Double(clients) }
        var idleAnonKiB: Double { Double(idle.anonymous - baseline.anonymous) / Double(clients) }
        var activeKiB: Double { Double(peak.rss - baseline.rss) / Double(clients) }

        static let header =
            "clients thr   MiB intact setup-s   Mbit/s srv-cpu-s sys srv-busy cpu-s/GiB   µs/dgram  idle-KiB/assoc "
            + "(anon)  active-KiB/assoc  rss-MiB base/idle/peak bench-cpu-s"

        var line: String {
            let threads = serverThreads.map(String.init) ?? "-"
            return [
                String(clients).leftPadded(to: 7), threads.leftPadded(to: 3), String(bytes >> 20).leftPadded(to: 5),
                "\(intact)/\(clients)".leftPadded(to: 6), format(setupSeconds, 7, 2), format(goodputMbits, 8, 0),
                format(serverCPU, 9, 2), format(serverSystem / serverCPU * 100, 2, 0) + "%",
                format(serverCPU / wallSeconds * 100, 7, 0) + "%", format(cpuPerGiB, 9, 2),
                format(microsecondsPerDatagram, 10, 2), format(idleKiB, 15, 1), format(idleAnonKiB, 6, 1),
                format(activeKiB, 17, 1),
                "\(format(Double(baseline.rss) / 1024, 8, 1))/\(format(Double(idle.rss) / 1024, 0, 1))/"
                    + format(Double(peak.rss) / 1024, 0, 1), format(benchCPU, 11, 2),
            ].joined(separator: " ")
        }
    }

    private static func format(_ value: Double, _ width: Int, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value).leftPadded(to: width)
    }

    /// The issue's targets, against this run's own figures.
    private static func printVerdicts(_ rows: [Row]) {
        print("")
        for threads in Set(rows.map { $0.serverThreads ?? 0 }).sorted() {
            let run = rows.filter { ($0.serverThreads ?? 0) == threads }
            let label = threads == 0 ? "" : " (--threads \(threads))"
            if let one = run.first(where: { $0.clients == 1 }), let most = run.max(by: { $0.clients < $1.clients }),
                most.clients > 1, most.bytes > 0
            {
                let ratio = most.cpuPerGiB / one.cpuPerGiB
                print(
                    String(
                        format: "CPU per GiB at %d clients is %.2fx that at 1 client%@ (target <= 1.20): %@",
                        most.clients, ratio, label, ratio <= 1.2 ? "met" : "NOT met"))
            }
            let ordered = run.sorted { $0.clients < $1.clients }
            for (previous, next) in zip(ordered, ordered.dropFirst()) {
                let marginal = Double(next.idle.rss - previous.idle.rss) / Double(next.clients - previous.clients)
                let anonymous =
                    Double(next.idle.anonymous - previous.idle.anonymous) / Double(next.clients - previous.clients)
                print(
                    String(
                        format: "idle association, marginal from %d to %d clients: %.1f KiB RSS (%.1f KiB anonymous)%@",
                        previous.clients, next.clients, marginal, anonymous, label))
            }
            if let most = run.max(by: { $0.clients < $1.clients }) {
                print(
                    String(
                        format: "idle association at %d clients: %.1f KiB of server RSS (%.1f KiB anonymous)%@ "
                            + "(target <= 64): %@", most.clients, most.idleKiB, most.idleAnonKiB, label,
                        most.idleKiB <= 64 ? "met" : "NOT met"))
            }
        }
        let byThreads = Dictionary(grouping: rows, by: { $0.serverThreads ?? 0 })
        if let one = byThreads[1], let two = byThreads[2] {
            for row in two {
                guard let base = one.first(where: { $0.clients == row.clients }), base.bytes > 0 else { continue }
                let ratio = row.goodputMbits / base.goodputMbits
                guard let limit = base.cpuLimit, let limitTwo = row.cpuLimit else {
                    print(
                        String(
                            format:
                                "%d clients: 2 server threads give %.2fx the goodput of 1 (server busy %.0f%% of one "
                                + "core with 1 thread; target >= 1.70 when the server is the bottleneck)", row.clients,
                            ratio, base.busyCPUs * 100))
                    continue
                }
                // The server is the bottleneck when it uses (nearly) all the CPU it may.
                let bound = base.busyCPUs >= 0.9 * limit
                print(
                    String(
                        format: "%d clients: 2 server threads give %.2fx the goodput of 1 (server busy %.0f%% of its "
                            + "%.2f CPU with 1 thread, %.0f%% of its %.2f with 2; target >= 1.70 when the server is "
                            + "the bottleneck): %@", row.clients, ratio, base.busyCPUs / limit * 100, limit,
                        row.busyCPUs / limitTwo * 100, limitTwo,
                        bound ? (ratio >= 1.7 ? "met" : "NOT met") : "not server-bound at 1 thread, no verdict"))
            }
        }
        let broken = rows.filter { $0.intact != $0.clients }
        if !broken.isEmpty {
            print(
                "DOWNLOADS NOT INTACT: "
                    + broken.map { "\($0.clients) clients: \($0.intact) intact" }.joined(separator: ", "))
        }
    }

    /// Raises the soft limit on open files to the hard one: every client holds a UDP socket, a listener and two TCP
    /// connections during its download.
    private static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// Samples the server's memory every 100 ms on a thread of its own and keeps the peak.
final class PeakSampler: Sendable {
    private struct State {
        var peak: ServerProcess.Memory?
        var isRunning = true
    }

    private let state = Mutex(State())
    private let done = Mutex(false)

    init(server: ServerProcess) {
        let pid = server.pid
        let unmanaged = Unmanaged.passRetained(Box { [self] in loop(pid: pid) })
        var thread = pthread_t()
        pthread_create(
            &thread, nil,
            { argument in
                Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
                return nil
            }, unmanaged.toOpaque())
        pthread_detach(thread)
    }

    private func loop(pid: pid_t) {
        while state.withLock({ $0.isRunning }) {
            if let memory = try? ServerProcess.memory(of: pid) {
                state.withLock { state in
                    if memory.rss > state.peak?.rss ?? 0 { state.peak = memory }
                }
            }
            usleep(100_000)
        }
        done.withLock { $0 = true }
    }

    /// Stops sampling (waits for the thread's last sample); the peak seen.
    func stop() -> ServerProcess.Memory? {
        state.withLock { $0.isRunning = false }
        while !done.withLock({ $0 }) { usleep(10_000) }
        return state.withLock { $0.peak }
    }

    /// The thread's body, passed through pthread_create's one pointer.
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
}
