// swift-tools-version:6.1
// Fuzz targets for agg, kept out of the main package so its build never needs the fuzzer runtime.
//
//     scripts/fuzz.sh [seconds]            every fuzzer, the seconds split between them
//     FUZZERS="SOCKS HTTP" scripts/fuzz.sh  only these
//
// or by hand, from this directory:
//
//     swift build -c release -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library --product WireFuzzer
//     .build/release/WireFuzzer Corpus/wire -max_total_time=60
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "agg-fuzz",
    dependencies: [
        .package(name: "agg", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver for Swift.
        .target(name: "CFuzzerDriver"),
        // The SCTP wire decoder and encoder.
        .executableTarget(
            name: "WireFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "SCTPEngine", package: "agg")],
            swiftSettings: strict
        ),
        // An established association fed packet sequences (mostly well-formed, correctly tagged and checksummed).
        .executableTarget(
            name: "AssociationFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "SCTPEngine", package: "agg")],
            swiftSettings: strict
        ),
        // The stream protocol decoder (control and stream messages) and the authentication state machines.
        .executableTarget(
            name: "StreamFuzzer",
            dependencies: [
                "CFuzzerDriver", .product(name: "AggProtocol", package: "agg"),
                .product(name: "SCTPEngine", package: "agg"),
            ],
            swiftSettings: strict
        ),
        // The datagram decryption layer (HELLO, HELLO-ACK, sealed data) after a real handshake.
        .executableTarget(
            name: "DecryptFuzzer",
            dependencies: [
                "CFuzzerDriver", .product(name: "ProxyFuzzSupport", package: "agg"),
            ],
            swiftSettings: strict
        ),
        // Runs ingress inputs on an EmbeddedChannel with a stand-in upstream (SOCKS and HTTP fuzzers).
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "AggProtocol", package: "agg"), .product(name: "AggIngress", package: "agg"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The SOCKS4, SOCKS4a and SOCKS5 handshakes behind the protocol detection, in an EmbeddedChannel.
        .executableTarget(
            name: "SOCKSFuzzer",
            dependencies: [
                "CFuzzerDriver", "FuzzSupport", .product(name: "AggIngress", package: "agg"),
            ],
            swiftSettings: strict
        ),
        // The HTTP proxy: NIOHTTP1's request decoder, our handler, and the origin's response parsing.
        .executableTarget(
            name: "HTTPFuzzer",
            dependencies: [
                "CFuzzerDriver", "FuzzSupport", .product(name: "AggIngress", package: "agg"),
            ],
            swiftSettings: strict
        ),
        // The daemons' status endpoint: NIO's HTTP/1.1 server handlers and the request handler, fixed figures.
        .executableTarget(
            name: "StatusFuzzer",
            dependencies: [
                "CFuzzerDriver", .product(name: "ProxyFuzzSupport", package: "agg"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
