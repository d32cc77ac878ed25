#if canImport(Glibc)
import AggProtocol
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension PreSharedKey {
    /// The key's public 8-byte id as 16 hex digits: what the datagram layer's HELLO carries and the server indexes.
    public var keyIDText: String {
        let id = SecureDatagram.keyID(for: key)
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension KeyFile {
    /// Appends one `NAME HEX` line to the server's key file, creating it (mode 600) if it does not exist. The file
    /// must already be safe (mode 600 or stricter) and well formed, and must not hold `key`'s name yet: a typo'd
    /// path or a name given twice fails before anything is written.
    public static func append(_ key: PreSharedKey, to path: String, line: String) throws(ConfigError) {
        var info = stat()
        if stat(path, &info) == 0 {
            let existing = try load(path: path)
            if existing.contains(where: { $0.name == key.name }) {
                throw ConfigError(path: path, "already holds a key named \"\(key.name)\": pick another name")
            }
            guard let text = readFile(path) else {
                throw ConfigError(path: path, "cannot read key file: \(String(cString: strerror(errno)))")
            }
            let separator = text.isEmpty || text.hasSuffix("\n") ? "" : "\n"
            try write(separator + line, to: path, flags: O_WRONLY | O_APPEND)
        } else {
            try write(line, to: path, flags: O_WRONLY | O_CREAT | O_EXCL)
        }
    }

    private static func write(_ text: String, to path: String, flags: Int32) throws(ConfigError) {
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { throw ConfigError(path: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw ConfigError(path: path, "cannot write: \(String(cString: strerror(errno)))")
        }
    }
}

extension ServiceSetup {
    /// Writes one line to standard error, for what a command says besides its output (stdout may be a key file).
    public static func printToStandardError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
