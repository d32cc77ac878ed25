/// Reads TOML text byte by byte into `TOMLDocument`'s entries, keeping the line of everything, and refuses what
/// it does not support or what is malformed with an error naming the line.
struct TOMLParser {
    /// What a dotted path is so far: a table (from a header, implied by a header or by dotted keys) or a value.
    private enum Node {
        case table(line: Int, origin: TableOrigin)
        case value(line: Int)
    }

    private enum TableOrigin {
        case header, impliedByHeader, dottedKey
    }

    private let bytes: [UInt8]
    private let path: String
    private var index = 0
    private var line = 1
    private var currentTable: [String] = []
    private var nodes: [[String]: Node] = [:]
    private(set) var entries: [TOMLDocument.Entry] = []
    private(set) var tableHeaders: [(key: [String], line: Int)] = []
    /// The `[[name]]` element keys go into, until the next header: its name and the index of its entry.
    private var arrayTable: (key: [String], entry: Int)?
    /// The entry of every top-level array of tables, by name.
    private var arrayTableEntries: [[String]: Int] = [:]

    init(text: String, path: String) {
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }  // A UTF-8 byte order mark.
        self.bytes = bytes
        self.path = path
    }

    // MARK: - Document and lines

    mutating func parseDocument() throws(ConfigError) {
        while true {
            skipWhitespace()
            guard let byte = peek() else { return }
            switch byte {
            case UInt8(ascii: "#"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                try finishLine()
            case UInt8(ascii: "["):
                try parseTableHeader()
            default:
                try parseKeyValue()
            }
        }
    }

    /// After a header or a value: optional spaces and comment, then a newline or the end.
    private mutating func finishLine() throws(ConfigError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "#") { try skipComment() }
        guard let byte = peek() else { return }
        if byte == UInt8(ascii: "\n") {
            index += 1
            line += 1
        } else if byte == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") {
            index += 2
            line += 1
        } else {
            throw error("expected the end of the line, found \(describeHere())")
        }
    }

    private mutating func skipComment() throws(ConfigError) {
        while let byte = peek(), byte != UInt8(ascii: "\n") {
            if byte == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") { return }
            if isForbiddenControl(byte) { throw error("control character 0x\(hex(byte)) in a comment") }
            index += 1
        }
    }

    private mutating func parseTableHeader() throws(ConfigError) {
        let headerLine = line
        index += 1  // [
        if peek() == UInt8(ascii: "[") {
            index += 1
            try parseArrayTableHeader(line: headerLine)
            return
        }
        arrayTable = nil
        skipWhitespace()
        let key = try parseKey(context: "table header")
        skipWhitespace()
        guard peek() == UInt8(ascii: "]") else {
            throw error("bad table header: expected ']' after [\(TOMLDocument.name(of: key)), found \(describeHere())")
        }
        index += 1
        try declareTable(key, line: headerLine)
        currentTable = key
        tableHeaders.append((key, headerLine))
        try finishLine()
    }

    /// `[[name]]`: a new element (a table) of the array `name`, which the keys up to the next header fill. Only
    /// top-level names and plain keys inside, which is all agg's `[[path]]` tables need.
    private mutating func parseArrayTableHeader(line headerLine: Int) throws(ConfigError) {
        skipWhitespace()
        let key = try parseKey(context: "table header")
        skipWhitespace()
        guard peek() == UInt8(ascii: "]"), peek(1) == UInt8(ascii: "]") else {
            throw error(
                "bad table header: expected ']]' after [[\(TOMLDocument.name(of: key)), found \(describeHere())")
        }
        index += 2
        guard key.count == 1 else {
            throw error("[[\(TOMLDocument.name(of: key))]]: only top-level arrays of tables are supported")
        }
        let element = TOMLValue(.table([]), line: headerLine)
        if let entry = arrayTableEntries[key] {
            guard case .array(var elements) = entries[entry].value.kind else { preconditionFailure("not an array") }
            elements.append(element)
            entries[entry].value.kind = .array(elements)
            arrayTable = (key, entry)
        } else {
            try declareValue(key, dottedFrom: 0, line: headerLine)
            entries.append(TOMLDocument.Entry(key: key, value: TOMLValue(.array([element]), line: headerLine)))
            arrayTableEntries[key] = entries.count - 1
            arrayTable = (key, entries.count - 1)
        }
        currentTable = []
        try finishLine()
    }

    /// A `key = value` line inside a `[[name]]` element.
    private mutating func addToArrayTable(_ key: [String], _ value: TOMLValue, entry: Int) throws(ConfigError) {
        guard case .array(var elements) = entries[entry].value.kind, let last = elements.last,
            case .table(var members) = last.kind
        else { preconditionFailure("an array table's entry is an array of tables") }
        let name = TOMLDocument.name(of: key)
        guard key.count == 1 else {
            throw error("\(name): dotted keys are not supported in [[\(entries[entry].name)]]", line: value.line)
        }
        if let first = members.first(where: { $0.key == key }) {
            throw error("duplicate key \(name) (first on line \(first.line))", line: value.line)
        }
        members.append(TOMLDocument.Entry(key: key, value: value))
        elements[elements.count - 1].kind = .table(members)
        entries[entry].value.kind = .array(elements)
    }

    private mutating func parseKeyValue() throws(ConfigError) {
        let keyLine = line
        let key = try parseKey(context: "key")
        skipWhitespace()
        guard peek() == UInt8(ascii: "=") else {
            throw error("expected '=' after the key \(TOMLDocument.name(of: key)), found \(describeHere())")
        }
        index += 1
        skipWhitespace()
        guard peek() != nil, peek() != UInt8(ascii: "\n"), peek() != UInt8(ascii: "\r"), peek() != UInt8(ascii: "#")
        else { throw error("missing value after \(TOMLDocument.name(of: key)) =") }
        let value = try parseValue()
        if let arrayTable {
            try addToArrayTable(key, value, entry: arrayTable.entry)
            try finishLine()
            return
        }
        let fullKey = currentTable + key
        try declareValue(fullKey, dottedFrom: currentTable.count, line: keyLine)
        entries.append(TOMLDocument.Entry(key: fullKey, value: value))
        try finishLine()
    }

    // MARK: - Key structure (duplicates, a key that is both a table and a value)

    private mutating func declareTable(_ key: [String], line: Int) throws(ConfigError) {
        for length in 1..<key.count {
            let prefix = Array(key.prefix(length))
            switch nodes[prefix] {
            case .value(let first):
                throw error("\(TOMLDocument.name(of: prefix)) is a value (line \(first)), not a table", line: line)
            case .table: continue
            case nil: nodes[prefix] = .table(line: line, origin: .impliedByHeader)
            }
        }
        let name = TOMLDocument.name(of: key)
        switch nodes[key] {
        case .value(let first):
            throw error("[\(name)]: \(name) is already a value (line \(first))", line: line)
        case .table(let first, .header):
            throw error("duplicate table [\(name)] (first on line \(first))", line: line)
        case .table(let first, .dottedKey):
            throw error("[\(name)]: the table was already defined by dotted keys on line \(first)", line: line)
        case .table(_, .impliedByHeader), nil:
            nodes[key] = .table(line: line, origin: .header)
        }
    }

    /// Declares a value at `key`; the components after the first `dottedFrom` came from a dotted key and define
    /// tables implicitly.
    private mutating func declareValue(_ key: [String], dottedFrom: Int, line: Int) throws(ConfigError) {
        for length in max(dottedFrom, 1)..<key.count {
            let prefix = Array(key.prefix(length))
            switch nodes[prefix] {
            case .value(let first):
                throw error(
                    "cannot set \(TOMLDocument.name(of: key)): \(TOMLDocument.name(of: prefix)) is a value (line \(first))",
                    line: line)
            case .table(let first, .header) where length > dottedFrom,
                .table(let first, .impliedByHeader) where length > dottedFrom:
                throw error(
                    "cannot set \(TOMLDocument.name(of: key)) with a dotted key: [\(TOMLDocument.name(of: prefix))] "
                        + "is a table header (line \(first))", line: line)
            case .table: continue
            case nil: nodes[prefix] = .table(line: line, origin: .dottedKey)
            }
        }
        switch nodes[key] {
        case .value(let first):
            throw error("duplicate key \(TOMLDocument.name(of: key)) (first on line \(first))", line: line)
        case .table(let first, _):
            throw error("\(TOMLDocument.name(of: key)) is already a table (line \(first))", line: line)
        case nil:
            nodes[key] = .value(line: line)
        }
    }

    // MARK: - Keys

    /// A simple or dotted key: bare (`A-Z a-z 0-9 _ -`) or quoted components separated by dots.
    private mutating func parseKey(context: String) throws(ConfigError) -> [String] {
        var components: [String] = []
        while true {
            skipWhitespace()
            guard let byte = peek() else { throw error("expected a \(context), found the end of the file") }
            switch byte {
            case UInt8(ascii: "\""):
                components.append(try parseBasicString())
            case UInt8(ascii: "'"):
                components.append(try parseLiteralString())
            case _ where isBareKeyByte(byte):
                let start = index
                while let next = peek(), isBareKeyByte(next) { index += 1 }
                components.append(String(decoding: bytes[start..<index], as: UTF8.self))
            default:
                throw error("expected a \(context), found \(describeHere())")
            }
            skipWhitespace()
            guard peek() == UInt8(ascii: ".") else { return components }
            index += 1
        }
    }

    private func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    // MARK: - Values

    private mutating func parseValue() throws(ConfigError) -> TOMLValue {
        let valueLine = line
        guard let byte = peek() else { throw error("expected a value, found the end of the file") }
        switch byte {
        case UInt8(ascii: "\""):
            return TOMLValue(.string(try parseBasicString()), line: valueLine)
        case UInt8(ascii: "'"):
            return TOMLValue(.string(try parseLiteralString()), line: valueLine)
        case UInt8(ascii: "["):
            return TOMLValue(.array(try parseArray()), line: valueLine)
        case UInt8(ascii: "{"):
            throw error("inline tables ({...}) are not supported; use a [table] header")
        default:
            return TOMLValue(try parseBareValue(), line: valueLine)
        }
    }

    private mutating func parseArray() throws(ConfigError) -> [TOMLValue] {
        let openLine = line
        index += 1  // [
        var elements: [TOMLValue] = []
        while true {
            try skipArraySpace(openLine: openLine)
            if peek() == UInt8(ascii: "]") {
                index += 1
                return elements
            }
            elements.append(try parseValue())
            try skipArraySpace(openLine: openLine)
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                return elements
            default:
                throw error("expected ',' or ']' in the array, found \(describeHere())")
            }
        }
    }

    /// Spaces, newlines and comments between array elements.
    private mutating func skipArraySpace(openLine: Int) throws(ConfigError) {
        while true {
            skipWhitespace()
            switch peek() {
            case nil:
                throw error("unterminated array: no ']' for the '[' opened on line \(openLine)")
            case UInt8(ascii: "#"):
                try skipComment()
            case UInt8(ascii: "\n"):
                index += 1
                line += 1
            case UInt8(ascii: "\r") where peek(1) == UInt8(ascii: "\n"):
                index += 2
                line += 1
            default:
                return
            }
        }
    }

    /// A `"basic string"` with escapes.
    private mutating func parseBasicString() throws(ConfigError) -> String {
        if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
            throw error("multi-line strings (\"\"\"...\"\"\") are not supported")
        }
        index += 1
        var scalars = String.UnicodeScalarView()
        var start = index
        func flush(_ parser: TOMLParser, _ scalars: inout String.UnicodeScalarView, upTo end: Int) {
            scalars.append(contentsOf: String(decoding: parser.bytes[start..<end], as: UTF8.self).unicodeScalars)
        }
        while true {
            guard let byte = peek(), byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "\r") else {
                throw error("unterminated string: no closing '\"' on this line")
            }
            switch byte {
            case UInt8(ascii: "\""):
                flush(self, &scalars, upTo: index)
                index += 1
                return String(scalars)
            case UInt8(ascii: "\\"):
                flush(self, &scalars, upTo: index)
                scalars.append(try parseEscape())
                start = index
            case _ where isForbiddenControl(byte):
                throw error("control character 0x\(hex(byte)) in a string: write it as an escape (\\u00\(hex(byte))")
            default:
                index += 1
            }
        }
    }

    /// After a backslash: `\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`.
    private mutating func parseEscape() throws(ConfigError) -> Unicode.Scalar {
        index += 1  // backslash
        guard let byte = peek() else { throw error("unterminated string: no closing '\"' on this line") }
        index += 1
        switch byte {
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = byte == UInt8(ascii: "u") ? 4 : 8
            let digits = bytes[index..<min(index + count, bytes.count)]
            guard digits.count == count, let value = UInt32(String(decoding: digits, as: UTF8.self), radix: 16),
                let scalar = Unicode.Scalar(value)
            else {
                throw error(
                    "bad escape \\\(Character(Unicode.Scalar(byte))): expected \(count) hex digits of a "
                        + "Unicode scalar value")
            }
            index += count
            return scalar
        default:
            let shown =
                byte < 0x80 && !isForbiddenControl(byte) ? String(Character(Unicode.Scalar(byte))) : "0x" + hex(byte)
            throw error("bad escape \\\(shown) in a string: use \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX or \\UXXXXXXXX")
        }
    }

    /// A `'literal string'`: no escapes.
    private mutating func parseLiteralString() throws(ConfigError) -> String {
        if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
            throw error("multi-line strings ('''...''') are not supported")
        }
        index += 1
        let start = index
        while true {
            guard let byte = peek(), byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "\r") else {
                throw error("unterminated string: no closing \"'\" on this line")
            }
            if byte == UInt8(ascii: "'") { break }
            if isForbiddenControl(byte) { throw error("control character 0x\(hex(byte)) in a string") }
            index += 1
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        index += 1
        return text
    }

    /// `true`, `false`, an integer or a float: a run of the characters they are made of, then classified.
    private mutating func parseBareValue() throws(ConfigError) -> TOMLValue.Kind {
        let start = index
        while let byte = peek(), isBareValueByte(byte) { index += 1 }
        let token = String(decoding: bytes[start..<index], as: UTF8.self)
        guard !token.isEmpty else { throw error("expected a value, found \(describeHere())") }
        if token == "true" { return .boolean(true) }
        if token == "false" { return .boolean(false) }
        if let integer = try integer(token) { return .integer(integer) }
        if let float = float(token) { return .float(float) }
        if isDateLike(token) { throw error("dates and times (\(token)) are not supported; use a string") }
        throw error("expected a value (a \"string\" in quotes, a number, true, false or an [array]), found \(token)")
    }

    private func isBareValueByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"),
            UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    /// Decimal (`+1_000`, `-5`, no leading zeros) or `0x`/`0o`/`0b` integers; nil if `token` is not one, an error
    /// if it is one that does not fit in 64 bits.
    private func integer(_ token: String) throws(ConfigError) -> Int64? {
        var text = Substring(token)
        var radix = 10
        for (prefix, base) in [("0x", 16), ("0o", 8), ("0b", 2)] where text.hasPrefix(prefix) {
            text = text.dropFirst(2)
            radix = base
        }
        var negative = false
        if radix == 10, let sign = text.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            text = text.dropFirst()
        }
        guard let digits = Self.digitsWithUnderscores(text, radix: radix) else { return nil }
        if radix == 10, digits.count > 1, digits.hasPrefix("0") { return nil }
        guard let magnitude = UInt64(digits, radix: radix),
            let value = negative
                ? (magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil)
                : Int64(exactly: magnitude)
        else {
            throw error("integer \(token) is out of range (a signed 64-bit integer)")
        }
        return value
    }

    /// `1.5`, `-2e3`, `6.02_2e+23`, `inf`, `-nan`; nil if `token` is not a float.
    private func float(_ token: String) -> Double? {
        var text = Substring(token)
        var sign = ""
        if let first = text.first, first == "+" || first == "-" {
            sign = first == "-" ? "-" : ""
            text = text.dropFirst()
        }
        if text == "inf" { return sign == "-" ? -.infinity : .infinity }
        if text == "nan" { return .nan }
        var mantissa = text
        var exponent: Substring?
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = text[text.index(after: e)...]
        }
        var integerPart = mantissa
        var fraction: Substring?
        if let dot = mantissa.firstIndex(of: ".") {
            integerPart = mantissa[..<dot]
            fraction = mantissa[mantissa.index(after: dot)...]
        }
        guard fraction != nil || exponent != nil,
            let integerDigits = Self.digitsWithUnderscores(integerPart, radix: 10),
            integerDigits.count == 1 || !integerDigits.hasPrefix("0")
        else { return nil }
        var normalized = sign + integerDigits
        if let fraction {
            guard let digits = Self.digitsWithUnderscores(fraction, radix: 10) else { return nil }
            normalized += "." + digits
        }
        if var exponent {
            var exponentSign = ""
            if let first = exponent.first, first == "+" || first == "-" {
                exponentSign = String(first)
                exponent = exponent.dropFirst()
            }
            guard let digits = Self.digitsWithUnderscores(exponent, radix: 10) else { return nil }
            normalized += "e" + exponentSign + digits
        }
        return Double(normalized)
    }

    /// The digits of `text` with single underscores between digits removed; nil if empty, a non-digit, or a
    /// misplaced underscore.
    private static func digitsWithUnderscores(_ text: Substring, radix: Int) -> String? {
        guard let first = text.first, let last = text.last, first != "_", last != "_", !text.contains("__") else {
            return nil
        }
        let digits = text.filter { $0 != "_" }
        guard digits.allSatisfy({ $0.isASCII && $0.hexDigitValue.map { $0 < radix } == true }) else { return nil }
        return String(digits)
    }

    private func isDateLike(_ token: String) -> Bool {
        let bytes = Array(token.utf8)
        let isDate = bytes.count >= 10 && bytes[4] == UInt8(ascii: "-") && bytes[7] == UInt8(ascii: "-")
        let isTime = bytes.count >= 5 && bytes[2] == UInt8(ascii: ":")
        return (isDate || isTime) && bytes.first.map { (0x30...0x39).contains($0) } == true
    }

    // MARK: - Bytes

    private func peek(_ offset: Int = 0) -> UInt8? {
        index + offset < bytes.count ? bytes[index + offset] : nil
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
    }

    /// TOML allows no control characters but tab in strings and comments.
    private func isForbiddenControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F
    }

    private func hex(_ byte: UInt8) -> String {
        (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
    }

    /// What sits at the current position, for "found ..." in messages.
    private func describeHere() -> String {
        guard let byte = peek() else { return "the end of the file" }
        if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { return "the end of the line" }
        var end = index
        while end < bytes.count, end - index < 20, bytes[end] != UInt8(ascii: "\n"), bytes[end] != UInt8(ascii: "\r") {
            end += 1
        }
        return "'" + String(decoding: bytes[index..<end], as: UTF8.self) + "'"
    }

    private func error(_ message: String, line: Int? = nil) -> ConfigError {
        ConfigError(path: path, line: line ?? self.line, message)
    }
}
