/// Human-readable figures for the status table: rates in bit/s, byte counts, durations, percentages.
package enum StatusFormat {
    /// A rate given in bytes per second, in bits per second: "0 bit/s", "840 kbit/s", "12.3 Mbit/s", "1.05 Gbit/s".
    package static func rate(bytesPerSecond: Double) -> String {
        let bits = max(bytesPerSecond, 0) * 8
        if bits < 1000 { return "\(Int(bits.rounded())) bit/s" }
        if bits < 1e6 { return "\(Int((bits / 1e3).rounded())) kbit/s" }
        if bits < 1e9 { return decimal(bits / 1e6, digits: 1) + " Mbit/s" }
        return decimal(bits / 1e9, digits: 2) + " Gbit/s"
    }

    /// A rate given in bytes per second, in at most 9 characters for the status table: "0 b/s", "840 kb/s",
    /// "12.3 Mb/s", "512 Mb/s", "1.05 Gb/s", "12.5 Gb/s", "104 Gb/s".
    static func shortRate(bytesPerSecond: Double) -> String {
        let bits = max(bytesPerSecond, 0) * 8
        if bits < 1000 { return "\(Int(bits.rounded())) b/s" }
        if bits < 999_500 { return "\(Int((bits / 1e3).rounded())) kb/s" }
        if bits < 99_950_000 { return decimal(bits / 1e6, digits: 1) + " Mb/s" }
        if bits < 999_500_000 { return "\(Int((bits / 1e6).rounded())) Mb/s" }
        if bits < 9_995_000_000 { return decimal(bits / 1e9, digits: 2) + " Gb/s" }
        if bits < 99_950_000_000 { return decimal(bits / 1e9, digits: 1) + " Gb/s" }
        return "\(Int((bits / 1e9).rounded())) Gb/s"
    }

    /// "512 B", "12.0 KiB", "3.4 MiB", "1.2 GiB".
    package static func bytes(_ count: Int) -> String {
        let value = Double(max(count, 0))
        if value < 1024 { return "\(count) B" }
        if value < 1024 * 1024 { return decimal(value / 1024, digits: 1) + " KiB" }
        if value < 1024 * 1024 * 1024 { return decimal(value / 1024 / 1024, digits: 1) + " MiB" }
        return decimal(value / 1024 / 1024 / 1024, digits: 1) + " GiB"
    }

    /// A round-trip time: "0.4 ms", "23 ms", "-" when unknown.
    static func milliseconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return value < 10 ? decimal(value, digits: 1) + " ms" : "\(Int(value.rounded())) ms"
    }

    /// A fraction as a percentage: "0.0%", "12.5%", "100%".
    package static func percent(_ fraction: Double) -> String {
        let value = min(max(fraction, 0), 1) * 100
        return value >= 99.95 ? "100%" : decimal(value, digits: 1) + "%"
    }

    /// Seconds as "42s", "5m07s", "3h02m".
    static func duration(_ seconds: Double) -> String {
        let total = Int(max(seconds, 0))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m" + pad(total % 60) + "s" }
        return "\(total / 3600)h" + pad(total / 60 % 60) + "m"
    }

    /// `value` with exactly `digits` digits after the point, rounded half up.
    package static func decimal(_ value: Double, digits: Int) -> String {
        var scale = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int((value * Double(scale)).rounded())
        let whole = scaled / scale
        let fraction = String(scaled % scale)
        return digits == 0
            ? "\(whole)" : "\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
    }

    private static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
