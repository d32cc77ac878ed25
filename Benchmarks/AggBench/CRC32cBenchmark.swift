import CSCTPChecksum
import NIOCore
import SCTPEngine

/// Measures CRC32c throughput: the engine's ByteBuffer entry point, the SSE4.2 path, the slicing-by-8 path and a bytewise-table baseline, all in one run
/// so that their ratios hold even when the machine's absolute speed drifts.
enum CRC32cBenchmark: Benchmark {
    static let name = "crc32c"
    static let summary = "CRC32c throughput: hardware, slicing-by-8 and bytewise baseline (GB/s)"

    /// A full-size SCTP-over-UDP payload on a 1500-byte path (1500 - 20 IPv4 - 8 UDP - 20 spare), and a large buffer.
    static let defaultSizes = [1452, 65536]

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(arguments, known: ["seconds", "trials", "size"])
        if options.wantsHelp {
            print(
                """
                usage: agg-bench crc32c [--seconds S] [--trials N] [--size BYTES]
                  --seconds  length of one trial (default 0.2)
                  --trials   trials per case; the best is reported (default 5)
                  --size     one buffer size instead of \(defaultSizes.map(String.init).joined(separator: " and "))
                """
            )
            return
        }
        let seconds = try options.double("seconds", default: 0.2)
        let trials = try options.int("trials", default: 5)
        let sizes = try options.int("size").map { [$0] } ?? defaultSizes
        let measurement = Measurement(trialDuration: .nanoseconds(Int64(seconds * 1e9)), trials: trials)

        checkImplementationsAgree()
        let hardware = csctp_crc32c_has_hardware() != 0
        print("crc32c: best of \(trials) trials of \(seconds) s; hardware path \(hardware ? "available" : "ABSENT")")
        print("size      implementation           GB/s   vs bytewise")

        var sink: UInt32 = 0
        for size in sizes {
            // Deterministic non-trivial contents; the offset of 0 keeps the buffer 8-byte aligned as a NIO buffer is.
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
            defer { buffer.deallocate() }
            for index in 0..<size { buffer[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
            let bytes = UnsafeRawBufferPointer(buffer)
            let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)

            let packet = ByteBuffer(bytes: bytes)
            let cases: [(String, () -> Void)] = [
                // What the engine calls per packet: the dispatching C function behind a ByteBuffer.
                ("engine packetChecksum", { sink &+= CRC32c.packetChecksum(packet) }),
                ("csctp hardware sse4.2", { sink &+= csctp_crc32c_update(0xFFFF_FFFF, base, size) }),
                ("csctp portable slice8", { sink &+= csctp_crc32c_update_portable(0xFFFF_FFFF, base, size) }),
                ("bytewise table (Swift)", { sink &+= BytewiseCRC32c.update(0xFFFF_FFFF, bytes) }),
            ]
            var results: [(String, Double)] = []
            for (label, body) in cases {
                results.append((label, measurement.bestThroughput(bytesPerCall: size, body)))
            }
            let baseline = results.last!.1
            for (label, bytesPerSecond) in results {
                let line = [
                    String(size).padded(to: 9),
                    label.padded(to: 22),
                    format(bytesPerSecond / 1e9, width: 6),
                    format(bytesPerSecond / baseline, width: 9) + "x",
                ]
                print(line.joined(separator: " "))
            }
        }
        // Printing the sink keeps the optimizer from discarding the work.
        print("(sink \(String(sink, radix: 16)))")
    }

    /// All three must compute the same function, or the comparison is meaningless. RFC 9260 Appendix A's check value
    /// for "123456789" is 0xE3069283.
    private static func checkImplementationsAgree() {
        let vector = Array("123456789".utf8)
        var sample = [UInt8](repeating: 0, count: 70_001)
        for index in sample.indices { sample[index] = UInt8(truncatingIfNeeded: index &* 131 &+ 17) }
        for input in [vector, sample, Array(sample[3..<1455])] {
            let results = input.withUnsafeBufferPointer { pointer -> [UInt32] in
                let base = pointer.baseAddress!
                return [
                    ~csctp_crc32c_update(0xFFFF_FFFF, base, pointer.count),
                    ~csctp_crc32c_update_portable(0xFFFF_FFFF, base, pointer.count),
                    ~BytewiseCRC32c.update(0xFFFF_FFFF, UnsafeRawBufferPointer(pointer)),
                ]
            }
            precondition(Set(results).count == 1, "CRC32c implementations disagree: \(results)")
            if input == vector { precondition(results[0] == 0xE306_9283, "CRC32c check value is wrong") }
        }
    }

    private static func format(_ value: Double, width: Int) -> String {
        let hundredths = Int((value * 100).rounded())
        let text = "\(hundredths / 100).\(String(hundredths % 100).leftPadded(to: 2, with: "0"))"
        return text.leftPadded(to: width, with: " ")
    }
}

/// The textbook one-table, one-byte-at-a-time CRC32c: the baseline the faster paths are compared with.
enum BytewiseCRC32c {
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            var crc = crc
            for byte in bytes { crc = table[Int(UInt8(truncatingIfNeeded: crc) ^ byte)] ^ (crc >> 8) }
            return crc
        }
    }
}
