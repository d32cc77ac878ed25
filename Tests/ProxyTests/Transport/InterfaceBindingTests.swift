import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real aggclient in a private network namespace (`unshare -n`, so root) with two interfaces (veth pairs whose
/// other ends only listen), d1 (10.91.1.2) and d2 (10.91.2.2), and one route, the default, by d1. The interfaces' transmit counters show
/// where the client's INITs leave: `--path d2` binds the socket to d2 (SO_BINDTODEVICE), so they leave by d2 although
/// the route says d1; `--path 10.91.2.2` binds the address only, and they follow the route out of d1. When d2's
/// address changes, the client starts again from the new address, still on d2. The namespace, and everything in
/// it, goes away when the script ends. An interface with no address yet when the client starts is waited for.
@Suite(.serialized) struct InterfaceBindingTests {
    /// Arguments: aggclient, aggserver, the --path value, a scratch directory. Prints "d1 BEFORE AFTER" and
    /// "d2 BEFORE AFTER": packets sent in the first 2.5 s and in the 4 s after the address change (when
    /// CHANGE=1), and the client's log.
    static let script = #"""
        set -eu
        client=$1 server=$2 path=$3 dir=$4
        sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip link set lo up
        for d in d1 d2; do
            ip link add "$d" type veth peer name "${d}p"
            ip link set "$d" up
            ip link set "${d}p" up
            # No ARP: the counters then count the client's datagrams only.
            ip neigh replace 198.51.100.1 lladdr 02:00:00:00:00:01 dev "$d" nud permanent
        done
        ip addr add 10.91.1.2/24 dev d1
        [ "${CHANGE:-0}" = empty ] || ip addr add 10.91.2.2/24 dev d2
        ip route add default dev d1
        rm -f "$dir/key"
        "$server" keygen test -o "$dir/key" >/dev/null
        # Packets sent by an interface of this namespace (/proc/net/dev is per namespace; /sys is not remounted).
        tx() { sed -n "s/^ *$1: *//p" /proc/net/dev | awk '{ print $10 }'; }
        a1=$(tx d1) a2=$(tx d2)
        "$client" --server 198.51.100.1:9899 --path "$path" --socks 127.0.0.1:1080 --http off \
            --psk-file "$dir/key" -v >"$dir/client.log" 2>&1 &
        pid=$!
        sleep 2.5
        b1=$(tx d1) b2=$(tx d2)
        if [ "${CHANGE:-0}" != 0 ]; then
            # As an LTE reconnect (or a modem that finishes dialling): the old address goes, a new one comes.
            [ "$CHANGE" = empty ] || ip addr del 10.91.2.2/24 dev d2
            sleep 0.3
            ip addr add 10.91.2.3/24 dev d2
            sleep 4
        fi
        kill -0 "$pid" || echo "aggclient exited early"
        c1=$(tx d1) c2=$(tx d2)
        kill -KILL "$pid"
        wait "$pid" || true
        echo "d1 $((b1 - a1)) $((c1 - b1))"
        echo "d2 $((b2 - a2)) $((c2 - b2))"
        cat "$dir/client.log"
        """#

    struct Run {
        var d1: (before: Int, after: Int)
        var d2: (before: Int, after: Int)
        var log: String
    }

    /// How d2's address changes after the first 2.5 s.
    enum Change: String {
        /// It keeps 10.91.2.2.
        case none = "0"
        /// 10.91.2.2 goes and 10.91.2.3 comes.
        case replaced = "1"
        /// It has none when the client starts, and gets 10.91.2.3.
        case fromNone = "empty"
    }

    static func run(path: String, change: Change) throws -> Run {
        try #require(getuid() == 0, "creating a network namespace needs root")
        let binaries = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let client = binaries.appendingPathComponent("aggclient").path
        let server = binaries.appendingPathComponent("aggserver").path
        try #require(FileManager.default.isExecutableFile(atPath: client), "build aggclient first")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("agg-bind-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["-n", "/bin/sh", "-c", script, "sh", client, server, path, directory.path]
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CHANGE": change.rawValue]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "namespace script failed:\n\(output)")
        func counters(_ name: String) throws -> (Int, Int) {
            let line = try #require(output.split(separator: "\n").first { $0.hasPrefix(name + " ") })
            let fields = line.split(separator: " ").dropFirst().compactMap { Int($0) }
            try #require(fields.count == 2)
            return (fields[0], fields[1])
        }
        return Run(d1: try counters("d1"), d2: try counters("d2"), log: output)
    }

    @Test func pathNamedByInterfaceLeavesByItWhateverTheRoute() throws {
        let run = try Self.run(path: "d2", change: .none)
        #expect(run.d2.before >= 1, "no INIT left by d2:\n\(run.log)")
        #expect(run.d1.before == 0, "packets left by d1, the route's interface:\n\(run.log)")
    }

    @Test func pathNamedByAddressFollowsTheRoute() throws {
        let run = try Self.run(path: "10.91.2.2", change: .none)
        #expect(run.d1.before >= 1, "no INIT left by d1:\n\(run.log)")
        #expect(run.d2.before == 0, "packets left by d2 without SO_BINDTODEVICE:\n\(run.log)")
    }

    /// d2 loses 10.91.2.2 and gets 10.91.2.3 while the client is trying to connect: it notices within a second,
    /// binds the new address (on d2 again) and its next INIT leaves from it.
    @Test func anInterfaceAddressChangeIsFollowed() throws {
        let run = try Self.run(path: "d2", change: .replaced)
        #expect(run.d2.after >= 1, "nothing left by d2 after the change:\n\(run.log)")
        #expect(run.d1.before == 0 && run.d1.after == 0, "packets left by d1:\n\(run.log)")
        let lines = run.log.split(separator: "\n")
        #expect(lines.contains { $0.contains("path address changed") && $0.contains("10.91.2.3") }, "\(run.log)")
        #expect(lines.contains { $0.contains("connecting") && $0.contains("10.91.2.3") }, "\(run.log)")
    }

    /// d2 has no address when the client starts (a modem still dialling at boot): the client starts anyway, says
    /// it waits, sends nothing, and connects from d2 within a second of d2 getting 10.91.2.3.
    @Test func anInterfaceWithoutAnAddressIsWaitedFor() throws {
        let run = try Self.run(path: "d2", change: .fromNone)
        #expect(!run.log.contains("aggclient exited early"), "\(run.log)")
        #expect(run.d2.before == 0 && run.d1.before == 0, "packets left before there was an address:\n\(run.log)")
        #expect(run.d2.after >= 1, "nothing left by d2 once it had an address:\n\(run.log)")
        #expect(run.d1.after == 0, "packets left by d1:\n\(run.log)")
        let lines = run.log.split(separator: "\n")
        #expect(lines.contains { $0.contains("no path has an address") }, "\(run.log)")
        #expect(lines.contains { $0.contains("connecting") && $0.contains("10.91.2.3") }, "\(run.log)")
    }
}
