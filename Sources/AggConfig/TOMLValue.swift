/// One value of a TOML document with the line it starts on, so whoever reads it can say where a wrong value is.
public struct TOMLValue: Equatable, Sendable {
    /// What the value is; arrays hold values with their own lines (a multi-line array spans several).
    public enum Kind: Equatable, Sendable {
        case string(String)
        case integer(Int64)
        case float(Double)
        case boolean(Bool)
        case array([TOMLValue])
        /// One element of an array of tables (`[[path]]`): its keys and values in file order.
        case table([TOMLDocument.Entry])
    }

    public var kind: Kind
    public var line: Int

    public init(_ kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
    }

    /// "a string", "an integer", ...: what a "found ..." in an error message says.
    public var typeDescription: String {
        switch kind {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .boolean: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }

    /// The value as TOML would write it, for error messages ("found 1.5", "found \"eth0\"").
    public var literal: String {
        switch kind {
        case .string(let text): return TOMLValue.quoted(text)
        case .integer(let number): return String(number)
        case .float(let number): return String(number)
        case .boolean(let flag): return String(flag)
        case .array(let elements): return "[" + elements.map(\.literal).joined(separator: ", ") + "]"
        case .table(let members):
            return "{ " + members.map { "\($0.name) = \($0.value.literal)" }.joined(separator: ", ") + " }"
        }
    }

    /// `text` as a TOML basic string: in double quotes, with `"`, `\` and control characters escaped.
    public static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
