/// Byte counts as config files and flags write them: a number of bytes, or whole binary units (`"64KiB"`,
/// `"4MiB"`, `"1GiB"`, optionally with a space before the unit).
public enum ByteCount {
    private static let units: [(suffix: String, bytes: Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]

    /// The count `text` spells, or nil.
    public static func parse(_ text: String) -> Int? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 15, let amount = Int(digits) else { return nil }
        var unitText = text.dropFirst(digits.count)
        if unitText.first == " " { unitText = unitText.dropFirst() }
        if unitText.isEmpty || unitText == "B" { return amount }
        guard let unit = units.first(where: { $0.suffix == unitText }) else { return nil }
        return amount * unit.bytes
    }

    /// `bytes` in the largest unit that divides it (`"4MiB"`), else as a plain number.
    public static func format(_ bytes: Int) -> String {
        for unit in units where bytes != 0 && bytes % unit.bytes == 0 { return "\(bytes / unit.bytes)\(unit.suffix)" }
        return String(bytes)
    }
}
