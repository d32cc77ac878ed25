/// A strict parser of the Prometheus text exposition format (version 0.0.4) for the tests: every line must be a
/// `# HELP`, a `# TYPE`, another comment, empty, or a well-formed sample; a family's TYPE comes before its samples,
/// which are contiguous; no series appears twice; counters are never negative; the text ends with a newline.
/// Anything else throws with the line number, so a malformed `/metrics` answer fails the test that reads it.
struct PrometheusTextParser {
    /// One sample line.
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// What was wrong, and where.
    struct Failure: Error, CustomStringConvertible {
        var line: Int
        var reason: String
        var description: String { "line \(line): \(reason)" }
    }

    private(set) var samples: [Sample] = []
    private(set) var types: [String: String] = [:]
    private(set) var help: [String: String] = [:]

    init(_ text: String) throws {
        guard text.isEmpty || text.hasSuffix("\n") else { throw Failure(line: 0, reason: "no final newline") }
        var finished = Set<String>()
        var current: String?
        var seen = Set<String>()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            let number = index + 1
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard parts.count >= 3, parts[1] == "HELP" || parts[1] == "TYPE" else { continue }
                let name = String(parts[2])
                guard Self.isMetricName(name) else { throw Failure(line: number, reason: "bad metric name \(name)") }
                if parts[1] == "HELP" {
                    guard help[name] == nil else { throw Failure(line: number, reason: "second HELP for \(name)") }
                    help[name] = parts.count > 3 ? String(parts[3]) : ""
                } else {
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3])
                    else { throw Failure(line: number, reason: "bad TYPE line") }
                    guard types[name] == nil else { throw Failure(line: number, reason: "second TYPE for \(name)") }
                    guard !finished.contains(name), current != name else {
                        throw Failure(line: number, reason: "TYPE of \(name) after its samples")
                    }
                    types[name] = String(parts[3])
                }
                continue
            }
            let sample = try Self.parseSample(line, number: number)
            let family = Self.family(of: sample.name, types: types)
            if family != current {
                if let current { finished.insert(current) }
                guard !finished.contains(family) else {
                    throw Failure(line: number, reason: "samples of \(family) are not contiguous")
                }
                current = family
            }
            let key =
                sample.name + "{"
                + sample.labels.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: ",")
            guard seen.insert(key).inserted else { throw Failure(line: number, reason: "duplicate series \(key)") }
            if types[family] == "counter", !(sample.value >= 0) {
                throw Failure(line: number, reason: "counter \(sample.name) is \(sample.value)")
            }
            samples.append(sample)
        }
    }

    /// The samples named `name` whose labels include `labels`.
    func values(_ name: String, _ labels: [String: String] = [:]) -> [Double] {
        samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }.map(\.value)
    }

    /// The sum of `values(name, labels)`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double { values(name, labels).reduce(0, +) }

    // MARK: - Lines

    static func isMetricName(_ name: some StringProtocol) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_" || first == ":" else {
            return false
        }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
    }

    static func isLabelName(_ name: some StringProtocol) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_" else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    /// Histogram and summary samples (`_bucket`, `_sum`, `_count`) belong to their family.
    static func family(of name: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return name
    }

    static func parseSample(_ line: Substring, number: Int) throws -> Sample {
        var rest = line[...]
        let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
        let name = String(rest[..<nameEnd])
        guard isMetricName(name) else { throw Failure(line: number, reason: "bad metric name '\(name)'") }
        rest = rest[nameEnd...]
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                guard let equals = rest.firstIndex(of: "=") else {
                    throw Failure(line: number, reason: "label without =")
                }
                let label = String(rest[..<equals])
                guard isLabelName(label) else { throw Failure(line: number, reason: "bad label name '\(label)'") }
                rest = rest[rest.index(after: equals)...]
                guard rest.first == "\"" else { throw Failure(line: number, reason: "label value not quoted") }
                rest = rest.dropFirst()
                var value = ""
                while true {
                    guard let character = rest.first else { throw Failure(line: number, reason: "open label value") }
                    rest = rest.dropFirst()
                    if character == "\"" { break }
                    if character == "\\" {
                        guard let escaped = rest.first else { throw Failure(line: number, reason: "dangling \\") }
                        rest = rest.dropFirst()
                        switch escaped {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw Failure(line: number, reason: "bad escape \\\(escaped)")
                        }
                    } else {
                        value.append(character)
                    }
                }
                guard labels.updateValue(value, forKey: label) == nil else {
                    throw Failure(line: number, reason: "label \(label) twice")
                }
                if rest.first == "," {
                    rest = rest.dropFirst()
                } else if rest.first != "}" {
                    throw Failure(line: number, reason: "expected , or } after a label")
                }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw Failure(line: number, reason: "no space before the value") }
        let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 1 || fields.count == 2 else { throw Failure(line: number, reason: "bad value field") }
        guard let value = parseValue(fields[0]) else { throw Failure(line: number, reason: "bad value '\(fields[0])'") }
        if fields.count == 2, Int64(fields[1]) == nil { throw Failure(line: number, reason: "bad timestamp") }
        return Sample(name: name, labels: labels, value: value)
    }

    static func parseValue(_ text: Substring) -> Double? {
        switch text {
        case "NaN": return .nan
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        default:
            guard text.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }) else { return nil }
            return Double(text)
        }
    }
}
