import CFuzzerDriver
import NIOCore
import NIOEmbedded
import ProxyFuzzSupport

/// libFuzzer entry point for the daemons' status endpoint (`--metrics`): NIO's HTTP/1.1 server handlers and
/// `StatusRequestHandler` on an `EmbeddedChannel`, with fixed figures. The input's first byte chooses how the rest
/// is split into reads (bits 0-2) and whether the clock jumps half a timeout between reads (bit 3); the rest is
/// what a client sends: request lines with any target and query (`GET /?=` once killed the daemons), methods,
/// headers, bodies, pipelined requests, garbage. No input may trap; every connection must get an HTTP answer (the
/// route's, or 400, 405, 408, 413) and be closed once the clock passes both timeouts; and what the endpoint writes
/// must stay within one answer and one 400.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStatus(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let sizes = [0, 1, 2, 3, 7, 16, 64, 512]
    let piece = sizes[Int(bytes[0] & 7)]
    let stepTime = bytes[0] & 8 != 0
    run(Array(bytes[1...]), pieceSize: piece, stepTime: stepTime)
    return 0
}

func run(_ input: [UInt8], pieceSize: Int, stepTime: Bool) {
    let timeout = TimeAmount.seconds(10)
    let channel = EmbeddedChannel()
    let refused: () -> Int
    do {
        refused = try StatusRequestFuzzTarget.configure(channel, requestTimeout: timeout)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    } catch {
        fatalError("the status pipeline could not be set up: \(error)")
    }
    var output: [UInt8] = []
    func drain() {
        while let data = try? channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { output += buffer.readableBytesView }
        }
    }
    let piece = pieceSize == 0 ? max(input.count, 1) : pieceSize
    var offset = 0
    while offset < input.count, channel.isActive {
        let end = min(input.count, offset + piece)
        // An error thrown here is the pipeline refusing input (a malformed request): expected.
        _ = try? channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
        offset = end
        if stepTime { channel.embeddedEventLoop.advanceTime(by: .nanoseconds(timeout.nanoseconds / 2)) }
        channel.embeddedEventLoop.run()
        drain()
    }
    // Past the request timeout and the answer's: the connection must be closed now, with an answer.
    channel.embeddedEventLoop.advanceTime(by: timeout * 3)
    drain()
    precondition(!channel.isActive, "the connection is still open after every timeout")
    let text = String(decoding: output.prefix(9), as: UTF8.self)
    precondition(text.hasPrefix("HTTP/1."), "the connection was closed without an HTTP answer: \(output.prefix(64))")
    let bound = StatusRequestFuzzTarget.largestAnswer + 1024
    precondition(output.count <= bound, "the endpoint wrote \(output.count) bytes")
    precondition(refused() <= 1, "one connection refused \(refused()) times")
    _ = try? channel.finish()
}

/// The executable's entry point (SwiftPM aliases an executable's `main` to `<module>_main`): libFuzzer's driver.
@_cdecl("StatusFuzzer_main")
public func statusFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzStatus(data, size) }
}
