import SCTPEngine

/// Recognises host names that are really IP literals, in every spelling a resolver might accept.
///
/// `getaddrinfo` parses IPv4 like `inet_aton`: one to four parts, each decimal, octal (leading 0) or hex (0x);
/// the last part fills all remaining bytes. So "2130706433", "0177.0.0.1", "0x7f.1" and "127.1" all mean
/// 127.0.0.1. Egress must check these against the policy rather than let them slip past as "names".
public enum IPLiteral {
    /// The address `text` denotes as an IPv4 (inet_aton forms) or IPv6 literal (optionally bracketed, with an
    /// optional "%zone" that is ignored), or nil when it is a name. A single trailing dot is allowed on IPv4.
    public static func parse(_ text: String) -> SCTPIPAddress? {
        var body = Substring(text)
        if body.hasPrefix("["), body.hasSuffix("]") { body = body.dropFirst().dropLast() }
        if body.contains(":") {
            if let percent = body.firstIndex(of: "%") { body = body[..<percent] }
            return SCTPIPAddress(body)
        }
        if body.hasSuffix(".") { body = body.dropLast() }
        return parseInetAton(body).map { .v4($0) }
    }

    /// `inet_aton`'s grammar; nil when `text` is not an IPv4 literal.
    public static func parseInetAton(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            guard let value = parseNumber(part) else { return nil }
            values.append(value)
        }
        var result: UInt64 = 0
        for (i, value) in values.dropLast().enumerated() {
            guard value <= 0xFF else { return nil }
            result |= value << UInt64(24 - 8 * i)
        }
        let lastBits = 32 - 8 * (values.count - 1)
        guard let last = values.last, last < (UInt64(1) << UInt64(lastBits)) else { return nil }
        return UInt32(result | last)
    }

    /// One inet_aton part: "0x1F" (hex), "017" (octal), "17" (decimal). Nil on anything else or overflow.
    private static func parseNumber(_ part: Substring) -> UInt64? {
        guard !part.isEmpty, part.allSatisfy(\.isASCII) else { return nil }
        var digits = part
        var radix = 10
        if digits.count >= 2, digits.first == "0", digits.dropFirst().first == "x" || digits.dropFirst().first == "X" {
            digits = digits.dropFirst(2)
            radix = 16
            if digits.isEmpty { return 0 }  // inet_aton accepts a bare "0x" as zero.
        } else if digits.count >= 2, digits.first == "0" {
            digits = digits.dropFirst()
            radix = 8
        }
        guard let value = UInt64(digits, radix: radix) else { return nil }
        return value
    }
}
