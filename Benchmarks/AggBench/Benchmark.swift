#if canImport(Glibc)
    import Glibc
#else
    #error("agg-bench runs on Linux")
#endif

/// One `agg-bench` subcommand: a name, a one-line summary and a body that parses its own options.
protocol Benchmark {
    static var name: String { get }
    static var summary: String { get }
    static func run(arguments: [String]) throws(UsageError)
}

/// A command line the benchmark could not understand.
struct UsageError: Error, CustomStringConvertible {
    var description: String
}

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

/// Lets `print(_:to:)` write to stderr.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }
}

extension String {
    /// Pads on the right to `width` characters, for table columns.
    func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    /// Pads on the left to `width` characters, for right-aligned numbers.
    func leftPadded(to width: Int, with pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

// MARK: - Options

/// Minimal `--flag value` parsing shared by the subcommands.
struct Options {
    private var values: [String: String] = [:]
    private(set) var wantsHelp = false

    init(_ arguments: [String], known: Set<String>) throws(UsageError) {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "-h" || argument == "--help" {
                wantsHelp = true
                index += 1
                continue
            }
            guard argument.hasPrefix("--") else { throw UsageError(description: "unexpected argument '\(argument)'") }
            let key = String(argument.dropFirst(2))
            guard known.contains(key) else { throw UsageError(description: "unknown option '\(argument)'") }
            guard index + 1 < arguments.endIndex else { throw UsageError(description: "\(argument) needs a value") }
            values[key] = arguments[index + 1]
            index += 2
        }
    }

    func string(_ key: String) -> String? { values[key] }

    func double(_ key: String, default value: Double) throws(UsageError) -> Double {
        try double(key) ?? value
    }

    func double(_ key: String) throws(UsageError) -> Double? {
        guard let text = values[key] else { return nil }
        guard let parsed = Double(text), parsed > 0 else {
            throw UsageError(description: "--\(key) needs a positive number, got '\(text)'")
        }
        return parsed
    }

    func int(_ key: String, default value: Int) throws(UsageError) -> Int {
        try int(key) ?? value
    }

    func int(_ key: String) throws(UsageError) -> Int? {
        guard let text = values[key] else { return nil }
        guard let parsed = Int(text), parsed > 0 else {
            throw UsageError(description: "--\(key) needs a positive integer, got '\(text)'")
        }
        return parsed
    }
}
