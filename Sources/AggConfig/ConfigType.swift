import AggEgress
import SCTPEngine

/// How one kind of setting (an address, a duration, a list of ...) is read from a config file value and from a
/// command-line flag's arguments, and written back as TOML for `check-config`'s summary.
public struct ConfigType<Value> {
    /// What a value must look like, for "expected ..." in errors: `"HOST:PORT"`, `an integer from 1 to 65535`.
    public let expected: String
    let fromTOML: (TOMLValue) throws -> Value
    let fromFlag: ([String]) throws -> Value
    let format: (Value) -> String

    init(
        expected: String, fromTOML: @escaping (TOMLValue) throws -> Value,
        fromFlag: @escaping ([String]) throws -> Value, format: @escaping (Value) -> String
    ) {
        self.expected = expected
        self.fromTOML = fromTOML
        self.fromFlag = fromFlag
        self.format = format
    }

    /// A value a config file writes as a string and a flag gives as its argument; `parse` returns nil when the
    /// text is not one.
    static func text(
        _ expected: String, parse: @escaping (String) -> Value?, format: @escaping (Value) -> String
    ) -> ConfigType {
        ConfigType(
            expected: expected,
            fromTOML: { value in
                guard case .string(let text) = value.kind, let parsed = parse(text) else {
                    throw ConfigValueError(expected: expected, found: value.literal)
                }
                return parsed
            },
            fromFlag: { arguments in
                let text = arguments.last ?? ""
                guard let parsed = parse(text) else {
                    throw ConfigValueError(expected: expected, found: TOMLValue.quoted(text))
                }
                return parsed
            },
            format: format)
    }

    /// The same setting stored as another type (`UInt32` for a byte count read as `Int`).
    func map<Other>(_ forward: @escaping (Value) -> Other, back: @escaping (Other) -> Value) -> ConfigType<Other> {
        let (fromTOML, fromFlag, format) = (self.fromTOML, self.fromFlag, self.format)
        return ConfigType<Other>(
            expected: expected, fromTOML: { forward(try fromTOML($0)) }, fromFlag: { forward(try fromFlag($0)) },
            format: { format(back($0)) })
    }
}

/// A value that is not what its setting expects; the loader adds the file, line and key.
public struct ConfigValueError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    /// The line of an array element, when that element is the wrong one.
    public var line: Int?

    public init(_ message: String, line: Int? = nil) {
        self.message = message
        self.line = line
    }

    public init(expected: String, found: String, line: Int? = nil) {
        self.init("expected \(expected), found \(found)", line: line)
    }

    public var description: String { message }
}

// MARK: - The types agg's settings use

extension ConfigType where Value == HostAndPort {
    /// `"HOST:PORT"`, `"[IPv6]:PORT"`; with a default port, the port may be left out.
    public static func address(defaultPort: UInt16? = nil) -> ConfigType {
        .text(
            defaultPort == nil ? "\"HOST:PORT\"" : "\"HOST:PORT\" or \"HOST\" (port \(defaultPort!))",
            parse: { HostAndPort($0, defaultPort: defaultPort) }, format: { TOMLValue.quoted($0.description) })
    }
}

extension ConfigType where Value == HostAndPort? {
    /// A proxy listener: `"HOST:PORT"`, a port on 127.0.0.1 (an integer or a string of digits), or `"off"`.
    public static var listener: ConfigType {
        let expected = "\"HOST:PORT\", a port number (on 127.0.0.1) or \"off\""
        let parse: (String) -> HostAndPort?? = { text in
            if text == "off" { return .some(nil) }
            if let port = UInt16(text), port > 0 { return HostAndPort(host: "127.0.0.1", port: port) }
            return HostAndPort(text).map { .some($0) }
        }
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                switch value.kind {
                case .integer(let port) where (1...65535).contains(port):
                    return HostAndPort(host: "127.0.0.1", port: UInt16(port))
                case .string(let text):
                    if let parsed = parse(text) { return parsed }
                default: break
                }
                throw ConfigValueError(expected: expected, found: value.literal)
            },
            fromFlag: { arguments in
                let text = arguments.last ?? ""
                guard let parsed = parse(text) else {
                    throw ConfigValueError(expected: expected, found: TOMLValue.quoted(text))
                }
                return parsed
            },
            format: { TOMLValue.quoted($0?.description ?? "off") })
    }

    /// An optional service address (the metrics endpoint): `"HOST:PORT"`, or `"off"` for none.
    public static var optionalAddress: ConfigType {
        .text(
            "\"HOST:PORT\" or \"off\"",
            parse: { text in text == "off" ? .some(nil) : HostAndPort(text).map { .some($0) } },
            format: { TOMLValue.quoted($0?.description ?? "off") })
    }
}

extension ConfigType where Value == String {
    /// A non-empty string: a file path, an interface name.
    public static func string(_ expected: String) -> ConfigType {
        .text(expected, parse: { $0.isEmpty ? nil : $0 }, format: TOMLValue.quoted)
    }

    /// A path of aggclient: `"wlan0"`, `"192.168.8.100"`, either after a name, `"lte=wwan0"`, and policy options
    /// after commas, `"lte=wwan0,backup,rate=5mbit"` (`PathSpec`); in a file also a `[[path]]` table with
    /// `interface` or `address`, and optionally `name`, `mode`, `priority` and `rate`. Kept in the compact form.
    public static var pathSpec: ConfigType {
        let expected =
            "an interface name or a local IP address, optionally after NAME= and followed by ,backup ,priority=N "
            + ",rate=20mbit (NAME: 1 to 32 letters, digits, '.', '_' or '-')"
        func parse(_ text: String) throws -> String {
            do {
                return try PathSpec.parse(text).description
            } catch {
                throw ConfigValueError(error.message)
            }
        }
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                switch value.kind {
                case .string(let text): return try parse(text)
                case .table(let members): return try PathSpec.fromTable(members).description
                case .integer, .float, .boolean, .array:
                    throw ConfigValueError(expected: expected, found: value.literal)
                }
            },
            fromFlag: { arguments in try parse(arguments.last ?? "") }, format: TOMLValue.quoted)
    }
}

extension ConfigType where Value == CIDR {
    /// `"10.0.0.0/8"`, `"fd00::/8"`.
    public static var cidr: ConfigType {
        .text("a CIDR prefix like \"10.0.0.0/8\"", parse: { CIDR($0) }, format: { TOMLValue.quoted($0.description) })
    }
}

extension ConfigType where Value == [UInt16] {
    /// A list of TCP ports: a TOML array of integers from 1 to 65535 (`[]` for none); a repeated flag gives one
    /// port each, and the flag `none` alone empties the list.
    public static var portList: ConfigType {
        let expected = "an array of port numbers from 1 to 65535 (or [] for none)"
        let flagExpected = "a port number from 1 to 65535, or \"none\" alone"
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                let items: [TOMLValue]
                switch value.kind {
                case .array(let array): items = array
                case .integer: items = [value]
                default: throw ConfigValueError(expected: expected, found: value.literal)
                }
                var ports: [UInt16] = []
                for item in items {
                    guard case .integer(let number) = item.kind, (1...65535).contains(number) else {
                        throw ConfigValueError(expected: expected, found: item.literal, line: item.line)
                    }
                    if !ports.contains(UInt16(number)) { ports.append(UInt16(number)) }
                }
                return ports
            },
            fromFlag: { arguments in
                if arguments == ["none"] { return [] }
                var ports: [UInt16] = []
                for text in arguments {
                    guard text.allSatisfy(\.isASCII), let port = UInt16(text), port > 0 else {
                        throw ConfigValueError(expected: flagExpected, found: TOMLValue.quoted(text))
                    }
                    if !ports.contains(port) { ports.append(port) }
                }
                return ports
            },
            format: { "[" + $0.map { String($0) }.joined(separator: ", ") + "]" })
    }
}

extension ConfigType where Value == SCTPCongestionControl {
    /// `"bbr"` or `"reno"`: each path's congestion controller (`SCTPConfiguration.congestionControl`).
    public static var congestionControl: ConfigType {
        .text(
            "\"bbr\" or \"reno\"", parse: { SCTPCongestionControl(rawValue: $0) },
            format: { TOMLValue.quoted($0.rawValue) })
    }
}

extension ConfigType where Value == Bool {
    /// `true` or `false`; a flag without an argument sets it.
    public static var boolean: ConfigType {
        ConfigType(
            expected: "true or false",
            fromTOML: { value in
                guard case .boolean(let flag) = value.kind else {
                    throw ConfigValueError(expected: "true or false", found: value.literal)
                }
                return flag
            },
            fromFlag: { arguments in
                switch arguments.last {
                case nil, "true": return true
                case "false": return false
                case let other?: throw ConfigValueError(expected: "true or false", found: TOMLValue.quoted(other))
                }
            },
            format: { String($0) })
    }
}

extension ConfigType where Value == Int {
    /// An integer within `range`.
    public static func integer(in range: ClosedRange<Int>) -> ConfigType {
        let expected = "an integer from \(range.lowerBound) to \(range.upperBound)"
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                guard case .integer(let number) = value.kind, let int = Int(exactly: number), range.contains(int)
                else { throw ConfigValueError(expected: expected, found: value.literal) }
                return int
            },
            fromFlag: { arguments in
                let text = arguments.last ?? ""
                guard let int = Int(text), range.contains(int) else {
                    throw ConfigValueError(expected: expected, found: TOMLValue.quoted(text))
                }
                return int
            },
            format: { String($0) })
    }

    /// A byte count within `range`: an integer, or a string with a binary unit (`"64KiB"`, `"4MiB"`, `"1GiB"`).
    public static func byteCount(in range: ClosedRange<Int>) -> ConfigType {
        let expected =
            "a byte count from \(ByteCount.format(range.lowerBound)) to \(ByteCount.format(range.upperBound)) "
            + "(an integer, or a string like \"64KiB\", \"4MiB\", \"1GiB\")"
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                switch value.kind {
                case .integer(let number):
                    if let int = Int(exactly: number), range.contains(int) { return int }
                case .string(let text):
                    if let int = ByteCount.parse(text), range.contains(int) { return int }
                default: break
                }
                throw ConfigValueError(expected: expected, found: value.literal)
            },
            fromFlag: { arguments in
                let text = arguments.last ?? ""
                guard let int = ByteCount.parse(text), range.contains(int) else {
                    throw ConfigValueError(expected: expected, found: TOMLValue.quoted(text))
                }
                return int
            },
            format: { TOMLValue.quoted(ByteCount.format($0)) })
    }
}

extension ConfigType where Value == Duration {
    /// A duration: a string of whole amounts with units (`"300s"`, `"10m"`, `"1h30m"`, `"500ms"`), or an integer
    /// of seconds; positive unless `allowingZero`.
    public static func duration(allowingZero: Bool = false) -> ConfigType {
        let expected =
            "a \(allowingZero ? "" : "positive ")duration like \"300s\", \"10m\", \"1h30m\" or \"500ms\", "
            + "or whole seconds"
        let accepts = { (duration: Duration) in duration > .zero || (allowingZero && duration == .zero) }
        return ConfigType(
            expected: expected,
            fromTOML: { value in
                switch value.kind {
                case .integer(let seconds) where seconds >= 0 && seconds <= DurationText.maxSeconds:
                    if accepts(.seconds(seconds)) { return .seconds(seconds) }
                case .string(let text):
                    if let duration = DurationText.parse(text), accepts(duration) { return duration }
                default: break
                }
                throw ConfigValueError(expected: expected, found: value.literal)
            },
            fromFlag: { arguments in
                let text = arguments.last ?? ""
                guard let duration = DurationText.parse(text), accepts(duration) else {
                    throw ConfigValueError(expected: expected, found: TOMLValue.quoted(text))
                }
                return duration
            },
            format: { TOMLValue.quoted(DurationText.format($0)) })
    }
}

extension ConfigType {
    /// A list: a TOML array of `element`s (or one bare element), and every argument of a repeated flag.
    public static func list<Element>(of element: ConfigType<Element>) -> ConfigType where Value == [Element] {
        ConfigType(
            expected: "an array of \(element.expected)",
            fromTOML: { value in
                guard case .array(let items) = value.kind else {
                    // One string stands for a list of one; its own errors say what an element must be.
                    guard case .string = value.kind else {
                        throw ConfigValueError(expected: "an array of \(element.expected)", found: value.literal)
                    }
                    return [try element.fromTOML(value)]
                }
                return try items.map { item in
                    do {
                        return try element.fromTOML(item)
                    } catch let error as ConfigValueError {
                        throw ConfigValueError(error.message, line: error.line ?? item.line)
                    }
                }
            },
            fromFlag: { arguments in try arguments.map { try element.fromFlag([$0]) } },
            format: { "[" + $0.map(element.format).joined(separator: ", ") + "]" })
    }
}
