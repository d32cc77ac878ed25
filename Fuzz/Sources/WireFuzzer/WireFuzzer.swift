import CFuzzerDriver
import NIOCore
import SCTPEngine

/// libFuzzer entry point for the wire format: frames the input as an SCTP packet, decodes every chunk, and checks
/// that whatever decodes encodes again into a packet that decodes to the same chunks.
///
/// The checksum is not verified, or almost every input would stop there. Any trap (a failed precondition, an out
/// of bounds access, an arithmetic overflow) is a finding: `RawPacket.parse` and `Chunk(decoding:)` promise to
/// reject malformed input with a `WireError`, never to crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    guard let raw = try? RawPacket.parse(buffer, verifyChecksum: false) else { return 0 }

    var decoded: [Chunk] = []
    for chunk in raw.chunks {
        // A chunk that does not decode is rejected, not a finding; the others are still exercised.
        if let value = try? Chunk(decoding: chunk) { decoded.append(value) }
    }
    if decoded.isEmpty { return 0 }

    // Re-encode what decoded and decode it again: the encoder must produce what the decoder accepts, and the
    // round trip must be stable (decode ∘ encode is the identity on decoded values).
    let packet = SCTPPacket(header: raw.header, chunks: decoded)
    let encoded = packet.encode()
    let again: SCTPPacket
    do {
        again = try SCTPPacket.decode(encoded, verifyChecksum: true)
    } catch {
        fatalError("re-encoded packet does not decode: \(error)\nchunks: \(decoded)")
    }
    if again.chunks != decoded {
        fatalError("round trip changed the chunks\nbefore: \(decoded)\nafter:  \(again.chunks)")
    }
    return 0
}

/// The executable's entry point. SwiftPM links an executable target with `main` aliased to `<module>_main`, which
/// shadows libFuzzer's own `main`; so this is that function, and it hands control to libFuzzer's driver.
@_cdecl("WireFuzzer_main")
public func wireFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzWire(data, size) }
}
