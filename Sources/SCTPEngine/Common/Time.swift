/// Monotonic instants and durations of the engine. The engine never reads a clock: callers pass `now` in.

/// A duration in nanoseconds.
public struct SCTPDuration: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64
    @inlinable public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    @inlinable public static func nanoseconds(_ n: Int64) -> Self { Self(nanoseconds: n) }
    @inlinable public static func microseconds(_ n: Int64) -> Self { Self(nanoseconds: n * 1_000) }
    @inlinable public static func milliseconds(_ n: Int64) -> Self { Self(nanoseconds: n * 1_000_000) }
    @inlinable public static func seconds(_ n: Int64) -> Self { Self(nanoseconds: n * 1_000_000_000) }
    public static let zero = Self(nanoseconds: 0)

    @inlinable public var milliseconds: Int64 { nanoseconds / 1_000_000 }
    @inlinable public var seconds: Double { Double(nanoseconds) / 1e9 }

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }
    @inlinable public static func + (a: Self, b: Self) -> Self { Self(nanoseconds: a.nanoseconds + b.nanoseconds) }
    @inlinable public static func - (a: Self, b: Self) -> Self { Self(nanoseconds: a.nanoseconds - b.nanoseconds) }
    @inlinable public static func * (a: Self, b: Int64) -> Self { Self(nanoseconds: a.nanoseconds * b) }
    @inlinable public static func / (a: Self, b: Int64) -> Self { Self(nanoseconds: a.nanoseconds / b) }

    public var description: String {
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        return "\(Double(nanoseconds) / 1e6)ms"
    }
}

/// A point on the caller's monotonic clock, in nanoseconds from an arbitrary origin.
public struct SCTPTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64
    @inlinable public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static let zero = Self(nanoseconds: 0)
    /// Later than any real deadline.
    public static let distantFuture = Self(nanoseconds: .max)

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }
    @inlinable public static func + (a: Self, b: SCTPDuration) -> Self {
        let (sum, overflow) = a.nanoseconds.addingReportingOverflow(b.nanoseconds)
        return Self(nanoseconds: overflow ? .max : sum)
    }
    @inlinable public static func - (a: Self, b: SCTPDuration) -> Self { Self(nanoseconds: a.nanoseconds - b.nanoseconds) }
    @inlinable public static func - (a: Self, b: Self) -> SCTPDuration { SCTPDuration(nanoseconds: a.nanoseconds - b.nanoseconds) }

    public var description: String { "t=\(Double(nanoseconds) / 1e6)ms" }
}
