import CFuzzerDriver
import Foundation
import ProxyFuzzSupport

/// libFuzzer entry point for the datagram decryption layer: a client and a server (`DatagramSecurityFuzzPair`)
/// finish a real handshake and open one sealed packet each way; then the input is a sequence of records, each
/// `op` (1 byte), `length` (2 bytes, little endian) and that many bytes:
/// - op % 4 == 0: the bytes as a datagram to the server (random datagrams, forged HELLOs);
/// - op % 4 == 1: a real datagram of the setup (first byte picks it) with the rest written over it from the
///   offset the second byte gives, to the server (mutated HELLOs and data: bit flips, truncation, replays);
/// - op % 4 == 2: the same mutation sent to the client (HELLO-ACKs and data from the server's side);
/// - op % 4 == 3: time passes (first byte: seconds), so timers, session expiry and stale timestamps run.
///
/// Besides traps, the findings are authentication failures: nothing the fuzzer can make without the key may open
/// (each side keeps the one packet it opened in the setup; byte-exact replays are refused by the replay window),
/// and the server answers nothing but the few repeats of a replayed genuine HELLO that the protocol allows, plus
/// VERSION answers to HELLOs of another version naming a held key: at most one a second per key, each no larger
/// than what caused it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecrypt(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let pair = setupPair
    pair.reset()
    let serverOpened = pair.serverStatistics.opened
    let clientOpened = pair.clientStatistics.opened
    var replies = 0
    var versionAnswers = 0
    var seconds = 0
    var offset = 0
    while offset + 3 <= input.count {
        let op = input[offset]
        let length = Int(input[offset + 1]) | Int(input[offset + 2]) << 8
        let end = min(input.count, offset + 3 + length)
        let bytes = Array(input[(offset + 3)..<end])
        offset = end
        switch op % 4 {
        case 0, 1:
            let datagram = op % 4 == 0 ? bytes : mutate(pair.samples, bytes)
            let (packet, answers) = pair.openAtServer(datagram)
            precondition(packet == nil, "the server opened a datagram the fuzzer made up, mutated or replayed")
            for answer in answers {
                precondition(
                    answer.count <= datagram.count, "the server amplified: \(answer.count) for \(datagram.count)")
                if answer.first == 0x56 { versionAnswers += 1 } else { replies += 1 }
            }
        case 2:
            precondition(pair.openAtClient(mutate(pair.samples, bytes)) == nil, "the client opened a forgery")
        default:
            let step = Int(bytes.first ?? 1)
            seconds += step
            pair.advance(seconds: Int64(step))
        }
        precondition(replies <= 8, "the server answered \(replies) datagrams nobody with a key sent")
        // Two keys, one VERSION a second each.
        precondition(versionAnswers <= 2 * (seconds + 1), "\(versionAnswers) VERSION answers in \(seconds) s")
    }
    precondition(pair.serverStatistics.opened == serverOpened, "server opened count moved")
    precondition(pair.clientStatistics.opened == clientOpened, "client opened count moved")
    return 0
}

/// The pair after its handshake, made once; each input starts from it (`reset`).
nonisolated(unsafe) let setupPair = DatagramSecurityFuzzPair(seed: 7)

/// A real datagram (`spec[0]` picks it) with `spec[2...]` written over it from offset `spec[1]`; the datagram is
/// cut there when the overwrite is empty and the offset is inside it.
func mutate(_ samples: [[UInt8]], _ spec: [UInt8]) -> [UInt8] {
    guard !samples.isEmpty, let pick = spec.first else { return [] }
    var datagram = samples[Int(pick) % samples.count]
    guard spec.count >= 2 else { return datagram }
    let start = min(Int(spec[1]) * max(1, datagram.count / 256 + 1), datagram.count)
    let patch = spec.dropFirst(2)
    if patch.isEmpty {
        datagram.removeSubrange(start...)
        return datagram
    }
    for (index, byte) in patch.enumerated() {
        if start + index < datagram.count { datagram[start + index] = byte } else { datagram.append(byte) }
    }
    return datagram
}

/// The executable's entry point (SwiftPM aliases an executable's `main` to `<module>_main`): libFuzzer's driver,
/// or `--write-seeds DIR` to write the setup's real datagrams as seeds.
@_cdecl("DecryptFuzzer_main")
public func decryptFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    let arguments = CommandLine.arguments
    if arguments.count == 3, arguments[1] == "--write-seeds" {
        let samples = DatagramSecurityFuzzPair(seed: 7).samples
        for (index, sample) in samples.enumerated() {
            // Raw to the server; the untouched sample to the server (a replay) and to the client.
            let raw = [0, UInt8(sample.count & 0xFF), UInt8(sample.count >> 8)] + sample
            let replay: [UInt8] = [1, 1, 0, UInt8(index)]
            let toClient: [UInt8] = [2, 3, 0, UInt8(index), 4, 0xFF]
            let later: [UInt8] = [3, 1, 0, 61]
            for (name, bytes) in [("raw", raw), ("replay", replay), ("client-flip", toClient)] {
                _ = FileManager.default.createFile(
                    atPath: "\(arguments[2])/sample-\(index)-\(name)", contents: Data(bytes + later + replay))
            }
        }
        print("wrote \(samples.count * 3) seeds to \(arguments[2])")
        return 0
    }
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzDecrypt(data, size) }
}
