/// Serial-number types of RFC 9260 with RFC 1982 comparison, each a distinct type so a TSN is never mistaken for an SSN.

/// A 32-bit serial number that compares by RFC 1982 serial arithmetic.
public protocol SerialNumber32: Hashable, Sendable, CustomStringConvertible {
    var rawValue: UInt32 { get }
    init(_ rawValue: UInt32)
}

extension SerialNumber32 {
    /// RFC 1982 §3.2: `self` precedes `other` when the forward distance from `self` to `other` is below 2^31.
    @inlinable public func isBefore(_ other: Self) -> Bool {
        rawValue != other.rawValue && other.rawValue &- rawValue < 0x8000_0000
    }
    @inlinable public func isAfter(_ other: Self) -> Bool { other.isBefore(self) }
    @inlinable public func isAtOrBefore(_ other: Self) -> Bool { self == other || isBefore(other) }
    @inlinable public func isAtOrAfter(_ other: Self) -> Bool { self == other || isAfter(other) }
    @inlinable public func advanced(by n: UInt32) -> Self { Self(rawValue &+ n) }
    @inlinable public var next: Self { advanced(by: 1) }
    @inlinable public var previous: Self { Self(rawValue &- 1) }
    /// The forward distance from `other` to `self` (wrapping).
    @inlinable public func distance(from other: Self) -> UInt32 { rawValue &- other.rawValue }
    /// How far `self` is after `other` by RFC 1982 serial arithmetic: negative when it is before, within ±2^31.
    @inlinable public func offset(from other: Self) -> Int { Int(Int32(bitPattern: rawValue &- other.rawValue)) }
    public var description: String { String(rawValue) }
}

/// A 16-bit serial number that compares by RFC 1982 serial arithmetic.
public protocol SerialNumber16: Hashable, Sendable, CustomStringConvertible {
    var rawValue: UInt16 { get }
    init(_ rawValue: UInt16)
}

extension SerialNumber16 {
    @inlinable public func isBefore(_ other: Self) -> Bool {
        rawValue != other.rawValue && other.rawValue &- rawValue < 0x8000
    }
    @inlinable public func isAfter(_ other: Self) -> Bool { other.isBefore(self) }
    @inlinable public var next: Self { Self(rawValue &+ 1) }
    public var description: String { String(rawValue) }
}

/// Transmission Sequence Number (RFC 9260 §3.3.1).
public struct TSN: SerialNumber32 {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// Stream Sequence Number of a DATA chunk (RFC 9260 §3.3.1).
public struct SSN: SerialNumber16 {
    public var rawValue: UInt16
    @inlinable public init(_ rawValue: UInt16) { self.rawValue = rawValue }
}

/// Message Identifier of an I-DATA chunk (RFC 8260 §2.1).
public struct MID: SerialNumber32 {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// Serial number of an ASCONF chunk (RFC 5061 §4.1.1).
public struct ASCONFSerial: SerialNumber32 {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// Sequence number of a RE-CONFIG request (RFC 6525 §4.1).
public struct ReconfigRequestSequence: SerialNumber32 {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// A stream identifier (RFC 9260 §3.3.1).
public struct StreamID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt16
    @inlinable public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// A verification tag (RFC 9260 §3.1, §8.5).
public struct VerificationTag: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static let zero = VerificationTag(0)
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// A payload protocol identifier (RFC 9260 §3.3.1), opaque to SCTP.
public struct PPID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
}

/// Turns wrapping 32-bit serial numbers into monotonically increasing 64-bit values, so that ordered containers
/// keyed by them work across wrap-around. It tracks the largest value seen; inputs must stay within 2^31 of it.
public struct SerialUnwrapper<Number: SerialNumber32>: Sendable {
    private var lastValue: UInt64?

    public init() {}

    /// Unwraps `number` relative to the last unwrapped value and remembers it if larger.
    public mutating func unwrap(_ number: Number) -> UInt64 {
        let value = peek(number)
        if lastValue.map({ value > $0 }) ?? true { lastValue = value }
        return value
    }

    /// Unwraps without updating the reference point.
    public func peek(_ number: Number) -> UInt64 {
        guard let last = lastValue else { return UInt64(number.rawValue) + (1 << 32) }
        let lastRaw = UInt32(truncatingIfNeeded: last)
        let delta = Int32(bitPattern: number.rawValue &- lastRaw)
        return UInt64(Int64(last) + Int64(delta))
    }
}
