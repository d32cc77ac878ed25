import NIOCore
import Testing

@testable import SCTPEngine

/// Groups the component tests so `swift test --filter Components` selects them.
@Suite enum Components {}

/// The test-owned clock for component tests: time moves only when a test advances it.
struct FakeClock {
    var now = SCTPTime(nanoseconds: 1_000_000_000)
    mutating func advance(_ duration: SCTPDuration) { now = now + duration }
}

/// A payload of `count` bytes, each `fill`.
func testPayload(_ count: Int, fill: UInt8 = 0x61) -> ByteBuffer {
    ByteBuffer(repeating: fill, count: count)
}
