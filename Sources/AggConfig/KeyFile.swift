#if canImport(Glibc)
import AggProtocol
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads pre-shared key files: one `NAME HEX` line per client (HEX = 64 hex digits, a 256-bit key), `#` comments
/// and blank lines allowed. The server's file holds every client; a client's file holds its own line.
public enum KeyFile {
    /// Parses the text of a key file; `path` only names the file in errors.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> [PreSharedKey] {
        var keys: [PreSharedKey] = []
        var names: [String: Int] = [:]
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = index + 1
            var content = Substring(rawLine)
            if let hash = content.firstIndex(of: "#") { content = content[..<hash] }
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw ConfigError(path: path, line: line, "expected \"NAME HEX\", found \(fields.count) fields")
            }
            let name = String(fields[0])
            guard ControlMessage.isValidKeyName(Array(name.utf8)) else {
                throw ConfigError(path: path, line: line,
                    "invalid key name \"\(name)\": use 1 to 64 letters, digits, '.', '_' or '-'")
            }
            guard let key = decodeHex(fields[1]), key.count == PreSharedKey.keyLength else {
                throw ConfigError(path: path, line: line,
                    "key for \"\(name)\" must be \(PreSharedKey.keyLength * 2) hex digits (a 256-bit key)")
            }
            if let first = names[name] {
                throw ConfigError(path: path, line: line, "duplicate key name \"\(name)\" (first on line \(first))")
            }
            names[name] = line
            keys.append(PreSharedKey(name: name, key: key))
        }
        return keys
    }

    /// Reads and parses a key file, refusing one that others may read, or that a group other than the daemon's
    /// own may read (`checkPermissions`). A server's file may hold no key yet (as the package installs it): the
    /// server then refuses every client until one is added.
    public static func load(path: String) throws(ConfigError) -> [PreSharedKey] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError(path: path, "cannot read key file: \(String(cString: strerror(errno)))")
        }
        try checkPermissions(
            mode: UInt32(info.st_mode), path: path,
            groupIsOurs: isOurGroup(info.st_gid) || isGroup(info.st_gid, named: serviceGroup))
        guard let text = readFile(path) else {
            throw ConfigError(path: path, "cannot read key file: \(String(cString: strerror(errno)))")
        }
        return try parse(text, path: path)
    }

    /// Reads a client's key file, which must hold exactly one key.
    public static func loadClientKey(path: String) throws(ConfigError) -> PreSharedKey {
        let keys = try load(path: path)
        guard !keys.isEmpty else { throw ConfigError(path: path, "key file holds no keys") }
        guard keys.count == 1 else {
            throw ConfigError(path: path, "a client key file holds exactly one key, found \(keys.count)")
        }
        return keys[0]
    }

    /// Refuses a mode with any permission bit for others, or any group bit but read; group read only when the
    /// file's group is the daemon's own (`groupIsOurs`): root:aggserver mode 640 lets the `aggserver` service user
    /// read the file in place (and re-read it on reload) while no one else can.
    public static func checkPermissions(mode: UInt32, path: String, groupIsOurs: Bool = false) throws(ConfigError) {
        let allowed: UInt32 = groupIsOurs ? 0o040 : 0
        let loose = mode & 0o077 & ~allowed
        guard loose == 0 else {
            throw ConfigError(path: path,
                "key file is accessible by group or others (mode \(String(mode & 0o777, radix: 8))); "
                    + "pre-shared keys must be private: run `chmod 600 \(path)` (or 640 with the group of the "
                    + "service user)")
        }
    }

    /// The group of the shipped unit's service user. Its members (the daemon) read `root:aggserver` mode 640 in
    /// place; root, which is not one of them, must accept that file too when it runs `aggserver keygen --append`
    /// or `check-config` on it.
    static let serviceGroup = "aggserver"

    /// Whether `gid` is the group called `name` in the group database.
    static func isGroup(_ gid: gid_t, named name: String) -> Bool {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return false }
        return String(cString: entry.gr_name) == name
    }

    /// Whether `group` is this process's effective group or one of its supplementary groups.
    static func isOurGroup(_ group: gid_t) -> Bool {
        if group == getegid() { return true }
        let count = getgroups(0, nil)
        guard count > 0 else { return false }
        var groups = [gid_t](repeating: 0, count: Int(count))
        let filled = getgroups(count, &groups)
        return filled > 0 && groups.prefix(Int(filled)).contains(group)
    }

    /// The bytes of a hex string (either case); nil on an odd length or a non-hex digit.
    public static func decodeHex<S: StringProtocol>(_ text: S) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    static func readFile(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The bytes of the file at `path`, or nil with `errno` set. Config and key files are read before any event
    /// loop exists, so plain blocking stdio is right here.
    static func readBytes(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count { break }
        }
        return ferror(file) == 0 ? bytes : nil
    }
}

/// A configuration problem, naming the file and, where known, the line.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var message: String

    public init(path: String, line: Int? = nil, _ message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(path):\(line): \(message)" }
        return "\(path): \(message)"
    }
}
