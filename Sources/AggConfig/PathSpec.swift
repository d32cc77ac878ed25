import SCTPEngine

/// One `--path` (or `path = [...]`, or `[[path]]` table) entry: what the path sends from (an interface name or a
/// local IP address), before an `=` the name the status page, `aggclient status` and the metrics call it by
/// (`lte=wwan0`), and after commas its policy: `backup` or `active`, `priority=N` among backups, `rate=20mbit`
/// for a send-rate cap (`lte=wwan0,backup,rate=5mbit`).
public struct PathSpec: Equatable, Sendable, CustomStringConvertible {
    /// The chosen name, or nil for none.
    public var name: String?
    /// The interface name or IP address.
    public var target: String
    public var mode: SCTPPathPolicy.Mode = .active
    /// Among backups, the lowest is used first.
    public var priority = 0
    /// The send-rate cap in bits per second; nil for none.
    public var rateBitsPerSecond: Int?

    public init(
        name: String? = nil, target: String, mode: SCTPPathPolicy.Mode = .active, priority: Int = 0,
        rateBitsPerSecond: Int? = nil
    ) {
        self.name = name
        self.target = target
        self.mode = mode
        self.priority = priority
        self.rateBitsPerSecond = rateBitsPerSecond
    }

    /// Parses `[NAME=]TARGET[,OPTION...]`; nil when `parse` throws.
    public init?(_ text: String) {
        guard let spec = try? Self.parse(text) else { return nil }
        self = spec
    }

    /// Parses `[NAME=]TARGET[,OPTION...]`, OPTION one of `active`, `backup`, `mode=active|backup`, `priority=N`
    /// (0 ... 255), `rate=RATE` (`RateText`). The name is 1 to 32 letters, digits, '.', '_' or '-'; the first `=`
    /// splits it off: neither an IP address nor a usable interface name holds one.
    public static func parse(_ text: String) throws(PathSpecError) -> PathSpec {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let head = parts[0]
        var spec: PathSpec
        if let equals = head.firstIndex(of: "=") {
            let name = String(head[..<equals])
            let target = String(head[head.index(after: equals)...])
            guard isValidName(name) else {
                throw PathSpecError("path name \"\(name)\": use 1 to 32 letters, digits, '.', '_' or '-'")
            }
            spec = PathSpec(name: name, target: target)
        } else {
            spec = PathSpec(target: head)
        }
        guard !spec.target.isEmpty else { throw PathSpecError("a path needs an interface name or an IP address") }
        for option in parts.dropFirst() {
            let (key, value) =
                option.firstIndex(of: "=").map {
                    (String(option[..<$0]), String(option[option.index(after: $0)...]))
                } ?? (option, nil)
            switch (key.lowercased(), value) {
            case ("active", nil), ("backup", nil): spec.mode = try mode(key)
            case ("mode", let value?): spec.mode = try mode(value)
            case ("priority", let value?): spec.priority = try priority(value)
            case ("rate", let value?): spec.rateBitsPerSecond = try rate(value)
            default:
                throw PathSpecError(
                    "unknown path option \"\(option)\": expected backup, active, mode=, priority= or rate=")
            }
        }
        return spec
    }

    static func mode(_ text: String) throws(PathSpecError) -> SCTPPathPolicy.Mode {
        guard let mode = SCTPPathPolicy.Mode(rawValue: text.lowercased()) else {
            throw PathSpecError("unknown path mode \"\(text)\": a path is active or backup")
        }
        return mode
    }

    static func priority(_ text: String) throws(PathSpecError) -> Int {
        guard let number = Int(text), (0...255).contains(number) else {
            throw PathSpecError("bad path priority \"\(text)\": expected a whole number from 0 to 255")
        }
        return number
    }

    static func rate(_ text: String) throws(PathSpecError) -> Int {
        guard let bits = RateText.parse(text) else {
            throw PathSpecError(
                "bad path rate \"\(text)\": expected a number and a unit, like 20mbit, 500kbit or 1gbit (at least "
                    + "8kbit)")
        }
        return bits
    }

    /// The engine's policy for this path (the cap in bytes per second).
    public var policy: SCTPPathPolicy {
        SCTPPathPolicy(mode: mode, priority: priority, sendRateLimit: rateBitsPerSecond.map { max($0 / 8, 1) })
    }

    /// Whether `name` may name a path: 1 to 32 ASCII letters, digits, '.', '_' or '-' (a Prometheus label value
    /// and a table cell that need no quoting).
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
    }

    /// The compact form, which `parse` reads back: options only where they differ from the default.
    public var description: String {
        var text = name.map { "\($0)=\(target)" } ?? target
        if mode == .backup { text += ",backup" }
        if priority != 0 { text += ",priority=\(priority)" }
        if let rateBitsPerSecond { text += ",rate=\(RateText.format(rateBitsPerSecond))" }
        return text
    }
}

/// Why a path entry is not one; the message says what was wrong and what is expected.
public struct PathSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A rate as `tc` writes one: a number (decimals allowed) and `bit`, `kbit`, `mbit` or `gbit` (powers of 1000,
/// bits per second; case does not matter).
public enum RateText {
    /// Bits per second, or nil when `text` is not a rate or is below 8 kbit/s (1000 bytes per second).
    public static func parse(_ text: String) -> Int? {
        let lower = text.lowercased()
        let units: [(String, Double)] = [("kbit", 1e3), ("mbit", 1e6), ("gbit", 1e9), ("bit", 1)]
        guard let (unit, factor) = units.first(where: { lower.hasSuffix($0.0) }) else { return nil }
        let number = lower.dropLast(unit.count)
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite
        else { return nil }
        let bits = (value * factor).rounded()
        guard bits >= 8000, bits <= 1e12 else { return nil }
        return Int(bits)
    }

    /// The shortest exact form: `20mbit`, `1500kbit`, `8001bit`.
    public static func format(_ bits: Int) -> String {
        for (unit, factor) in [("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1000)]
        where bits % factor == 0 {
            return "\(bits / factor)\(unit)"
        }
        return "\(bits)bit"
    }
}

extension PathSpec {
    /// Reads a `[[path]]` table: `interface = "wwan0"` or `address = "192.168.8.100"` (exactly one), and
    /// optionally `name`, `mode` ("active" or "backup"), `priority` (0 ... 255) and `rate` ("20mbit"). A wrong
    /// key or value throws a `ConfigValueError` with its line.
    static func fromTable(_ members: [TOMLDocument.Entry]) throws -> PathSpec {
        var spec = PathSpec(target: "")
        var targets: [String] = []
        func text(_ member: TOMLDocument.Entry) throws -> String {
            guard case .string(let text) = member.value.kind else {
                throw ConfigValueError(
                    "\(member.name): expected a string, found \(member.value.literal)", line: member.line)
            }
            return text
        }
        for member in members {
            do {
                switch member.name {
                case "interface":
                    spec.target = try text(member)
                    targets.append(member.name)
                case "address":
                    let address = try text(member)
                    guard SCTPIPAddress(address) != nil else {
                        throw PathSpecError("address \"\(address)\" is not an IP address (use interface for a name)")
                    }
                    spec.target = address
                    targets.append(member.name)
                case "name":
                    let name = try text(member)
                    guard isValidName(name) else {
                        throw PathSpecError("path name \"\(name)\": use 1 to 32 letters, digits, '.', '_' or '-'")
                    }
                    spec.name = name
                case "mode": spec.mode = try mode(try text(member))
                case "rate": spec.rateBitsPerSecond = try rate(try text(member))
                case "priority":
                    guard case .integer(let number) = member.value.kind, (0...255).contains(number) else {
                        throw PathSpecError(
                            "priority: expected a whole number from 0 to 255, found \(member.value.literal)")
                    }
                    spec.priority = Int(number)
                default:
                    throw PathSpecError(
                        "unknown key \(member.name) in [[path]] (its keys: interface, address, name, mode, priority, rate)"
                    )
                }
            } catch let error as PathSpecError {
                throw ConfigValueError(error.message, line: member.line)
            }
        }
        guard targets.count == 1 else {
            throw ConfigValueError(
                targets.isEmpty
                    ? "a [[path]] needs interface = \"NAME\" or address = \"IP\""
                    : "a [[path]] has either interface or address, not both")
        }
        return spec
    }
}

/// A change to a path's policy at run time (`aggclient path NAME [MODE] [--rate RATE|off] [--priority N]`, the
/// status endpoint's `POST /path`): only what is given changes.
public struct PathPolicyChange: Sendable, Equatable {
    public var mode: SCTPPathPolicy.Mode?
    /// Among backups (0 ... 255).
    public var priority: Int?
    /// The send-rate cap in bits per second: `.some(nil)` removes it.
    public var rateBitsPerSecond: Int??

    public init(mode: SCTPPathPolicy.Mode? = nil, priority: Int? = nil, rateBitsPerSecond: Int?? = nil) {
        self.mode = mode
        self.priority = priority
        self.rateBitsPerSecond = rateBitsPerSecond
    }

    public var isEmpty: Bool { mode == nil && priority == nil && rateBitsPerSecond == nil }

    /// `policy` with the change made (the cap in bytes per second, as `PathSpec.policy` has it).
    public func applied(to policy: SCTPPathPolicy) -> SCTPPathPolicy {
        var changed = policy
        if let mode { changed.mode = mode }
        if let priority { changed.priority = priority }
        if let rate = rateBitsPerSecond {
            changed = SCTPPathPolicy(
                mode: changed.mode, priority: changed.priority, sendRateLimit: rate.map { max($0 / 8, 1) })
        }
        return changed
    }

    /// From a request's `mode=`, `priority=` and `rate=` (a `RateText` or `off`); at least one must be there.
    public static func parse(mode: String?, priority: String?, rate: String?) throws(PathSpecError) -> PathPolicyChange
    {
        var change = PathPolicyChange()
        if let mode {
            guard let parsed = SCTPPathPolicy.Mode(rawValue: mode) else {
                throw PathSpecError("unknown path mode \"\(mode)\": a path is active or backup")
            }
            change.mode = parsed
        }
        if let priority { change.priority = try PathSpec.priority(priority) }
        if let rate { change.rateBitsPerSecond = rate == "off" ? .some(nil) : .some(try PathSpec.rate(rate)) }
        guard !change.isEmpty else { throw PathSpecError("nothing to change: give a mode, priority= or rate=") }
        return change
    }
}
