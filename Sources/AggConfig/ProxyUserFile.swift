import AggIngress

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads the users aggclient's proxy listeners accept: `USER:PASS` values (`proxy-user`) and files of such lines
/// (`proxy-user-file`, mode 600 like a key file; `#` comments and blank lines allowed). A username is 1 to 255 bytes
/// without `:` (RFC 7617 §2: Basic cannot carry one), a password 1 to 255 bytes (RFC 1929 §2: ULEN and PLEN are
/// one byte each, and zero-length fields are not credentials); the password may hold `:`.
public enum ProxyUserFile {
    public typealias Credentials = ProxyIngressConfiguration.Credentials

    /// One `USER:PASS` value; nil when it is not one.
    public static func parseUser<S: StringProtocol>(_ text: S) -> Credentials? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let user = String(text[..<colon])
        let password = String(text[text.index(after: colon)...])
        guard (1...255).contains(user.utf8.count), (1...255).contains(password.utf8.count),
            !user.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }), !password.utf8.contains(where: { $0 < 0x20 })
        else { return nil }
        return Credentials(username: user, password: password)
    }

    /// Parses a user file's text; `path` only names the file in errors. A username may appear once.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> [Credentials] {
        var users: [Credentials] = []
        var lines: [String: Int] = [:]
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = index + 1
            let content = rawLine.hasSuffix("\r") ? rawLine.dropLast() : Substring(rawLine)
            if content.allSatisfy({ $0 == " " || $0 == "\t" }) || content.first == "#" { continue }
            // The line itself is never quoted: it holds a password.
            guard let user = parseUser(content) else {
                throw ConfigError(
                    path: path, line: line,
                    "expected \"USER:PASS\" (a user of 1 to 255 bytes without ':', a password of 1 to 255 bytes)")
            }
            if let first = lines[user.username] {
                throw ConfigError(
                    path: path, line: line, "duplicate user \"\(user.username)\" (first on line \(first))")
            }
            lines[user.username] = line
            users.append(user)
        }
        return users
    }

    /// Reads and parses a user file, refusing one that group or others may read or write, or that holds no user.
    public static func load(path: String) throws(ConfigError) -> [Credentials] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError(path: path, "cannot read proxy user file: \(String(cString: strerror(errno)))")
        }
        let mode = UInt32(info.st_mode)
        guard mode & 0o077 == 0 else {
            throw ConfigError(
                path: path,
                "proxy user file is accessible by group or others (mode \(String(mode & 0o777, radix: 8))); "
                    + "it holds passwords: run `chmod 600 \(path)`")
        }
        guard let text = KeyFile.readFile(path) else {
            throw ConfigError(path: path, "cannot read proxy user file: \(String(cString: strerror(errno)))")
        }
        let users = try parse(text, path: path)
        guard !users.isEmpty else { throw ConfigError(path: path, "proxy user file holds no user") }
        return users
    }

    /// Every user `settings` give: the `proxy-user` values, then the file's (a name in both is an error).
    public static func users(of settings: ClientSettings) throws(ConfigError) -> [Credentials] {
        var users = settings.proxyUsers
        if let path = settings.proxyUserFile {
            for user in try load(path: path) {
                if users.contains(where: { $0.username == user.username }) {
                    throw ConfigError(path: path, "user \"\(user.username)\" is also given by proxy-user")
                }
                users.append(user)
            }
        }
        return users
    }
}

extension ConfigType where Value == ProxyIngressConfiguration.Credentials {
    /// `"USER:PASS"`; written back with the password hidden, so check-config never prints one, and a wrong value
    /// is not quoted in the error either (it may be a password).
    public static var proxyUser: ConfigType {
        let expected = "\"USER:PASS\" (a user of 1 to 255 bytes without ':', a password of 1 to 255 bytes)"
        let refusal = ConfigValueError("expected \(expected); the value is not repeated here")
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                guard case .string(let text) = value.kind, let user = ProxyUserFile.parseUser(text) else {
                    throw ConfigValueError(refusal.message, line: value.line)
                }
                return user
            },
            fromFlag: { arguments in
                guard let user = ProxyUserFile.parseUser(arguments.last ?? "") else { throw refusal }
                return user
            },
            format: { TOMLValue.quoted("\($0.username):<hidden>") })
    }
}

extension ConfigType where Value == String? {
    /// An optional file path; `""` (the default) for none.
    public static func optionalPath(_ expected: String) -> ConfigType {
        .text(
            "\(expected), or \"\" for none", parse: { .some($0.isEmpty ? nil : $0) },
            format: { TOMLValue.quoted($0 ?? "") })
    }
}
