/// One server group of aggclient (`server-group`): the addresses of one server, dialled in turn and used as the
/// extra paths' destinations like `server`'s, and optionally the key file this server knows the client by. Written
/// `"HOST:PORT,HOST:PORT,psk-file=PATH"` (a flag's form too) or, in a file, as a `[[server-group]]` table with
/// `addresses` and `psk-file`.
public struct ServerGroupSpec: Equatable, Sendable, CustomStringConvertible {
    public var addresses: [HostAndPort]
    /// The group's own key file; nil: `psk-file`'s key.
    public var pskFile: String?

    public init(addresses: [HostAndPort], pskFile: String? = nil) {
        self.addresses = addresses
        self.pskFile = pskFile
    }

    /// The compact form.
    public var description: String {
        (addresses.map(\.description) + (pskFile.map { ["psk-file=\($0)"] } ?? [])).joined(separator: ",")
    }

    /// Parses the compact form; the port defaults to `defaultPort`.
    public static func parse(_ text: String, defaultPort: UInt16) throws(ConfigValueError) -> ServerGroupSpec {
        var spec = ServerGroupSpec(addresses: [])
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = String(part.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            if item.hasPrefix("psk-file=") {
                let path = String(item.dropFirst("psk-file=".count))
                guard !path.isEmpty, spec.pskFile == nil else {
                    throw ConfigValueError("server group \"\(text)\": psk-file= needs one path")
                }
                spec.pskFile = path
            } else if let address = HostAndPort(item, defaultPort: defaultPort) {
                spec.addresses.append(address)
            } else {
                throw ConfigValueError("server group \"\(text)\": \"\(item)\" is not HOST:PORT or psk-file=PATH")
            }
        }
        guard !spec.addresses.isEmpty else { throw ConfigValueError("server group \"\(text)\" has no address") }
        return spec
    }

    /// A `[[server-group]]` table: `addresses = ["HOST:PORT", …]`, optionally `psk-file = "PATH"`.
    static func fromTable(_ members: [TOMLDocument.Entry], defaultPort: UInt16) throws(ConfigValueError)
        -> ServerGroupSpec
    {
        var spec = ServerGroupSpec(addresses: [])
        for member in members {
            switch (member.name, member.value.kind) {
            case ("addresses", .array(let values)):
                for value in values {
                    guard case .string(let text) = value.kind, let address = HostAndPort(text, defaultPort: defaultPort)
                    else {
                        throw ConfigValueError("addresses: expected \"HOST:PORT\", found \(value.literal)", line: member.line)
                    }
                    spec.addresses.append(address)
                }
            case ("psk-file", .string(let path)) where !path.isEmpty:
                spec.pskFile = path
            case ("addresses", _), ("psk-file", _):
                throw ConfigValueError(
                    "\(member.name): expected \(member.name == "addresses" ? "a list of \"HOST:PORT\"" : "a path"), "
                        + "found \(member.value.literal)", line: member.line)
            default:
                throw ConfigValueError(
                    "unknown key \(member.name) in a server group (addresses, psk-file)", line: member.line)
            }
        }
        guard !spec.addresses.isEmpty else { throw ConfigValueError("a server group needs addresses") }
        return spec
    }
}

extension ConfigType where Value == ServerGroupSpec {
    /// `"HOST:PORT,HOST:PORT,psk-file=PATH"` or a `[[server-group]]` table (`ServerGroupSpec`).
    public static func serverGroup(defaultPort: UInt16) -> ConfigType {
        let expected = "\"HOST:PORT,HOST:PORT\" (one server's addresses), optionally followed by ,psk-file=PATH"
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                switch value.kind {
                case .string(let text): return try ServerGroupSpec.parse(text, defaultPort: defaultPort)
                case .table(let members): return try ServerGroupSpec.fromTable(members, defaultPort: defaultPort)
                case .integer, .float, .boolean, .array:
                    throw ConfigValueError(expected: expected, found: value.literal)
                }
            },
            fromFlag: { arguments in try ServerGroupSpec.parse(arguments.last ?? "", defaultPort: defaultPort) },
            format: { TOMLValue.quoted($0.description) })
    }
}
