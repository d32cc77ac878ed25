import AggIngress
import CFuzzerDriver
import FuzzSupport

/// libFuzzer entry point for the HTTP proxy listener: NIOHTTP1's request decoder and `HTTPProxyHandler` on an
/// `EmbeddedChannel`. The input's first byte chooses the options (see `IngressHarness.options`); then comes the
/// client's bytes up to the first `0xFF` byte (never valid in an HTTP head) and after it the origin's response,
/// which the handler parses to frame the reply (`HTTPProxyMessages.parseResponseHead`). Requests are CONNECT
/// tunnels or absolute-form requests with bodies (Content-Length, chunked, smuggling attempts with both),
/// keep-alive sequences, oversized heads. No input may trap, leave the connection open past the header timeout
/// with an unfinished request, or make the proxy write or forward more than its input warrants.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let rest = bytes[1...]
    let split = rest.firstIndex(of: 0xFF) ?? rest.endIndex
    var options = IngressHarness.options(flags: bytes[0], protocols: .http)
    options.upstreamReply = split < rest.endIndex ? Array(rest[(split + 1)...]) : []
    IngressHarness.run(Array(rest[..<split]), options: options)
    return 0
}

/// The executable's entry point (SwiftPM aliases an executable's `main` to `<module>_main`): libFuzzer's driver.
@_cdecl("HTTPFuzzer_main")
public func httpFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzHTTP(data, size) }
}
