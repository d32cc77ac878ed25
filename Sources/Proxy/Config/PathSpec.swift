/// One `--path` (or `path = [...]`) entry: what the path sends from (an interface name or a local IP address) and,
/// before an `=`, the name the status page, `aggclient status` and the metrics call it by (`lte=wwan0`).
public struct PathSpec: Equatable, Sendable, CustomStringConvertible {
    /// The chosen name, or nil for none.
    public var name: String?
    /// The interface name or IP address.
    public var target: String

    public init(name: String? = nil, target: String) {
        self.name = name
        self.target = target
    }

    /// Parses `TARGET` or `NAME=TARGET`; nil when the name is not 1 to 32 letters, digits, '.', '_' or '-', or the
    /// target is empty. The first `=` splits: neither an IP address nor a usable interface name holds one.
    public init?(_ text: String) {
        guard let equals = text.firstIndex(of: "=") else {
            guard !text.isEmpty else { return nil }
            self.init(target: text)
            return
        }
        let name = String(text[..<equals])
        let target = String(text[text.index(after: equals)...])
        guard Self.isValidName(name), !target.isEmpty else { return nil }
        self.init(name: name, target: target)
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

    public var description: String { name.map { "\($0)=\(target)" } ?? target }
}
