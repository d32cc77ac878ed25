import AggProtocol
import NIOCore
import SCTPEngine

/// Measures the datagram encryption layer: sealing and opening one SCTP packet (ChaCha20-Poly1305 through
/// swift-crypto, replay window included), against the CRC32c every SCTP packet costs anyway, in the same run so the
/// ratio holds when the machine's speed drifts.
enum SealBenchmark: Benchmark {
    static let name = "seal"
    static let summary = "datagram encryption: seal+open vs CRC32c of the same packet (MB/s)"

    static func run(arguments: [String]) throws(UsageError) {
        let options = try Options(arguments, known: ["seconds", "trials", "size"])
        if options.wantsHelp {
            print(
                """
                usage: agg-bench seal [--seconds S] [--trials N] [--size BYTES]
                  --seconds  length of one trial (default 0.5)
                  --trials   trials per case; the best is reported (default 5)
                  --size     SCTP packet size (default 1200)
                """
            )
            return
        }
        let seconds = try options.double("seconds", default: 0.5)
        let trials = try options.int("trials", default: 5)
        let size = try options.int("size", default: 1200)
        let measurement = Measurement(trialDuration: .nanoseconds(Int64(seconds * 1e9)), trials: trials)

        let packet = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let ciphers = LoopbackSessionCiphers(key: (0..<32).map { UInt8($0) })
        precondition(ciphers.sealAndOpen(packet) == packet, "seal and open must round-trip")
        var sink: UInt32 = 0
        let crc = measurement.bestThroughput(bytesPerCall: size) { sink &+= CRC32c.packetChecksum(packet) }
        let seal = measurement.bestThroughput(bytesPerCall: size) {
            sink &+= UInt32(ciphers.sealAndOpen(packet)?.readableBytes ?? 0)
        }
        print("seal: \(size)-byte packets (+\(LoopbackSessionCiphers.overhead) bytes sealed), best of \(trials) trials")
        print("case                 MB/s   packets/s")
        for (label, bytesPerSecond) in [("crc32c", crc), ("seal+open", seal)] {
            let rate = Int(bytesPerSecond / 1e6)
            print("\(label.padded(to: 16)) \(String(rate).leftPadded(to: 8))   \(Int(bytesPerSecond / Double(size)))")
        }
        print("seal+open costs \(Int((crc / seal).rounded()))x the CRC32c of the same bytes")
        print("(sink \(String(sink, radix: 16)))")
    }
}
