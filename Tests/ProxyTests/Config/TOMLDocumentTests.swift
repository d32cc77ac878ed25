import AggConfig
import Testing

/// The TOML subset: every construct agg's config files may use, and malformed or unsupported input refused with
/// the right line.
@Suite struct TOMLDocumentTests {
    static func parse(_ text: String) throws -> TOMLDocument {
        try TOMLDocument(parsing: text, path: "test.toml")
    }

    static func value(_ text: String, _ key: String...) throws -> TOMLValue.Kind? {
        try parse(text).entry(key)?.value.kind
    }

    @Test func keysTablesCommentsAndLines() throws {
        let document = try Self.parse(
            """
            # leading comment

            name = "agg"   # trailing comment
            "quoted key" = 1
            'literal key' = 2
            dotted.inner = true
            a . b . c = 3
            [limits]
            credit = 4
              indented = 5
            [other.table]
            x = 6
            [ spaced ]
            y = 7
            """)
        let keys = document.entries.map { ($0.name, $0.line) }
        #expect(
            keys.map(\.0) == [
                "name", "\"quoted key\"", "\"literal key\"", "dotted.inner", "a.b.c", "limits.credit",
                "limits.indented", "other.table.x", "spaced.y",
            ])
        #expect(keys.map(\.1) == [3, 4, 5, 6, 7, 9, 10, 12, 14])
        #expect(document.entry(["quoted key"])?.value.kind == .integer(1))
        #expect(document.entry(["a", "b", "c"])?.value.kind == .integer(3))
        #expect(document.tables.map(\.key) == [["limits"], ["other", "table"], ["spaced"]])
        #expect(document.tables.map(\.line) == [8, 11, 13])
    }

    @Test func strings() throws {
        #expect(
            try Self.value(#"s = "a\tb\n\"q\" \\ \u00e9 \U0001F600 \b\f\r""#, "s")
                == .string("a\tb\n\"q\" \\ é 😀 \u{08}\u{0C}\r"))
        #expect(try Self.value(#"s = 'C:\path\no escapes'"#, "s") == .string(#"C:\path\no escapes"#))
        #expect(try Self.value(#"s = """#, "s") == .string(""))
        #expect(try Self.value("s = \"# not a comment\" # a comment", "s") == .string("# not a comment"))
        #expect(try Self.value("s = \"tab\tinside\"", "s") == .string("tab\tinside"))
        #expect(try Self.value("s = \"ünïcödé\"", "s") == .string("ünïcödé"))
    }

    @Test func integersFloatsAndBooleans() throws {
        let cases: [(String, TOMLValue.Kind)] = [
            ("42", .integer(42)), ("+7", .integer(7)), ("-17", .integer(-17)), ("0", .integer(0)),
            ("1_000_000", .integer(1_000_000)), ("0xFF", .integer(255)), ("0o17", .integer(15)),
            ("0b101", .integer(5)), ("9223372036854775807", .integer(.max)),
            ("-9223372036854775808", .integer(.min)),
            ("1.5", .float(1.5)), ("-0.25", .float(-0.25)), ("1e3", .float(1000)), ("6.5E-1", .float(0.65)),
            ("1_0.5", .float(10.5)), ("inf", .float(.infinity)), ("-inf", .float(-.infinity)),
            ("true", .boolean(true)), ("false", .boolean(false)),
        ]
        for (text, kind) in cases {
            #expect(try Self.value("v = \(text)", "v") == kind, "\(text)")
        }
        guard case .float(let nan) = try Self.value("v = nan", "v") else {
            Issue.record("nan is not a float")
            return
        }
        #expect(nan.isNaN)
    }

    @Test func arraysOverSeveralLinesKeepEachElementsLine() throws {
        let document = try Self.parse(
            """
            empty = []
            one = ["a"]
            mixed = [1, "two", true, [3, 4]]
            long = [
                "first",   # comment after an element
                # a comment line
                "second",
                "third",   # trailing comma next
            ]
            after = 1
            """)
        #expect(document.entry(["empty"])?.value.kind == .array([]))
        guard case .array(let mixed) = document.entry(["mixed"])?.value.kind else {
            Issue.record("mixed is not an array")
            return
        }
        #expect(mixed.map(\.kind).prefix(3) == [.integer(1), .string("two"), .boolean(true)])
        #expect(mixed[3].kind == .array([TOMLValue(.integer(3), line: 3), TOMLValue(.integer(4), line: 3)]))
        guard case .array(let long) = document.entry(["long"])?.value.kind else {
            Issue.record("long is not an array")
            return
        }
        #expect(long.map(\.kind) == [.string("first"), .string("second"), .string("third")])
        #expect(long.map(\.line) == [5, 7, 8])
        #expect(document.entry(["long"])?.line == 4)
        #expect(document.entry(["after"])?.line == 10)
    }

    @Test func crlfLineEndingsAndByteOrderMark() throws {
        let document = try Self.parse("\u{FEFF}a = 1\r\n# c\r\nb = [\r\n  2,\r\n]\r\n")
        #expect(document.entry(["a"])?.line == 1)
        #expect(document.entry(["b"])?.line == 3)
        #expect(document.entry(["b"])?.value.kind == .array([TOMLValue(.integer(2), line: 4)]))
    }

    @Test(arguments: [
        ("a = 1\ns = \"open", "test.toml:2: unterminated string: no closing '\"' on this line"),
        ("s = 'open\n", "test.toml:1: unterminated string: no closing \"'\" on this line"),
        ("a = 1\n\nb = 2\na = 3", "test.toml:4: duplicate key a (first on line 1)"),
        ("[t]\nx = 1\n[t]\ny = 2", "test.toml:3: duplicate table [t] (first on line 1)"),
        ("[t\nx = 1", "test.toml:1: bad table header: expected ']' after [t, found the end of the line"),
        ("[]", "test.toml:1: expected a table header, found ']'"),
        ("[t] x = 1", "test.toml:1: expected the end of the line, found 'x = 1'"),
        ("x = 1 2", "test.toml:1: expected the end of the line, found '2'"),
        ("x", "test.toml:1: expected '=' after the key x, found the end of the file"),
        ("x =", "test.toml:1: missing value after x ="),
        ("x = # nothing", "test.toml:1: missing value after x ="),
        ("= 1", "test.toml:1: expected a key, found '= 1'"),
        (
            "listen = 1.2.3.4:9899",
            "test.toml:1: expected a value (a \"string\" in quotes, a number, true, false or an [array]), found 1.2.3.4:9899"
        ),
        (
            "x = yes",
            "test.toml:1: expected a value (a \"string\" in quotes, a number, true, false or an [array]), found yes"
        ),
        (
            "x = 012",
            "test.toml:1: expected a value (a \"string\" in quotes, a number, true, false or an [array]), found 012"
        ),
        (
            "x = 1__0",
            "test.toml:1: expected a value (a \"string\" in quotes, a number, true, false or an [array]), found 1__0"
        ),
        (
            "x = 9223372036854775808",
            "test.toml:1: integer 9223372036854775808 is out of range (a signed 64-bit integer)"
        ),
        ("x = [1, 2", "test.toml:1: unterminated array: no ']' for the '[' opened on line 1"),
        ("x = [\n 1\n 2\n]", "test.toml:3: expected ',' or ']' in the array, found '2'"),
        (
            "x = \"bad \\q escape\"",
            "test.toml:1: bad escape \\q in a string: use \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX or \\UXXXXXXXX"
        ),
        ("x = \"\\u12\"", "test.toml:1: bad escape \\u: expected 4 hex digits of a Unicode scalar value"),
        ("x = \"\\uD800\"", "test.toml:1: bad escape \\u: expected 4 hex digits of a Unicode scalar value"),
        ("a = 1\na.b = 2", "test.toml:2: cannot set a.b: a is a value (line 1)"),
        ("a.b = 1\na = 2", "test.toml:2: a is already a table (line 1)"),
        ("a = 1\n[a]", "test.toml:2: [a]: a is already a value (line 1)"),
        ("a.b = 1\n[a]", "test.toml:2: [a]: the table was already defined by dotted keys on line 1"),
        ("a = 1\n[a.b]", "test.toml:2: a is a value (line 1), not a table"),
        ("[a.b]\n[a]\nb.c = 1", "test.toml:3: cannot set a.b.c with a dotted key: [a.b] is a table header (line 1)"),
    ])
    func malformedInputNamesTheLine(_ text: String, _ message: String) {
        #expect(throws: ConfigError(path: "test.toml", line: Self.line(of: message), Self.text(of: message))) {
            try Self.parse(text)
        }
    }

    @Test(arguments: [
        ("x = \"\"\"multi\"\"\"", "test.toml:1: multi-line strings (\"\"\"...\"\"\") are not supported"),
        ("x = '''multi'''", "test.toml:1: multi-line strings ('''...''') are not supported"),
        ("a = 1\nx = { y = 1 }", "test.toml:2: inline tables ({...}) are not supported; use a [table] header"),
        ("[[a.b]]", "test.toml:1: [[a.b]]: only top-level arrays of tables are supported"),
        ("d = 2024-01-01", "test.toml:1: dates and times (2024-01-01) are not supported; use a string"),
        ("t = 07:32:00", "test.toml:1: dates and times (07:32:00) are not supported; use a string"),
    ])
    func unsupportedTOMLIsRefusedWithItsLine(_ text: String, _ message: String) {
        #expect(throws: ConfigError(path: "test.toml", line: Self.line(of: message), Self.text(of: message))) {
            try Self.parse(text)
        }
    }

    @Test func controlCharactersAreRefused() {
        #expect(throws: ConfigError.self) { try Self.parse("x = \"a\u{01}b\"") }
        #expect(throws: ConfigError.self) { try Self.parse("# comment \u{7F}\nx = 1") }
    }

    @Test func quotingRoundTripsThroughTheParser() throws {
        for text in ["plain", "with \"quotes\"", "back\\slash", "new\nline", "tab\t", "bell\u{07}", "é"] {
            #expect(try Self.value("s = \(TOMLValue.quoted(text))", "s") == .string(text))
        }
        #expect(TOMLDocument.name(of: ["limits", "stream-credit"]) == "limits.stream-credit")
        #expect(TOMLDocument.name(of: ["odd key", "x"]) == "\"odd key\".x")
    }

    // "file:LINE: message" split for `ConfigError(path:line:_:)`.
    static func line(of message: String) -> Int {
        Int(message.split(separator: ":")[1])!
    }

    static func text(of message: String) -> String {
        let parts = message.split(separator: ":", maxSplits: 2)
        return String(parts[2].dropFirst())
    }
}
