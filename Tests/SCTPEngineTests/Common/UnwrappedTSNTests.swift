import Testing

@testable import SCTPEngine

/// Unwrapping 32-bit wire TSNs to 64 bits: across 2^32 in both directions, the 2^31 limit either way, and an
/// unwrapper fed a long, reordered stream of TSNs.
@Suite struct UnwrappedTSNTests {
    @Test func unwrapperIsMonotonicAcrossWrap() {
        var unwrapper = TSNUnwrapper()
        let a = unwrapper.unwrap(TSN(0xFFFF_FFF0))
        let b = unwrapper.unwrap(TSN(0x0000_0010))
        #expect(b == a + 0x20)
        // Values slightly behind the reference point unwrap below it.
        #expect(unwrapper.peek(TSN(0xFFFF_FFFF)) == a + 0xF)
        #expect(unwrapper.unwrap(TSN(0x0000_0005)) == a + 0x15)
    }

    @Test func firstTSNUnwrapsAt2To32PlusItsValue() {
        #expect(UnwrappedTSN(first: TSN(7)).value == 1 << 32 | 7)
        #expect(UnwrappedTSN(first: TSN(7)).tsn == TSN(7))
        let unwrapper = TSNUnwrapper()
        #expect(unwrapper.peek(TSN(0)) == UnwrappedTSN(value: 1 << 32))
        #expect(unwrapper.peek(TSN(0xFFFF_FFFF)) == UnwrappedTSN(value: 1 << 32 | 0xFFFF_FFFF))
    }

    @Test func wrapsForwardPast2To32() {
        let reference = UnwrappedTSN(value: 1 << 32 | 0xFFFF_FFFE)
        let unwrapped = UnwrappedTSN(TSN(1), near: reference)
        #expect(unwrapped.value == 2 << 32 | 1)
        #expect(unwrapped.tsn == TSN(1))
        #expect(reference < unwrapped)
        #expect(reference.distance(to: unwrapped) == 3)
        #expect(reference + 3 == unwrapped)
        #expect(reference.next.next.next == unwrapped)
    }

    @Test func wrapsBackwardBelow2To32() {
        let reference = UnwrappedTSN(value: 2 << 32 | 2)
        let unwrapped = UnwrappedTSN(TSN(0xFFFF_FFFF), near: reference)
        #expect(unwrapped.value == 1 << 32 | 0xFFFF_FFFF)
        #expect(unwrapped < reference)
        #expect(reference.distance(to: unwrapped) == -3)
        #expect(reference - 3 == unwrapped)
        #expect(unwrapped.next.next.next == reference)
        #expect(reference.previous.previous.previous == unwrapped)
    }

    /// RFC 1982 §3.2: a TSN up to 2^31 − 1 after the reference is after it; one exactly 2^31 away is taken as
    /// behind, as far behind as a TSN can be.
    @Test func unwrapsWithin2To31EitherWay() {
        let reference = UnwrappedTSN(value: 3 << 32 | 0x1234_5678)
        let farthestAhead = UnwrappedTSN(reference.tsn.advanced(by: 0x7FFF_FFFF), near: reference)
        #expect(reference.distance(to: farthestAhead) == 0x7FFF_FFFF)
        let halfway = UnwrappedTSN(reference.tsn.advanced(by: 0x8000_0000), near: reference)
        #expect(reference.distance(to: halfway) == -0x8000_0000)
        #expect(halfway.value == reference.value - 0x8000_0000)
        let farBehind = UnwrappedTSN(TSN(reference.tsn.rawValue &- 0x7FFF_FFFF), near: reference)
        #expect(reference.distance(to: farBehind) == -0x7FFF_FFFF)
    }

    /// Unwrapping orders TSNs as RFC 1982 serial arithmetic does, and keeps the wire value.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func ordersAsSerialArithmetic(seed: UInt64) {
        var random = SCTPRandom(seed: seed)
        for _ in 0..<2000 {
            let reference = UnwrappedTSN(value: (1 << 32) + random.next() % (1 << 34))
            let tsn = TSN(UInt32(truncatingIfNeeded: random.next()))
            let unwrapped = UnwrappedTSN(tsn, near: reference)
            #expect(unwrapped.tsn == tsn)
            guard tsn.rawValue &- reference.tsn.rawValue != 0x8000_0000 else { continue }
            #expect((unwrapped < reference) == tsn.isBefore(reference.tsn))
            #expect((unwrapped > reference) == tsn.isAfter(reference.tsn))
            #expect(abs(reference.distance(to: unwrapped)) < 1 << 31)
        }
    }

    @Test func peekLeavesTheReference() {
        var unwrapper = TSNUnwrapper()
        let a = unwrapper.unwrap(TSN(0x1000_0000))
        #expect(unwrapper.peek(TSN(0x8000_0000)) == a + 0x7000_0000)
        // Measured from a TSN peeked at, this one would be 0x9000_0000 back, so taken 0x7000_0000 ahead.
        #expect(unwrapper.unwrap(TSN(0xF000_0000)) == a - 0x2000_0000)
    }

    @Test func valuesBehindDoNotMoveTheReferenceBack() {
        var unwrapper = TSNUnwrapper()
        let a = unwrapper.unwrap(TSN(0x1000_0000))
        #expect(unwrapper.unwrap(TSN(0xA000_0000)) == a - 0x7000_0000)
        // Measured from that one, this one would be 0x9000_0000 ahead, so taken 0x7000_0000 behind it.
        #expect(unwrapper.unwrap(TSN(0x3000_0000)) == a + 0x2000_0000)
    }

    /// A sender's TSNs over several wraps of 32 bits, some arriving late: each unwraps to its 64-bit position.
    @Test func followsTSNsOverSeveralWraps() {
        var random = SCTPRandom(seed: 7)
        var unwrapper = TSNUnwrapper()
        let start: UInt64 = 0xFFFF_0000
        let first = unwrapper.unwrap(TSN(UInt32(start)))
        var sent = start
        while sent < start + (3 << 32) {
            sent += random.next() % (1 << 28)
            #expect(unwrapper.unwrap(TSN(UInt32(truncatingIfNeeded: sent))) == first + Int(sent - start))
            let late = sent - random.next() % (1 << 30)
            #expect(unwrapper.unwrap(TSN(UInt32(truncatingIfNeeded: late))) == first + (Int(late) - Int(start)))
        }
        #expect(first + Int(sent - start) > first + (3 << 32))
    }

    @Test func rangesCountTSNs() {
        let low = UnwrappedTSN(value: 1 << 32 | 0xFFFF_FFFE)
        #expect(Array(low...(low + 3)).map(\.tsn) == [TSN(0xFFFF_FFFE), TSN(0xFFFF_FFFF), TSN(0), TSN(1)])
    }
}
