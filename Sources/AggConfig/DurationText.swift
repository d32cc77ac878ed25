/// Durations as config files and flags write them: whole amounts with units, `"300s"`, `"10m"`, `"1h30m"`,
/// `"500ms"`, or a bare number of seconds (`"10"`).
public enum DurationText {
    /// The longest duration accepted, in seconds (about 31 years): far above any timeout, far from overflow.
    public static let maxSeconds: Int64 = 1_000_000_000

    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    /// The duration `text` spells, or nil.
    public static func parse(_ text: String) -> Duration? {
        if let seconds = Int64(text), seconds >= 0, seconds <= maxSeconds { return .seconds(seconds) }
        var rest = Substring(text)
        var total: Int64 = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 12, let amount = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix { $0.isASCII && $0.isLetter }
            guard let unit = units.first(where: { $0.suffix == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += amount * unit.milliseconds
            guard total <= maxSeconds * 1000 else { return nil }
        }
        return .milliseconds(total)
    }

    /// `duration` in the units above, largest first (`"1h30m"`, `"10s"`, `"1s500ms"`); below a millisecond is lost.
    public static func format(_ duration: Duration) -> String {
        var milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        guard milliseconds > 0 else { return "0s" }
        var text = ""
        for unit in units where milliseconds >= unit.milliseconds {
            text += "\(milliseconds / unit.milliseconds)\(unit.suffix)"
            milliseconds %= unit.milliseconds
        }
        return text
    }
}
