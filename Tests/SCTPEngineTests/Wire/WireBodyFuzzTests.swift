import NIOCore
import Testing

@testable import SCTPEngine

/// Random bodies handed straight to each chunk, parameter and error cause decoder: they must never trap, and
/// whatever decodes must survive a second round trip unchanged.
@Suite struct WireBodyFuzzTests {
    static let chunkTypes: [UInt8] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 64, 128, 130, 132, 192, 193, 194,
    ]
    static let parameterTypes: [UInt16] = [
        1, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 0x8000, 0x8001, 0x8002, 0x8003, 0x8004, 0x8005, 0x8008,
        0xC000, 0xC001, 0xC002, 0xC003, 0xC004, 0xC005, 0xC006,
    ]
    static let causeCodes: [UInt16] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0x105,
    ]

    /// Random bytes, sometimes a valid value of another kind with some bytes changed, to get past the first checks.
    static func body(_ gen: inout WireGenerator, valid: (inout WireGenerator) -> ByteBuffer) -> ByteBuffer {
        if gen.bool() { return gen.bytes(0...64) }
        var bytes = Array(valid(&gen).readableBytesView)
        for _ in 0..<gen.int(0...3) where !bytes.isEmpty {
            bytes[gen.int(0...bytes.count - 1)] = gen.u8()
        }
        if gen.int(0...3) == 0, !bytes.isEmpty { bytes.removeLast(gen.int(1...bytes.count)) }
        return ByteBuffer(bytes: bytes)
    }

    @Test(arguments: chunkTypes)
    func chunkBodies(type: UInt8) throws {
        var gen = WireGenerator(seed: 5000 + UInt64(type))
        for _ in 0..<2000 {
            let value = Self.body(&gen) { gen in
                var buffer = ByteBuffer()
                gen.chunk().encode(into: &buffer)
                return buffer.getSlice(at: 4, length: buffer.readableBytes - 4) ?? ByteBuffer()
            }
            let raw = RawChunk(type: type, flags: gen.u8(), value: value, offset: 12, length: 4 + value.readableBytes)
            guard let chunk = try? Chunk(decoding: raw) else { continue }
            var buffer = ByteBuffer()
            chunk.encode(into: &buffer)
            #expect(buffer.readableBytes == chunk.encodedLength)
            let again = RawChunk(
                type: type, flags: chunk.flags,
                value: buffer.getSlice(at: 4, length: Int(buffer.getInteger(at: 2, as: UInt16.self) ?? 4) - 4)
                    ?? ByteBuffer(),
                offset: 12, length: buffer.readableBytes)
            #expect(try Chunk(decoding: again) == chunk)
        }
    }

    @Test(arguments: parameterTypes)
    func parameterValues(type: UInt16) throws {
        var gen = WireGenerator(seed: 6000 + UInt64(type))
        for _ in 0..<2000 {
            let value = Self.body(&gen) { gen in
                var buffer = ByteBuffer()
                gen.parameter().encode(into: &buffer)
                return buffer.getSlice(at: 4, length: buffer.readableBytes - 4) ?? ByteBuffer()
            }
            guard let parameter = try? Parameter(type: type, value: value) else { continue }
            var buffer = ByteBuffer()
            parameter.encode(into: &buffer)
            #expect(try Parameter.decode(buffer) == parameter)
        }
    }

    @Test(arguments: causeCodes)
    func causeValues(code: UInt16) throws {
        var gen = WireGenerator(seed: 7000 + UInt64(code))
        for _ in 0..<2000 {
            let value = Self.body(&gen) { gen in
                var buffer = ByteBuffer()
                gen.errorCause().encode(into: &buffer)
                return buffer.getSlice(at: 4, length: buffer.readableBytes - 4) ?? ByteBuffer()
            }
            guard let cause = try? ErrorCause(code: code, value: value) else { continue }
            var buffer = ByteBuffer()
            cause.encode(into: &buffer)
            #expect(try ErrorCause.decodeList(buffer) == [cause])
        }
    }
}
