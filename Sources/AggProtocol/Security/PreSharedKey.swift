/// A named 256-bit key shared by one client and the server.
public struct PreSharedKey: Hashable, Sendable, CustomStringConvertible {
    /// The client's name, as sent in AUTH (letters, digits, '.', '_' and '-'; at most 64 bytes).
    public var name: String
    /// 32 key bytes.
    public var key: [UInt8]

    public static let keyLength = 32

    public init(name: String, key: [UInt8]) {
        self.name = name
        self.key = key
    }

    /// Never prints the key itself.
    public var description: String { "PreSharedKey(\(name))" }
}
