/// Names one destination path (peer address plus the local address we send from) inside an association.
public struct PathID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: Int

    @inlinable public init(rawValue: Int) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: Int) { self.rawValue = rawValue }

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "path#\(rawValue)" }
}
