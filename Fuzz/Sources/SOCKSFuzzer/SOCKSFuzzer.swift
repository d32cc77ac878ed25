import AggIngress
import CFuzzerDriver
import FuzzSupport

/// libFuzzer entry point for the SOCKS listener: the input's first byte chooses the options (credentials
/// required, the connector's outcome, how the bytes are split into reads; see `IngressHarness.options`), the rest
/// is what a client sends to a SOCKS-only listener: SOCKS5 greetings, RFC 1929 authentication and requests, SOCKS4
/// and SOCKS4a requests, and whatever follows them. No input may trap, leave the connection open past the
/// handshake timeout with an unfinished handshake, or make the proxy write more than its input warrants.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSOCKS(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    IngressHarness.run(Array(bytes[1...]), options: IngressHarness.options(flags: bytes[0], protocols: .socks))
    return 0
}

/// The executable's entry point (SwiftPM aliases an executable's `main` to `<module>_main`): libFuzzer's driver.
@_cdecl("SOCKSFuzzer_main")
public func socksFuzzerMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzSOCKS(data, size) }
}
