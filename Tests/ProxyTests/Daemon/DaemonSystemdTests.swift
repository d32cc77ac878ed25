import AggConfig
import Foundation
import Proxy
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The real `aggserver` and `aggclient` binaries under a fake systemd: the notification protocol (READY, STATUS,
/// WATCHDOG, RELOADING, STOPPING), signals, and socket activation.
///
/// `WATCHDOG_PID` is left unset: sd_watchdog_enabled(3) checks the pid only when the variable is present, and the
/// child's pid is not known before it is spawned.
@Suite("Daemon under systemd", .serialized, .timeLimit(.minutes(2)))
struct DaemonSystemdTests {
    /// Starts an aggserver on an ephemeral UDP port of 127.0.0.1 and waits for READY=1; returns it with its port.
    static func startServer(
        keyPath: String, directory: TemporaryDirectory, notify: FakeNotifySocket, log: NotificationLog
    ) throws -> (DaemonProcess, port: String) {
        let server = try DaemonProcess(
            "aggserver", arguments: ["--listen", "127.0.0.1:0", "--psk-file", keyPath, "--shutdown-timeout", "3"],
            environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "2000000"],
            directory: try makeSubdirectory(directory, "server"))
        guard log.waitFor("READY=1", within: 10) else {
            throw DaemonTestError("no READY=1 from aggserver: \(log.received) \(server.standardError)")
        }
        guard let line = server.waitForOutput(containing: "listening on UDP", within: 2),
            let port = line.split(separator: ":").last
        else { throw DaemonTestError("no listen address printed: \(server.standardOutput)") }
        return (server, String(port))
    }

    static func makeSubdirectory(_ directory: TemporaryDirectory, _ name: String) throws -> String {
        let path = directory.path + "/" + name
        guard mkdir(path, 0o700) == 0 else { throw DaemonTestError("mkdir \(path)") }
        return path
    }

    @Test func serverSendsReadyStatusWatchdogReloadsOnSIGHUPAndStopsOnSIGTERM() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let (server, _) = try Self.startServer(keyPath: keyPath, directory: directory, notify: notify, log: log)
        defer { server.terminate() }
        #expect(log.received.last?.contains("STATUS=listening on UDP 127.0.0.1:") == true)

        #expect(log.waitFor("WATCHDOG=1", within: 5), "\(log.received)")
        #expect(
            log.received.contains { $0.hasPrefix("STATUS=0 clients, 0 active paths") }
                || log.waitFor("STATUS=0 clients, 0 active paths, 0 streams, up 0 kbit/s, down 0 kbit/s", within: 8))

        server.send(SIGHUP)
        #expect(log.waitFor("RELOADING=1", within: 5), "\(log.received)")
        #expect(log.received.last?.contains("MONOTONIC_USEC=") == true)
        #expect(log.waitFor("READY=1", within: 5), "\(log.received)")

        server.send(SIGTERM)
        #expect(log.waitFor("STOPPING=1", within: 5), "\(log.received)")
        #expect(server.waitForExit(within: 10) == 0, "\(server.standardError)")
    }

    @Test func serverKeepsItsKeysWhenTheReloadedFileIsBroken() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let (server, _) = try Self.startServer(keyPath: keyPath, directory: directory, notify: notify, log: log)
        defer { server.terminate() }
        try "not a key line\n".write(toFile: keyPath, atomically: false, encoding: .utf8)
        server.send(SIGHUP)
        #expect(log.waitFor("RELOADING=1", within: 5), "\(log.received)")
        #expect(log.waitFor("READY=1", within: 5), "\(log.received)")
        #expect(server.waitForExit(within: 0.2) == nil, "a bad key file must not stop the server")
        #expect(server.standardError.contains("reload failed"))
        server.send(SIGINT)
        #expect(server.waitForExit(within: 10) == 0)
    }

    @Test func clientSendsReadyOnceAuthenticatedAndShutsDownOnSIGTERM() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let serverNotify = try FakeNotifySocket()
        let serverLog = NotificationLog(socket: serverNotify)
        let (server, port) = try Self.startServer(
            keyPath: keyPath, directory: directory, notify: serverNotify, log: serverLog)
        defer { server.terminate() }

        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let client = try DaemonProcess(
            "aggclient",
            arguments: [
                "--server", "127.0.0.1:\(port)", "--path", "127.0.0.1", "--socks", "127.0.0.1:0", "--http",
                "127.0.0.1:0",
                "--psk-file", keyPath, "--shutdown-timeout", "3",
            ],
            environment: ["NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "2000000"],
            directory: try Self.makeSubdirectory(directory, "client"))
        defer { client.terminate() }
        #expect(log.waitFor("READY=1", within: 15), "\(log.received) \(client.standardError)")
        #expect(log.received.last?.contains("STATUS=association up, 1 active paths") == true, "\(log.received)")
        #expect(log.waitFor("WATCHDOG=1", within: 5), "\(log.received)")
        #expect(
            serverLog.waitFor("STATUS=1 clients, 1 active paths, 0 streams, up 0 kbit/s, down 0 kbit/s", within: 8)
                || serverLog.received.contains { $0.contains("STATUS=1 clients") }, "\(serverLog.received)")

        client.send(SIGTERM)
        #expect(log.waitFor("STOPPING=1", within: 5), "\(log.received)")
        #expect(client.waitForExit(within: 10) == 0, "\(client.standardError)")
        // SCTP SHUTDOWN, not ABORT: the server saw the association complete its shutdown.
        #expect(client.standardError.contains("shutdown complete"), "\(client.standardError)")
        server.send(SIGTERM)
        #expect(server.waitForExit(within: 10) == 0)
    }

    @Test func clientAdoptsTheSocksSocketSystemdPasses() throws {
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let (listener, listenPort) = try makeListeningSocket()
        defer { close(listener) }
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        // LISTEN_PID must be the daemon's pid: a shell sets it to its own and execs the daemon, which keeps the pid
        // and descriptor 3. No server runs; the first attempt fails and READY follows.
        let binary = DaemonProcess.binaries.appendingPathComponent("aggclient").path
        let client = try DaemonProcess(
            "/bin/sh",
            arguments: [
                "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", binary, "--server", "127.0.0.1:9", "--path", "127.0.0.1",
                "--http", "off", "--psk-file", keyPath, "--shutdown-timeout", "1",
            ],
            environment: ["NOTIFY_SOCKET": notify.address, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "socks"],
            directory: try Self.makeSubdirectory(directory, "client"), socketAtFD3: listener)
        defer { client.terminate() }
        let line = client.waitForOutput(containing: "socket \"socks\" from systemd", within: 10)
        #expect(line?.contains("127.0.0.1:\(listenPort)") == true, "\(client.standardOutput) \(client.standardError)")
        // A SOCKS5 greeting offering "no authentication" is answered on the inherited socket.
        #expect(try exchange(port: listenPort, sending: [5, 1, 0], receiving: 2) == [5, 0])
        #expect(log.waitFor("READY=1", within: 20), "\(log.received) \(client.standardError)")
        client.send(SIGTERM)
        #expect(client.waitForExit(within: 10) == 0, "\(client.standardError)")
    }

    /// As the package installs it: a key file with no key yet. The server starts, says how to add a client, and
    /// serves one added with keygen --append and SIGHUP, without a restart.
    @Test func serverStartsWithoutKeysAndServesAClientAddedLater() throws {
        let directory = try TemporaryDirectory()
        let keyPath = directory.path + "/server.keys"
        try ServiceSetup.writePrivateFile("# aggserver keygen NAME --append this file\n", path: keyPath)
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let (server, port) = try Self.startServer(keyPath: keyPath, directory: directory, notify: notify, log: log)
        defer { server.terminate() }
        #expect(server.standardError.contains("no client keys"), "\(server.standardError)")

        let keygen = try DaemonProcess(
            "aggserver", arguments: ["keygen", "laptop", "--append", keyPath, "-o", directory.path + "/client.key"],
            environment: [:], directory: try Self.makeSubdirectory(directory, "keygen"))
        #expect(keygen.waitForExit(within: 10) == 0, "\(keygen.standardError)")
        server.send(SIGHUP)
        #expect(log.waitFor("RELOADING=1", within: 5), "\(log.received)")
        #expect(log.waitFor("READY=1", within: 5), "\(log.received)")

        let clientNotify = try FakeNotifySocket()
        let clientLog = NotificationLog(socket: clientNotify)
        let client = try DaemonProcess(
            "aggclient",
            arguments: [
                "--server", "127.0.0.1:\(port)", "--path", "127.0.0.1", "--socks", "127.0.0.1:0", "--http", "off",
                "--psk-file", directory.path + "/client.key",
            ],
            environment: ["NOTIFY_SOCKET": clientNotify.address],
            directory: try Self.makeSubdirectory(directory, "client"))
        defer { client.terminate() }
        #expect(clientLog.waitFor("READY=1", within: 15), "\(clientLog.received) \(client.standardError)")
        #expect(clientLog.received.last?.contains("STATUS=association up") == true, "\(clientLog.received)")
    }

    /// Under a unit with LoadCredential= (aggclient's; a custom one for aggserver) the key file is systemd's copy
    /// from the start, which a reload does not refresh (systemd 252): the daemon says so, and the server says to
    /// restart rather than reload to add a client.
    @Test func serverSaysItsKeyFileIsSystemdsCopy() throws {
        let directory = try TemporaryDirectory()
        let credentials = try Self.makeSubdirectory(directory, "credentials")
        try ServiceSetup.writePrivateFile("", path: credentials + "/keys")
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let server = try DaemonProcess(
            "aggserver", arguments: ["--listen", "127.0.0.1:0", "--psk-file", credentials + "/keys"],
            environment: ["NOTIFY_SOCKET": notify.address, "CREDENTIALS_DIRECTORY": credentials],
            directory: try Self.makeSubdirectory(directory, "server"))
        defer { server.terminate() }
        #expect(log.waitFor("READY=1", within: 10), "\(log.received) \(server.standardError)")
        #expect(server.standardError.contains("the service is restarted"), "\(server.standardError)")
        server.send(SIGHUP)
        #expect(log.waitFor("READY=1", within: 5), "\(log.received)")
        #expect(server.standardError.contains("which a reload does not refresh"), "\(server.standardError)")
        server.send(SIGTERM)
        #expect(server.waitForExit(within: 10) == 0)
    }

    /// The daemons speak the notify protocol themselves: neither binary needs libsystemd (not among its ELF
    /// dependencies, nor named anywhere in it for a dlopen), and aggserver still sends READY=1, with an empty
    /// library path of its own.
    @Test func daemonsNeedNoLibsystemdAndStillSendReady() throws {
        for binary in ["aggserver", "aggclient"] {
            let path = DaemonProcess.binaries.appendingPathComponent(binary).path
            let needed = try Self.output(of: "/usr/bin/readelf", ["--dynamic", "--wide", path])
            #expect(needed.contains("(NEEDED)"), "readelf found no dependencies of \(binary): \(needed)")
            #expect(!needed.contains("libsystemd"), "\(binary) links libsystemd: \(needed)")
            let resolved = try Self.output(of: "/usr/bin/ldd", [path])
            #expect(!resolved.contains("libsystemd"), "\(binary) loads libsystemd: \(resolved)")
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(bytes.range(of: Data("libsystemd".utf8)) == nil, "\(binary) names libsystemd (a dlopen?)")
        }
        let directory = try TemporaryDirectory()
        let keyPath = try directory.makeKeyFile()
        let notify = try FakeNotifySocket()
        let log = NotificationLog(socket: notify)
        let server = try DaemonProcess(
            "aggserver", arguments: ["--listen", "127.0.0.1:0", "--psk-file", keyPath],
            environment: ["NOTIFY_SOCKET": notify.address, "LD_LIBRARY_PATH": directory.path],
            directory: try Self.makeSubdirectory(directory, "server"))
        defer { server.terminate() }
        #expect(log.waitFor("READY=1", within: 10), "\(log.received) \(server.standardError)")
        server.send(SIGTERM)
        #expect(server.waitForExit(within: 10) == 0, "\(server.standardError)")
    }

    /// Runs `tool` to the end and returns its standard output and error.
    static func output(of tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
