/// A TSN extended to 64 bits so that it never wraps: plain `<`, `+` and `distance(to:)` replace RFC 1982 serial
/// arithmetic wherever TSNs are ordered, counted or used as keys. Its low 32 bits are the wire TSN.
///
/// An unwrapped TSN is only meaningful next to others unwrapped from the same reference (see `init(_:near:)` and
/// `TSNUnwrapper`); the engine starts its references at 2^32, so values within 2^31 behind them stay positive.
public struct UnwrappedTSN: Hashable, Sendable, Strideable, CustomStringConvertible {
    public var value: UInt64

    @inlinable public init(value: UInt64) { self.value = value }

    @inlinable public static var min: UnwrappedTSN { UnwrappedTSN(value: .min) }
    @inlinable public static var max: UnwrappedTSN { UnwrappedTSN(value: .max) }

    /// The first TSN of a sequence, the reference its successors are unwrapped near: at 2^32 plus its value, so
    /// that any TSN within 2^31 of it unwraps to a positive value.
    @inlinable public init(first tsn: TSN) { self.value = 1 << 32 | UInt64(tsn.rawValue) }

    /// The TSN within 2^31 of `reference` (RFC 1982 §3.2: at most 2^31 − 1 after it, at most 2^31 before it) whose
    /// low 32 bits are `tsn`.
    @inlinable public init(_ tsn: TSN, near reference: UnwrappedTSN) {
        let offset = Int32(bitPattern: tsn.rawValue &- UInt32(truncatingIfNeeded: reference.value))
        self.value = reference.value &+ UInt64(bitPattern: Int64(offset))
    }

    /// The TSN on the wire: the low 32 bits.
    @inlinable public var tsn: TSN { TSN(UInt32(truncatingIfNeeded: value)) }

    @inlinable public var next: UnwrappedTSN { UnwrappedTSN(value: value &+ 1) }
    @inlinable public var previous: UnwrappedTSN { UnwrappedTSN(value: value &- 1) }

    @inlinable public static func == (a: Self, b: Self) -> Bool { a.value == b.value }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }

    /// How many TSNs `other` lies after `self`: negative when before.
    @inlinable public func distance(to other: UnwrappedTSN) -> Int { Int(Int64(bitPattern: other.value &- value)) }
    @inlinable public func advanced(by n: Int) -> UnwrappedTSN {
        UnwrappedTSN(value: value &+ UInt64(bitPattern: Int64(n)))
    }
    @inlinable public static func + (tsn: Self, n: Int) -> Self { tsn.advanced(by: n) }
    @inlinable public static func - (tsn: Self, n: Int) -> Self { tsn.advanced(by: -n) }

    public var description: String { "\(tsn) (\(value))" }
}

/// Unwraps a stream of wire TSNs whose reference is the largest TSN seen so far, for a receiver that has no
/// cumulative point of its own to unwrap against. Inputs must stay within 2^31 of that largest TSN.
public struct TSNUnwrapper: Sendable {
    @usableFromInline var largest: UnwrappedTSN?

    public init() {}

    /// Unwraps `tsn` near the largest TSN seen and remembers it if it is larger.
    @inlinable public mutating func unwrap(_ tsn: TSN) -> UnwrappedTSN {
        let unwrapped = peek(tsn)
        if largest.map({ unwrapped > $0 }) ?? true { largest = unwrapped }
        return unwrapped
    }

    /// Unwraps `tsn` without remembering it. The first TSN unwrapped is taken as the `first` of a sequence.
    @inlinable public func peek(_ tsn: TSN) -> UnwrappedTSN {
        guard let largest else { return UnwrappedTSN(first: tsn) }
        return UnwrappedTSN(tsn, near: largest)
    }
}
