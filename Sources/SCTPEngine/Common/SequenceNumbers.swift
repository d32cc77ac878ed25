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
