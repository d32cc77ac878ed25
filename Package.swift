// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
/// The engine, the simulator and the proxy's datapath touch class properties on every packet; in release builds the
/// dynamic exclusivity checks (swift_beginAccess, and the thread-local access set behind it) cost about 10% of a
/// bulk transfer's CPU in each (perf). Debug builds, which run every test, keep them.
let hotPath: [SwiftSetting] =
    strict + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "agg",
    products: [
        .library(name: "SCTPEngine", targets: ["SCTPEngine"]),
        .library(name: "Proxy", targets: ["Proxy"]),
        .executable(name: "aggclient", targets: ["AggClient"]),
        .executable(name: "aggserver", targets: ["AggServer"]),
        .executable(name: "sctpcat", targets: ["sctpcat"]),
        .executable(name: "agg-bench", targets: ["AggBench"]),
        // For the Fuzz package only (Fuzz/Package.swift): harnesses that reach into the layers' package-level API
        // (datagram security, the status endpoint), and the layers its fuzzers decode with (the stream protocol, the
        // ingress handlers).
        .library(name: "ProxyFuzzSupport", targets: ["ProxyFuzzSupport"]),
        .library(name: "AggProtocol", targets: ["AggProtocol"]),
        .library(name: "AggIngress", targets: ["AggIngress"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections.git", exact: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
    ],
    targets: [
        // Pure computation in C: CRC32c with the SSE4.2 instruction and a slicing-by-8 fallback.
        .target(name: "CSCTPChecksum"),
        // ChaCha20-Poly1305 sealing in place over the BoringSSL that swift-crypto links in (see aead.c).
        .target(name: "CAEAD", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // The systemd protocols (notify, journal, socket activation) spoken over plain sockets: no libsystemd, so
        // the daemons build and run where it is absent (containers, routers, static builds).
        .target(name: "CSystemd"),
        // The version string, set by scripts/package.sh on the C compiler's command line; "dev" otherwise.
        .target(name: "CBuildInfo"),
        // recvmmsg(2), which Swift's Glibc module leaves out, for the UDP driver's own reads.
        .target(name: "CUDPRead"),
        // Sans-IO SCTP: datagrams and time in, datagrams, deadlines and events out.
        .target(
            name: "SCTPEngine",
            dependencies: [
                "CSCTPChecksum",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The proxy's sans-IO protocol: the datagram security (keys, HELLO handshake, session ciphers, replay
        // window, the client's and the server's state machines), the stream protocol (messages, stream states, flow
        // windows, authentication, the stream session), each role's association lifecycle and the daemons' graceful
        // stop, and the vocabulary the daemons count by. ByteBuffer, crypto and the engine's types only; no
        // NIOPosix, no clock, no sockets.
        .target(
            name: "AggProtocol",
            dependencies: [
                "SCTPEngine", "CAEAD", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The daemons' life under systemd (notify, watchdog, journal, socket activation), logging, the build's
        // version: no dependency on the rest of the proxy.
        .target(
            name: "AggOperations",
            dependencies: [
                "CSystemd", "CBuildInfo", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The NIO transport: the driver that runs the SCTP engine and the datagram security over UDP sockets (one
        // per local address), address conversion, interface addresses (and the watcher that follows a named
        // interface's), SO_REUSEPORT steering.
        .target(
            name: "AggTransport",
            dependencies: [
                "SCTPEngine", "AggProtocol", "CUDPRead", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // Egress: the server's connections to the internet, under its policy (refused ranges and ports, the
        // server's own addresses), with bounded name lookups.
        .target(
            name: "AggEgress",
            dependencies: [
                "SCTPEngine", "AggProtocol", "AggTransport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: hotPath
        ),
        // Ingress: how local applications reach aggclient (SOCKS4/4a/5 with UDP ASSOCIATE, HTTP CONNECT and forward
        // proxy, transparent TCP and UDP from nftables redirect or tproxy), up to the connector that opens a stream.
        .target(
            name: "AggIngress",
            dependencies: [
                "SCTPEngine", "AggProtocol", "AggTransport", "AggEgress",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The daemons' settings: the TOML config file, flags over it, key and proxy-user files, path and server
        // group specs, check-config, and the host lookups that turn settings into addresses.
        .target(
            name: "AggConfig",
            dependencies: [
                "SCTPEngine", "AggProtocol", "AggTransport", "AggEgress", "AggIngress", "AggOperations",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // Observability: metrics (Prometheus), the status snapshot, the status endpoint and page, and the status
        // client behind `aggclient status`.
        .target(
            name: "AggObservability",
            dependencies: [
                "SCTPEngine", "AggProtocol", "AggTransport", "AggConfig", "AggOperations",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The status page, compiled in as a byte array (no resource bundle, no Foundation Bundle).
            resources: [.embedInCode("Resources/status.html")],
            swiftSettings: hotPath
        ),
        // The services: the glue that joins ingress, the stream session, the transport and egress
        // (AggClientService, AggServerService, server shards, the UDP relays) and the daemons' run loops (AggRuntime).
        .target(
            name: "Proxy",
            dependencies: [
                "SCTPEngine",
                "AggProtocol",
                "AggTransport",
                "AggEgress",
                "AggIngress",
                "AggConfig",
                "AggObservability",
                "AggOperations",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSOCKS", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: hotPath
        ),
        // The command-line pieces aggclient and aggserver share (common flags, loading the settings, check-config).
        .target(
            name: "DaemonCommandLine",
            dependencies: [
                "AggConfig", "AggOperations", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "AggClient",
            dependencies: [
                "Proxy", "DaemonCommandLine", "AggConfig", "AggObservability", "AggOperations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "AggServer",
            dependencies: [
                "Proxy", "DaemonCommandLine", "AggConfig", "AggOperations", "AggProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sctpcat",
            dependencies: [
                "SCTPEngine", "AggOperations", "AggTransport",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "AggBench",
            dependencies: [
                "SCTPEngine", "SCTPSimulation", "Proxy", "AggConfig", "AggEgress", "AggIngress", "AggOperations",
                "AggProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // SHA-256 of every download in `agg-bench scale`.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/AggBench",
            swiftSettings: strict
        ),
        // Deterministic virtual-time network for driving engines in tests and benchmarks.
        .target(
            name: "SCTPSimulation",
            dependencies: ["SCTPEngine", .product(name: "NIOCore", package: "swift-nio")],
            path: "Tests/SCTPSimulation",
            swiftSettings: hotPath
        ),
        // In-memory stand-ins around the datagram security (AggProtocol) and the status endpoint (AggObservability)
        // for the fuzzers (and the status tests); kept out of the product targets so the daemons do not ship them.
        .target(
            name: "ProxyFuzzSupport",
            dependencies: [
                "AggProtocol", "AggObservability", "SCTPEngine", .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/ProxyFuzzSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "SCTPEngineTests",
            dependencies: ["SCTPEngine", "SCTPSimulation"],
            resources: [.copy("Resources")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "Proxy", "AggProtocol", "AggTransport", "AggEgress", "AggIngress", "AggConfig",
                "AggObservability", "AggOperations",
                "SCTPEngine", "SCTPSimulation", "ProxyFuzzSupport", "CAEAD",
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
