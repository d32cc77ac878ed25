// swift-tools-version:6.1
// Fuzz targets for agg, kept out of the main package so its build never needs the fuzzer runtime.
//
//     scripts/fuzz.sh [seconds]
//
// or by hand, from this directory:
//
//     swift build -c release -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
//     .build/release/WireFuzzer Corpus/wire -max_total_time=60
import PackageDescription

let package = Package(
    name: "agg-fuzz",
    dependencies: [
        .package(name: "agg", path: "..")
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver for Swift.
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "WireFuzzer",
            dependencies: ["CFuzzerDriver", .product(name: "SCTPEngine", package: "agg")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
